"""The linear baseline every run is scored against: TF-IDF n-grams of the same tokens + LogisticRegression.

It answers one question: does the recurrent model earn its cost? The baseline reads the full token
lists of data/tokens.parquet (not the vocabulary-cut, maxlen-truncated ids the RNN sees: that is
what someone trying a baseline would use), joined to the prepared split by id. It is fitted on the
train and val rows together (the RNN learns from train and uses val to stop early and to tune; the
baseline has nothing to tune) and scored on the test rows with the same `scores()` as the RNN, so
the two sets of figures are comparable. Deterministic: liblinear's coordinate descent is seeded.

The classifier is one logistic regression per class (one-vs-rest), each solved by liblinear in the
dual. n-gram TF-IDF gives far more columns than rows (Reuters: 444,526 columns for 8,982 rows), and
the dual's size is the rows': on Reuters it fits in 50 s where multinomial lbfgs took 286-405 s,
with test accuracy 0.8206 against 0.8161; on Seoul 120 0.3 s against 6.6 s, the same 0.8738
(bench/baseline_speed.py). For two classes it is the one plain logistic regression.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.config import BaselineParams
from pipeline.core.errors import DataError, ParamsError
from pipeline.model.evaluation import scores

SEED = 0
FIT_SPLITS = ("train", "val")


@dataclass(frozen=True)
class SplitRows:
    """One prepared split's rows: ids, label ids and the full token lists from tokens.parquet."""
    ids: np.ndarray
    y: np.ndarray
    tokens: list[list[str]]


@dataclass(frozen=True)
class BaselineResult:
    metrics: dict           # scores() of the test split: test/loss, test/accuracy, test/macro_f1, ...
    proba: np.ndarray       # [test rows, classes], in the test split's order
    model: object           # the fitted sklearn Pipeline
    fit_ids: np.ndarray     # the ids of the rows it was fitted on (train + val)


def word_ngrams(n: int):
    """The word analyzer: each 1..n-gram of a token list as a tuple of tokens (no separator can
    collide with a token's own characters)."""
    def analyze(tokens: list[str]) -> list[tuple[str, ...]]:
        return [tuple(tokens[i:i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1)]
    return analyze


def joined(tokens: list[str]) -> str:
    """The character analyzer's text: the tokens joined by spaces."""
    return " ".join(tokens)


def build_baseline(cfg: BaselineParams):
    """An unfitted Pipeline over token lists: a FeatureUnion of word and character TF-IDF, then
    one-vs-rest logistic regression (see the module's docstring for why liblinear's dual)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline

    limit = cfg.max_features or None
    features = []
    if cfg.word_ngrams:
        features.append(("word", TfidfVectorizer(analyzer=word_ngrams(cfg.word_ngrams), sublinear_tf=True,
                                                 max_features=limit)))
    if cfg.char_ngrams:
        # A callable preprocessor replaces the default one (lowercasing included): the tokens as
        # tokenize left them, as the RNN sees them.
        features.append(("char", TfidfVectorizer(analyzer="char", preprocessor=joined,
                                                 ngram_range=tuple(cfg.char_ngrams), sublinear_tf=True,
                                                 max_features=limit)))
    if not features:
        raise ParamsError("evaluate.baseline: word_ngrams is 0 and char_ngrams is []: the baseline has no "
                          "features; set either, or evaluate.baseline.enabled: false")
    return Pipeline([("features", FeatureUnion(features)), ("classifier", classifier(cfg.c))])


def classifier(c: float):
    """One-vs-rest L2 logistic regression, liblinear in the dual (fast when columns outnumber rows)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear", dual=True, max_iter=1000,
                                                  random_state=SEED))


def read_token_lists(tokens_path: Path) -> dict[str, list[str]]:
    """id -> token list, from data/tokens.parquet (read here with pandas: text/ is not model/'s to import)."""
    import pandas as pd

    if not tokens_path.is_file():
        raise DataError(f"{tokens_path}: missing; run the tokenize stage first (dvc repro tokenize)")
    table = pd.read_parquet(tokens_path, columns=["id", "tokens"])
    ids = table["id"].astype(str).to_numpy()
    tokens = [list(t) for t in table["tokens"]]
    by_id: dict[str, list[str]] = {}
    for i, toks in zip(ids, tokens):
        if by_id.setdefault(i, toks) != toks:
            raise DataError(f"{tokens_path}: id {i!r} is on several rows with different texts; the baseline "
                            "and the mistakes list join rows by id: give every row its own id "
                            "(dataset.table.id_column, or leave it empty to number the rows)")
    return by_id


def split_rows(prepared_dir: Path, split: str, by_id: dict[str, list[str]], tokens_path: Path) -> SplitRows:
    path = prepared_dir / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: missing; run the prepare stage first (dvc repro prepare)")
    with np.load(path) as arrays:
        if "id" not in arrays.files:
            raise DataError(f"{path}: has no id array (written by an older version); run the prepare stage "
                            "again (dvc repro prepare)")
        ids, y = arrays["id"].astype(str), arrays["y"]
    missing = [i for i in ids.tolist() if i not in by_id]
    if missing:
        raise DataError(f"{path}: {len(missing):,} of {len(ids):,} ids are not in {tokens_path} (first "
                        f"{missing[0]!r}): the prepared data is older than the tokens; run the prepare "
                        "stage again (dvc repro prepare)")
    return SplitRows(ids, y, [by_id[i] for i in ids.tolist()])


def concat_rows(parts: list[SplitRows]) -> SplitRows:
    """Several splits' rows as one (train + val: what the baseline is fitted on)."""
    return SplitRows(np.concatenate([p.ids for p in parts]), np.concatenate([p.y for p in parts]),
                     [t for p in parts for t in p.tokens])


def fit_and_score(cfg: BaselineParams, fit: SplitRows, test: SplitRows, labels: list[str]) -> BaselineResult:
    """Fit on `fit`, score on `test` with the RNN's scores(); classes absent from `fit` get probability 0."""
    present = np.unique(fit.y)
    if len(present) < 2:
        raise DataError(f"the baseline's training rows (train + val) hold one class only "
                        f"({labels[int(present[0])] if len(present) else 'none'!r}); it needs two")
    model = build_baseline(cfg)
    try:
        model.fit(fit.tokens, fit.y)
    except ValueError as exc:
        if "empty vocabulary" not in str(exc):
            raise
        raise DataError(f"evaluate.baseline: no n-gram of the training tokens fits word_ngrams "
                        f"{cfg.word_ngrams} / char_ngrams {list(cfg.char_ngrams)} (every token shorter than "
                        "the shortest character n-gram?); lower char_ngrams or set word_ngrams") from None
    proba = np.zeros((len(test.y), len(labels)))
    proba[:, model.classes_] = model.predict_proba(test.tokens)
    return BaselineResult(scores(test.y, proba, labels), proba, model, fit.ids)


def run_baseline(cfg: BaselineParams, tokens_path: Path, prepared_dir: Path, labels: list[str],
                 by_id: dict[str, list[str]] | None = None) -> BaselineResult:
    """The baseline on the prepared split: fitted on train + val, scored on test."""
    by_id = read_token_lists(tokens_path) if by_id is None else by_id
    fit = concat_rows([split_rows(prepared_dir, s, by_id, tokens_path) for s in FIT_SPLITS])
    return fit_and_score(cfg, fit, split_rows(prepared_dir, "test", by_id, tokens_path), labels)
