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
TEXT_KEY = "text_key"   # tokens.parquet: a digest of each row's normalised text; copies share it


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
        raise DataError(f"{where}: only one class ({only[0]!r}, {only[1]} distinct texts); a classifier "
                        "needs at least two (check dataset.classes)")
    small = [(n, c) for n, c in present if c < parts]
    if small:
        name, count = min(small, key=lambda nc: nc[1])
        more = f" ({len(small):,} classes have too few)" if len(small) > 1 else ""
        raise DataError(f"{where}: class {name!r} has {count} distinct text(s), too few to stratify into "
                        f"{parts} splits (each class needs at least {parts}){more}; drop it with "
                        "dataset.classes or add rows")


def fold_indices(y: np.ndarray, folds: int, seed: int, where: str = "folds",
                 groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows to fit on, rows held out) of `folds` stratified, seeded folds of labels `y`; every row of a
    group (copies of one text, `groups`) is in one fold. A class with fewer texts than folds is one
    DataError naming `where`."""
    from sklearn.model_selection import StratifiedKFold

    group, group_y = by_group(y, groups)
    counts = np.bincount(group_y)
    present = counts[counts > 0]
    if len(present) and present.min() < folds:
        label = int(np.flatnonzero(counts == present.min())[0])
        raise DataError(f"{where}: {folds} stratified folds need at least {folds} distinct texts of every class in "
                        f"train + val; class id {label} has {int(present.min())}: lower {where}")
    cut = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(group_y, group_y)
    return [(np.flatnonzero(np.isin(group, fit)), np.flatnonzero(np.isin(group, held))) for fit, held in cut]


def by_group(y: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group as 0..g-1 in order of first appearance, and each group's label: its most
    common one (ties: the lowest id). Without groups every row is its own.

    The splits cut groups, not rows, with scikit-learn's stratified splitters over the groups'
    labels, and every row follows its group. With no copies this is exactly the row split (group i
    is row i); StratifiedGroupKFold would reshuffle even then, and took 9 s on NSMC's rows.
    """
    if groups is None:
        return np.arange(len(y)), np.asarray(y)
    group = pd.factorize(groups)[0]
    k = int(y.max()) + 1 if len(y) else 1
    pair, count = np.unique(group.astype(np.int64) * k + y, return_counts=True)
    owner, label = pair // k, pair % k
    order = np.lexsort((-count, owner))   # by group, then most rows first (stable: lowest id on ties)
    first = np.r_[True, owner[order][1:] != owner[order][:-1]]
    group_y = np.empty(int(group.max()) + 1 if len(group) else 0, dtype=np.asarray(y).dtype)
    group_y[owner[order][first]] = label[order][first]
    return group, group_y


def duplicate_report(y: np.ndarray, groups: np.ndarray, names: list[str], ids: np.ndarray) -> dict:
    """How many rows repeat a text seen before, how many texts have copies, and how many carry more
    than one label (with the first such group's labels)."""
    group = pd.factorize(groups)[0]
    rows_per_group = np.bincount(group)
    labels_per_group = pd.Series(y).groupby(group).nunique().to_numpy()
    conflicting = np.flatnonzero(labels_per_group > 1)
    report = {"duplicate_rows": int(len(y) - len(rows_per_group)),
              "texts_with_copies": int((rows_per_group > 1).sum()),
              "texts_with_conflicting_labels": int(len(conflicting)),
              "rows_with_conflicting_labels": int(rows_per_group[conflicting].sum())}
    if len(conflicting):
        rows = np.flatnonzero(group == conflicting[0])
        report["conflicting_example"] = {"id": str(ids[rows[0]]), "labels": sorted({names[i] for i in y[rows]})}
    return report


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
                  names: list[str], groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Row indices per split, stratified by label and seeded; every copy of a text (rows of one group)
    lands in one split. With an official test file, rows of the training file whose text is also a
    test text are in no split (`leaked`)."""
    from sklearn.model_selection import train_test_split

    group, group_y = by_group(y, groups)

    def cut(pool: np.ndarray, size: float, what: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows of `pool` (row indices) into the rest and the `what` split, by group."""
        pool_groups = np.unique(group[pool])
        try:
            rest, part = train_test_split(pool_groups, test_size=size, stratify=group_y[pool_groups],
                                          random_state=cfg.seed)
        except ValueError as exc:
            raise DataError(too_few_to_split(group_y[pool_groups], names, what, size, exc)) from None
        return pool[np.isin(group[pool], rest)], pool[np.isin(group[pool], part)]

    everything = np.arange(len(y))
    leaked = everything[:0]
    if official is not None:
        train_pool, test = everything[~official], everything[official]
        # A copy of a test text in training would be scored as if unseen: it leaves the training file.
        in_test = np.isin(group[train_pool], group[test])
        leaked, train_pool = train_pool[in_test], train_pool[~in_test]
        check_classes(group_y[np.unique(group[train_pool])], names, 2, "the official training file")
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
        check_classes(group_y, names, 3, "the dataset")
        rest, test = cut(everything, cfg.test_size, "test")
        train, val = cut(rest, cfg.val_size / (1 - cfg.test_size), "validation")
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test), "leaked": leaked}


