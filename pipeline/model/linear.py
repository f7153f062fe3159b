"""The linear model, a candidate beside the RNN: TF-IDF n-grams of the same tokens + LogisticRegression.

It answers one question in every run: does the recurrent model earn its cost? And since it often
wins on small data, it can be served too, alone or blended with the RNN (pipeline/model/champion.py).
It reads the full token lists of data/tokens.parquet (not the vocabulary-cut, maxlen-truncated ids
the RNN sees), joined to the prepared split by id. Deterministic: liblinear's coordinate descent is
seeded. Above champion.linear.out_of_core_above fit rows `fit_linear` fits the out-of-core one
instead (hashed n-grams + SGD over batches: pipeline/model/hashed_linear.py), in the same LinearModel.

The classifier is one logistic regression per class (one-vs-rest), each solved by liblinear in the
dual. n-gram TF-IDF gives far more columns than rows (Reuters: 444,526 columns for 8,982 rows), and
the dual's size is the rows': on Reuters it fits in 50 s where multinomial lbfgs took 286-405 s,
with test accuracy 0.8206 against 0.8161; on Seoul 120 0.3 s against 6.6 s, the same 0.8738
(bench/linear_speed.py). For two classes it is the one plain logistic regression.

Saved as skops (`save_linear` / `load_linear`), not pickle: loading a pickle runs whatever code the
file names. skops stores the objects' state as data and refuses, at load time, any type outside
scikit-learn/numpy/scipy's own and the two of this package (WORD_NGRAMS, JOINED, COMPACT_TFIDF:
pipeline/model/tfidf.py, whose vocabulary is two arrays, which skops saves in seconds): a tampered
linear.skops names its unknown types instead of running them. That closes this file only: the MLflow
model around it is code that runs on load (serve/model_code.py), so a registry must still be
writable only by those trusted to run code (docs/serving.md, the trust model).
The versions that wrote it (scikit-learn, skops, numpy, scipy) are kept in its sidecar and a
mismatch is a warning, as scikit-learn does for pickles.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.core.atomic import atomic_file
from pipeline.core.config import LinearParams
from pipeline.core.errors import DataError, ParamsError, StageError, reading

SEED = 0
FIT_SPLITS = ("train", "val")
LINEAR_FILE = "linear.skops"
LINEAR_INFO = "linear.json"     # the versions that wrote linear.skops, and the classes it predicts
VERSIONED = ("scikit-learn", "skops", "numpy", "scipy")
# What this module adds to the types skops trusts (the rest are scikit-learn's, numpy's and scipy's).
WORD_NGRAMS = f"{__name__}.WordNgrams"
JOINED = f"{__name__}.joined"
COMPACT_TFIDF = "pipeline.model.tfidf.CompactTfidf"   # the vectorizer that saves its vocabulary compactly
TRUSTED = (WORD_NGRAMS, JOINED, COMPACT_TFIDF)


@dataclass(frozen=True)
class SplitRows:
    """One prepared split's rows: ids, label ids and the full token lists from tokens.parquet."""
    ids: np.ndarray
    y: np.ndarray
    tokens: list[list[str]]
    groups: np.ndarray | None = None   # copies of one text share a group (the folds keep them together)


class WordNgrams:
    """The word analyzer: each 1..n-gram of a token list, its tokens joined by a space (skops stores
    string keys only; the analyzers split on spaces, so a token holds none)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, tokens: list[str]) -> list[str]:
        return [" ".join(tokens[i:i + k]) for k in range(1, self.n + 1) for i in range(len(tokens) - k + 1)]


def joined(tokens: list[str]) -> str:
    """The character analyzer's text: the tokens joined by spaces."""
    return " ".join(tokens)


def ngram_features(cfg: LinearParams, vectorizer, **options):
    """The FeatureUnion of word 1..n-grams of the token lists and character n-grams of the joined
    tokens, each a `vectorizer` (TF-IDF here, hashing out of core) built with `options`."""
    from sklearn.pipeline import FeatureUnion

    features = []
    if cfg.word_ngrams:
        features.append(("word", vectorizer(analyzer=WordNgrams(cfg.word_ngrams), **options)))
    if cfg.char_ngrams:
        # A callable preprocessor replaces the default one (lowercasing included): the tokens as
        # tokenize left them, as the RNN sees them.
        features.append(("char", vectorizer(analyzer="char", preprocessor=joined,
                                            ngram_range=tuple(cfg.char_ngrams), **options)))
    if not features:
        raise ParamsError("champion.linear: word_ngrams is 0 and char_ngrams is []: the linear model has no "
                          "features; set either, or champion.linear.enabled: false")
    return FeatureUnion(features)


