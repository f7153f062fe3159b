"""Token lists to split, encoded arrays: label ids, stratified seeded splits, the subword model and
the vocabulary of the training split only, padding (the prepare stage's work, as plain functions)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.core.config import PrepareParams
from pipeline.core.errors import DataError, warn
from pipeline.core.seed import set_seed
from pipeline.data.sequences import build_vocab, encode_pad, length_percentiles
from pipeline.data.subword import Subword, train_subword

SPLITS = ("train", "val", "test")


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


def fold_indices(y: np.ndarray, folds: int, seed: int, where: str = "folds") -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows to fit on, rows held out) of `folds` stratified, seeded folds of labels `y`; a class with
    fewer rows than folds is one DataError naming `where`."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y)
    present = counts[counts > 0]
    if len(present) and present.min() < folds:
        label = int(np.flatnonzero(counts == present.min())[0])
        raise DataError(f"{where}: {folds} stratified folds need at least {folds} rows of every class in train + "
                        f"val; class id {label} has {int(present.min())}: lower {where}")
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(y, y))


# Below this share of the rows, a class is one a model can ignore and still score high accuracy.
RARE_CLASS_SHARE = 0.05


def warn_if_imbalanced(y: np.ndarray, names: list[str]) -> None:
    counts = np.bincount(y, minlength=len(names))
    rarest = int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))
    share = counts[rarest] / counts.sum()
    if share < RARE_CLASS_SHARE:
        warn(f"class {names[rarest]!r} is {share:.1%} of the rows ({int(counts[rarest]):,} of {int(counts.sum()):,}): "
             "accuracy alone flatters a model that never answers it; read macro-F1 and the confusion matrix "
             "(train.class_weight: balanced weighs it up)")


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
        # A class only the test file has: the model could never answer it, and every such row would
        # count as a mistake no setting can fix.
        unseen = sorted(set(y[test].tolist()) - set(y[train_pool].tolist()))
        if unseen:
            rows = int(np.isin(y[test], unseen).sum())
            raise DataError(f"the official test file: class {names[unseen[0]]!r} is in the test file only "
                            f"({len(unseen)} such class(es), {rows:,} test rows); the model would never see "
                            "it: list the others in dataset.classes")
        train, val = cut(train_pool, cfg.val_size, "validation")
    else:
        check_classes(y, names, 3, "the dataset")
        rest, test = cut(everything, cfg.test_size, "test")
        train, val = cut(rest, cfg.val_size / (1 - cfg.test_size), "validation")
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


@dataclass(frozen=True)
class Preparation:
    """What prepare makes: arrays per split, vocabulary, label names, stats, and the subword model
    (None for prepare.subword.model none)."""
    arrays: dict
    vocab: dict
    names: list[str]
    stats: dict
    subword: Subword | None = None


def prepare(tokens: pd.DataFrame, cfg: PrepareParams) -> tuple[dict, dict, list[str], dict]:
    """Arrays per split, vocabulary, label names, stats (prepare_all without the subword model)."""
    done = prepare_all(tokens, cfg)
    return done.arrays, done.vocab, done.names, done.stats


def prepare_all(tokens: pd.DataFrame, cfg: PrepareParams) -> Preparation:
    """Split; then, from the training split only, the subword model (prepare.subword) and the
    vocabulary; then every split cut into its units (tokens, or their pieces), encoded and padded."""
    set_seed(cfg.seed, tensorflow=False)
    names = label_names(tokens["label"])
    y_all = tokens["label"].map({n: i for i, n in enumerate(names)}).to_numpy(np.int32)
    official = None
    if cfg.keep_official_test and (tokens["split"] == "test").any():
        official = (tokens["split"] == "test").to_numpy()
    idx = split_indices(y_all, official, cfg, names)
    warn_if_imbalanced(y_all, names)
    token_lists = tokens["tokens"].to_numpy()
    train_token_types = len({t for toks in token_lists[idx["train"]] for t in toks})
    subword = None
    if cfg.subword.model != "none":
        subword = train_subword(token_lists[idx["train"]], cfg.subword, cfg.seed)
        units = np.empty(len(token_lists), dtype=object)
        units[:] = subword.pieces(token_lists)
        token_lists = units
    vocab = build_vocab(token_lists[idx["train"]], cfg.vocab.max_size, cfg.vocab.min_freq)
    arrays, stats = {}, {"splits": {}, "vocab_size": len(vocab), "train_token_types": train_token_types,
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
    if subword is not None:
        train_tokens = sum(len(t) for t in tokens["tokens"].to_numpy()[idx["train"]])
        train_pieces = int(arrays["train"]["raw_length"].sum())
        stats["subword"] = {
            "model": subword.model, "pieces": subword.size,
            "train_pieces_per_document": round(train_pieces / max(len(idx["train"]), 1), 2),
            "train_pieces_per_token": round(train_pieces / max(train_tokens, 1), 3),
        }
    return Preparation(arrays, vocab, names, stats, subword)