def too_few_to_split(group_y: np.ndarray, names: list[str], what: str, size: float, exc: Exception) -> str:
    """scikit-learn's refusal to stratify, summarised with what to change (it names every class)."""
    counts = np.bincount(group_y, minlength=len(names))
    present = counts[counts > 0]
    rows = int(counts.sum())
    fewest = int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))
    held = int(np.ceil(size * rows))
    if held < len(present):
        need = len(present) / rows
        remedy = (f"the {what} split would hold {held:,} texts for {len(present):,} classes: raise its size to "
                  f"at least {need:.2g} (prepare.{'test' if what == 'test' else 'val'}_size), or keep fewer "
                  "classes (dataset.classes)")
    else:
        remedy = (f"class {names[fewest]!r} has {int(counts[fewest])} distinct text(s): keep fewer classes "
                  "(dataset.classes) or add rows")
    reason = " ".join(str(exc).split())
    reason = reason if len(reason) <= 160 else reason[:157] + "..."
    return (f"prepare: cannot split off the {what} split (size {size:g}) stratified over {len(present):,} classes "
            f"and {rows:,} distinct texts; {remedy} (scikit-learn: {reason})")


def text_groups(tokens: pd.DataFrame) -> np.ndarray:
    """One id per normalised text (tokens.parquet's text_key, which the tokenize stage writes); a
    table without the key (built in code) has one group per row."""
    if TEXT_KEY not in tokens.columns:
        return np.arange(len(tokens), dtype=np.int64)
    return pd.factorize(tokens[TEXT_KEY])[0].astype(np.int64)


def warn_about_duplicates(report: dict, rows: int) -> None:
    """One warning line for copies of texts, one for texts under several labels."""
    if report["duplicate_rows"]:
        dropped = report["dropped_train_copies_of_test_texts"]
        also = (f"; {dropped:,} training-file rows copy an official test text and are left out of train and val"
                if dropped else "")
        warn(f"prepare: {report['duplicate_rows']:,} of {rows:,} rows repeat the normalised text of another "
             f"row ({report['texts_with_copies']:,} texts have copies): every copy goes to the same split, so "
             f"none is scored on a text it was trained on{also}")
    if report["texts_with_conflicting_labels"]:
        example = report["conflicting_example"]
        warn(f"prepare: {report['texts_with_conflicting_labels']:,} texts ({report['rows_with_conflicting_labels']:,} "
             f"rows) carry more than one label, e.g. id {example['id']!r} as "
             f"{' and '.join(map(repr, example['labels']))}: no model can answer both; check the labels")


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
    groups = text_groups(tokens)
    idx = split_indices(y_all, official, cfg, names, groups)
    duplicates = {**duplicate_report(y_all, groups, names, tokens["id"].to_numpy()),
                  "dropped_train_copies_of_test_texts": len(idx["leaked"])}
    warn_about_duplicates(duplicates, len(tokens))
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
                         else "stratified", "duplicates": duplicates}
    for split in SPLITS:
        rows = idx[split]
        x, kept, raw, oov = encode_pad(token_lists[rows], vocab, cfg.maxlen, cfg.padding, cfg.truncating)
        y = y_all[rows]
        arrays[split] = {"x": x, "y": y, "length": kept, "raw_length": raw,
                         "id": tokens["id"].to_numpy()[rows].astype(str), "group": groups[rows]}
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