def build_linear(cfg: LinearParams):
    """An unfitted Pipeline over token lists: a FeatureUnion of word and character TF-IDF, then
    one-vs-rest logistic regression (see the module's docstring for why liblinear's dual)."""
    from sklearn.pipeline import Pipeline

    from pipeline.model.tfidf import CompactTfidf as TfidfVectorizer

    features = ngram_features(cfg, TfidfVectorizer, sublinear_tf=True, max_features=cfg.max_features or None)
    return Pipeline([("features", features), ("classifier", classifier(cfg.c))])


def classifier(c: float):
    """One-vs-rest L2 logistic regression, liblinear in the dual (fast when columns outnumber rows)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=1000,
                                                  random_state=SEED))


class LinearModel:
    """A fitted pipeline and the number of classes: probabilities [n, classes] for token lists,
    0 for a class the fit never saw."""

    def __init__(self, pipeline, num_classes: int) -> None:
        self.pipeline, self.num_classes = pipeline, num_classes

    def predict_proba(self, tokens: Sequence[list[str]]) -> np.ndarray:
        proba = np.zeros((len(tokens), self.num_classes))
        if len(tokens):
            proba[:, self.pipeline.classes_] = self.pipeline.predict_proba(list(tokens))
        return proba


def fit_linear(cfg: LinearParams, rows: SplitRows, labels: Sequence[str],
               tokens_path: Path | None = None) -> LinearModel:
    """The linear model fitted on `rows`; a one-line DataError where the rows cannot make one.

    Above cfg.out_of_core_above rows, the out-of-core one (pipeline/model/hashed_linear.py), its
    token lists streamed from tokens_path when given."""
    present = np.unique(rows.y)
    if len(present) < 2:
        raise DataError(f"the linear model's training rows hold one class only "
                        f"({labels[int(present[0])] if len(present) else 'none'!r}); it needs two")
    if len(rows.y) > cfg.out_of_core_above:
        from pipeline.model.hashed_linear import fit_hashed

        return fit_hashed(cfg, rows, labels, tokens_path)
    pipeline = build_linear(cfg)
    try:
        pipeline.fit(rows.tokens, rows.y)
    except ValueError as exc:
        if "empty vocabulary" not in str(exc):
            raise
        raise DataError(f"champion.linear: no n-gram of the training tokens fits word_ngrams "
                        f"{cfg.word_ngrams} / char_ngrams {list(cfg.char_ngrams)} (every token shorter than "
                        "the shortest character n-gram?); lower char_ngrams or set word_ngrams") from None
    # Every n-gram that max_features cut, kept only "for introspection" (scikit-learn's words): on
    # NSMC millions of strings that would dominate the saved file.
    for _, vectorizer in pipeline.named_steps["features"].transformer_list:
        vectorizer.stop_words_ = None
    return LinearModel(pipeline, len(labels))


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def save_linear(model: LinearModel, folder: Path) -> None:
    """linear.skops and linear.json (versions, classes) in `folder`, each written whole."""
    import skops.io as sio

    with atomic_file(folder / LINEAR_FILE) as tmp:
        sio.dump(model.pipeline, tmp)
    with atomic_file(folder / LINEAR_INFO) as tmp:
        tmp.write_text(json.dumps({"format": "skops", "versions": versions(), "num_classes": model.num_classes},
                                  indent=2) + "\n", encoding="utf-8")


def load_linear(folder: Path, hint: str) -> LinearModel:
    """The linear model saved in `folder`; a missing, damaged or foreign file is one StageError naming it."""
    import zipfile

    import skops.io as sio

    path, info_path = folder / LINEAR_FILE, folder / LINEAR_INFO
    for needed in (path, info_path):
        if not needed.is_file():
            raise StageError(f"{needed}: missing (the champion needs the linear model); {hint}")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        num_classes = int(info["num_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StageError(f"{info_path}: damaged ({type(exc).__name__}: {exc}); {hint}") from None
    try:
        unknown = [t for t in sio.get_untrusted_types(file=path) if t not in TRUSTED]
        if unknown:
            raise StageError(f"{path}: refers to types this code does not trust ({', '.join(unknown[:5])}); "
                             f"not loaded. {hint}")
        pipeline = sio.load(path, trusted=list(TRUSTED))
    except StageError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, TypeError, OSError, EOFError, AttributeError) as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise StageError(f"{path}: damaged, or not a linear model this code can load ({reason}); {hint}") from None
    if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
        raise StageError(f"{path}: holds a {type(pipeline).__name__}, not a fitted classifier; {hint}")
    saved = info.get("versions", {})
    differ = {k: (v, versions().get(k)) for k, v in saved.items() if versions().get(k) != v}
    if differ:
        shown = ", ".join(f"{k} {a} here {b}" for k, (a, b) in differ.items())
        print(f"predict: warning: {path} was written with other versions ({shown}); its predictions may "
              "differ", file=sys.stderr)
    return LinearModel(pipeline, num_classes)


def read_token_lists(tokens_path: Path) -> dict[str, list[str]]:
    """id -> token list, from data/tokens.parquet (read here with pandas: text/ is not model/'s to import)."""
    import pandas as pd

    if not tokens_path.is_file():
        raise DataError(f"{tokens_path}: missing; run the tokenize stage first (dvc repro tokenize)")
    with reading(tokens_path, "tokenize"):
        table = pd.read_parquet(tokens_path, columns=["id", "tokens"])
    ids = table["id"].astype(str).to_numpy()
    tokens = [list(t) for t in table["tokens"]]
    by_id: dict[str, list[str]] = {}
    for i, toks in zip(ids, tokens):
        if by_id.setdefault(i, toks) != toks:
            raise DataError(f"{tokens_path}: id {i!r} is on several rows with different texts; the linear "
                            "model and the mistakes list join rows by id: give every row its own id "
                            "(dataset.table.id_column, or leave it empty to number the rows)")
    return by_id


def split_rows(prepared_dir: Path, split: str, by_id: dict[str, list[str]], tokens_path: Path) -> SplitRows:
    path = prepared_dir / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: missing; run the prepare stage first (dvc repro prepare)")
    with reading(path, "prepare", prepared_dir), np.load(path) as arrays:
        if "id" not in arrays.files:
            raise DataError(f"{path}: has no id array (written by an older version); run the prepare stage "
                            "again (dvc repro prepare)")
        ids, y = arrays["id"].astype(str), arrays["y"]
        groups = arrays["group"] if "group" in arrays.files else None
    missing = [i for i in ids.tolist() if i not in by_id]
    if missing:
        raise DataError(f"{path}: {len(missing):,} of {len(ids):,} ids are not in {tokens_path} (first "
                        f"{missing[0]!r}): the prepared data is older than the tokens; run the prepare "
                        "stage again (dvc repro prepare)")
    return SplitRows(ids, y, [by_id[i] for i in ids.tolist()], groups)


def concat_rows(parts: list[SplitRows]) -> SplitRows:
    """Several splits' rows as one (train + val: what the served linear model is fitted on)."""
    groups = None if any(p.groups is None for p in parts) else np.concatenate([p.groups for p in parts])
    return SplitRows(np.concatenate([p.ids for p in parts]), np.concatenate([p.y for p in parts]),
                     [t for p in parts for t in p.tokens], groups)


def take(rows: SplitRows, idx: np.ndarray) -> SplitRows:
    """Some of the rows, in the order of `idx`."""
    return SplitRows(rows.ids[idx], rows.y[idx], [rows.tokens[i] for i in idx],
                     None if rows.groups is None else rows.groups[idx])


def fit_splits(prepared_dir: Path, tokens_path: Path, by_id: dict[str, list[str]] | None = None
               ) -> tuple[SplitRows, SplitRows]:
    """The train and val rows with their token lists (never the test split's)."""
    by_id = read_token_lists(tokens_path) if by_id is None else by_id
    train, val = (split_rows(prepared_dir, s, by_id, tokens_path) for s in FIT_SPLITS)
    return train, val
