"""prepare stage: stratified train/val/test split, vocabulary on the training split only, encode, pad.

Outputs data/prepared/{train,val,test}.npz (x: int32 [n, maxlen], y: int32, length: tokens kept
after truncation, raw_length: tokens before it, id), vocab.json (token -> id; PAD=0, OOV=1),
labels.json (class id -> label), params.json, preprocess.json (how raw text becomes tokens, from
tokens.parquet: what a model needs to label new text); data/prepare_stats.json (class counts per split,
OOV rate, length percentiles, to choose maxlen) and data/plots/lengths.csv (a DVC plot).
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.atomic import atomic_dir, atomic_file, write_json
from pipeline.cli import run_stage, stage_parser
from pipeline.config import Params, PrepareParams, to_dict
from pipeline.readers import DataError
from pipeline.seed import set_seed
from pipeline.tokenize import length_percentiles, read_preprocess_spec

READS = ("prepare",)
PAD, OOV = "<pad>", "<oov>"
SPLITS = ("train", "val", "test")


def read_tokens(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: missing; run the tokenize stage first (dvc repro tokenize)")
    return pd.read_parquet(path)


def label_names(labels: pd.Series) -> list[str]:
    """Sorted label names; numerically when every label is an integer (0..45, not 0, 1, 10, 11)."""
    names = sorted(set(labels))
    if all(n.lstrip("-").isdigit() for n in names):
        names.sort(key=int)
    return names


def check_classes(y: np.ndarray, names: list[str], parts: int, where: str) -> None:
    counts = np.bincount(y, minlength=len(names))
    present = [(names[i], int(c)) for i, c in enumerate(counts) if c > 0]
    if len(present) < 2:
        only = present[0] if present else ("none", 0)
        raise DataError(f"{where}: only one class ({only[0]!r}, {only[1]} rows); a classifier "
                        "needs at least two (check dataset.classes)")
    small = [(n, c) for n, c in present if c < parts]
    if small:
        name, count = min(small, key=lambda nc: nc[1])
        raise DataError(f"{where}: class {name!r} has {count} row(s), too few to stratify into "
                        f"{parts} splits (each class needs at least {parts}); drop it with "
                        "dataset.classes or add rows")


def split_indices(y: np.ndarray, official: np.ndarray | None, cfg: PrepareParams,
                  names: list[str]) -> dict[str, np.ndarray]:
    """Row indices per split, stratified by label and seeded."""
    from sklearn.model_selection import train_test_split

    def cut(idx: np.ndarray, size: float, what: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            return train_test_split(idx, test_size=size, stratify=y[idx], random_state=cfg.seed)
        except ValueError as exc:
            counts = {names[k]: int(v) for k, v in zip(*np.unique(y[idx], return_counts=True))}
            raise DataError(f"prepare: cannot split off the {what} split (size {size:g}) "
                            f"stratified: {exc}; class counts: {counts}") from None

    everything = np.arange(len(y))
    if official is not None:
        train_pool, test = everything[~official], everything[official]
        check_classes(y[train_pool], names, 2, "the official training file")
        train, val = cut(train_pool, cfg.val_size, "validation")
    else:
        check_classes(y, names, 3, "the dataset")
        rest, test = cut(everything, cfg.test_size, "test")
        train, val = cut(rest, cfg.val_size / (1 - cfg.test_size), "validation")
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


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


def prepare(tokens: pd.DataFrame, cfg: PrepareParams) -> tuple[dict, dict, list[str], dict]:
    """Arrays per split, vocabulary, label names, stats."""
    set_seed(cfg.seed)
    names = label_names(tokens["label"])
    y_all = tokens["label"].map({n: i for i, n in enumerate(names)}).to_numpy(np.int32)
    official = None
    if cfg.keep_official_test and (tokens["split"] == "test").any():
        official = (tokens["split"] == "test").to_numpy()
    idx = split_indices(y_all, official, cfg, names)
    token_lists = tokens["tokens"].to_numpy()
    vocab = build_vocab(token_lists[idx["train"]], cfg.vocab.max_size, cfg.vocab.min_freq)
    arrays, stats = {}, {"splits": {}, "vocab_size": len(vocab),
                         "train_token_types": len({t for toks in token_lists[idx["train"]] for t in toks}),
                         "test_split": "official" if official is not None
                         else "stratified"}
    for split in SPLITS:
        rows = idx[split]
        x, kept, raw, oov = encode_pad(token_lists[rows], vocab, cfg.maxlen, cfg.padding, cfg.truncating)
        y = y_all[rows]
        arrays[split] = {"x": x, "y": y, "length": kept, "raw_length": raw,
                         "id": tokens["id"].to_numpy()[rows].astype(str)}
        total = int(raw.sum())
        stats["splits"][split] = {
            "rows": int(len(rows)),
            "classes": {names[k]: int(c) for k, c in enumerate(np.bincount(y, minlength=len(names)))},
            "oov_rate": round(oov / total, 5) if total else 0.0,
            "truncated_rows": int((raw > cfg.maxlen).sum()),
            "length": length_percentiles(raw),
        }
    stats["maxlen"] = cfg.maxlen
    stats["maxlen_covers_train_rows"] = round(
        float((arrays["train"]["raw_length"] <= cfg.maxlen).mean()), 4)
    return arrays, vocab, names, stats


def length_histogram(raw_lengths: np.ndarray, maxlen: int) -> str:
    """CSV of rows per token length (bins of 5) for `dvc plots show`."""
    top = max(int(raw_lengths.max()) if len(raw_lengths) else 0, maxlen)
    width = 5
    counts = np.bincount(raw_lengths // width, minlength=top // width + 1)
    lines = ["length,rows"] + [f"{i * width},{int(c)}" for i, c in enumerate(counts)]
    return "\n".join(lines) + "\n"


def write_outputs(arrays: dict, vocab: dict, names: list[str], stats: dict, params: Params,
                  preprocess: dict) -> None:
    with atomic_dir(paths.PREPARED_DIR) as tmp:
        (tmp / "preprocess.json").write_text(json.dumps(preprocess, ensure_ascii=False, indent=2) + "\n",
                                             encoding="utf-8")
        for split, arr in arrays.items():
            np.savez(tmp / f"{split}.npz", **arr)
        (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "labels.json").write_text(json.dumps(names, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "params.json").write_text(json.dumps(
            {"dataset": to_dict(params.dataset), "tokenize": to_dict(params.tokenize),
             "prepare": to_dict(params.prepare)}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    write_json(paths.PREPARE_STATS, stats)
    with atomic_file(paths.LENGTHS_PLOT) as tmp:
        tmp.write_text(length_histogram(arrays["train"]["raw_length"], params.prepare.maxlen))


def _body(params: Params, args) -> None:
    tokens = read_tokens(paths.TOKENS)
    preprocess = read_preprocess_spec(paths.TOKENS)
    arrays, vocab, names, stats = prepare(tokens, params.prepare)
    write_outputs(arrays, vocab, names, stats, params, preprocess)
    from pipeline import tracking
    if tracking.is_tracking():
        import mlflow

        tracking.log_stats(stats, "prepare")
        tracking.log_files([paths.PREPARE_STATS, paths.LENGTHS_PLOT] + [
            paths.PREPARED_DIR / f for f in ("vocab.json", "labels.json", "params.json", "preprocess.json")],
            "prepare")
        maxlen = params.prepare.maxlen
        mlflow.log_figure(tracking.histogram_figure(
            arrays["train"]["raw_length"], maxlen,
            f"maxlen {maxlen} (covers {stats['maxlen_covers_train_rows']:.1%})", "tokens per row",
            "Training rows per token length"), "prepare/lengths.png")
    s = stats["splits"]
    print(f"prepare: train {s['train']['rows']:,} / val {s['val']['rows']:,} / test {s['test']['rows']:,} "
          f"({stats['test_split']} test), {len(names)} classes, vocab {len(vocab):,}, "
          f"maxlen {params.prepare.maxlen} covers {stats['maxlen_covers_train_rows']:.1%} of train rows "
          f"(p95 length {s['train']['length']['p95']:g}) -> {paths.PREPARED_DIR}")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m pipeline.prepare", __doc__)
    return run_stage("prepare", _body, parser, argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
