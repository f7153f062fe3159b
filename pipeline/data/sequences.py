"""Token sequences as arrays: vocabulary, encode and pad (as Keras pad_sequences), re-cut, trim,
length buckets and length statistics. NumPy only; the same functions serve training and serving.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

PAD, OOV = "<pad>", "<oov>"


def build_vocab(token_lists, max_size: int, min_freq: int) -> dict[str, int]:
    """Most frequent first, ties broken alphabetically, so the same data gives the same ids."""
    counts = Counter(tok for toks in token_lists for tok in toks)
    ranked = sorted((item for item in counts.items() if item[1] >= min_freq),
                    key=lambda item: (-item[1], item[0]))
    vocab = {PAD: 0, OOV: 1}
    for tok, _ in ranked[: max_size - len(vocab)]:
        vocab[tok] = len(vocab)
    return vocab


def encode_pad(token_lists, vocab: dict[str, int], maxlen: int, padding: str,
               truncating: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Padded ids [n, maxlen], kept lengths, raw lengths, and how many tokens were OOV."""
    n = len(token_lists)
    x = np.zeros((n, maxlen), dtype=np.int32)
    kept = np.zeros(n, dtype=np.int32)
    raw = np.zeros(n, dtype=np.int32)
    oov = 0
    get = vocab.get
    for row, toks in enumerate(token_lists):
        ids = [get(t, 1) for t in toks]
        oov += ids.count(1)
        raw[row] = len(ids)
        if len(ids) > maxlen:
            ids = ids[-maxlen:] if truncating == "pre" else ids[:maxlen]
        kept[row] = len(ids)
        if ids:
            if padding == "post":
                x[row, : len(ids)] = ids
            else:
                x[row, maxlen - len(ids):] = ids
    return x, kept, raw, oov

def shorten(split: dict, maxlen: int, padding: str, truncating: str) -> dict:
    """A split re-cut to maxlen tokens, exactly as prepare would have cut it (same sides).

    Cutting the already cut rows again from the same side keeps the same tokens as cutting the
    original ones, so a tuned maxlen needs no second prepare run.
    """
    x, n = split["x"], split["length"].astype(np.int64)
    width = x.shape[1]
    if maxlen >= width:
        return split
    kept = np.minimum(n, maxlen)
    first_token = np.zeros_like(n) if padding == "post" else width - n    # where each row's tokens begin
    if truncating == "pre":
        first_token = first_token + (n - kept)                            # keep the last `kept` of them
    first_slot = np.zeros_like(kept) if padding == "post" else maxlen - kept
    offset = np.arange(maxlen)[None, :] - first_slot[:, None]        # token index within the kept run
    inside = (offset >= 0) & (offset < kept[:, None])
    source = np.clip(first_token[:, None] + offset, 0, width - 1)
    out = np.where(inside, np.take_along_axis(x, source, axis=1), 0).astype(x.dtype)
    return {**split, "x": out, "length": kept.astype(split["length"].dtype)}


def trim_padding(x, n, padding: str):
    """Keep the n columns that hold tokens: the first n (post-padding) or the last n (pre).

    Works on NumPy arrays and TF tensors alike (x's second dimension must be known).
    """
    return x[:, :n] if padding == "post" else x[:, x.shape[1] - n:]


def bucket_boundaries(lengths: np.ndarray, buckets: int = 8) -> list[int]:
    """Length quantiles: each bucket holds about the same number of rows."""
    qs = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in qs if q >= 1})

def length_percentiles(lengths: np.ndarray) -> dict:
    """p50/p90/p95/p99 and max of token counts (zeros for none): how long documents run."""
    if len(lengths) == 0:
        return {"p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0}
    q = np.percentile(lengths, [50, 90, 95, 99])
    return {**{f"p{p}": round(float(v), 2) for p, v in zip((50, 90, 95, 99), q)}, "max": int(lengths.max())}

def length_histogram(raw_lengths: np.ndarray, maxlen: int) -> str:
    """CSV of rows per token length (bins of 5) for `dvc plots show`."""
    top = max(int(raw_lengths.max()) if len(raw_lengths) else 0, maxlen)
    width = 5
    counts = np.bincount(raw_lengths // width, minlength=top // width + 1)
    lines = ["length,rows"] + [f"{i * width},{int(c)}" for i, c in enumerate(counts)]
    return "\n".join(lines) + "\n"
