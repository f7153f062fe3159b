"""The linear candidate at scale: the same n-grams hashed, and logistic regression by SGD over batches.

Above champion.linear.out_of_core_above fit rows, `fit_linear` (pipeline/model/linear.py) fits this
instead of TF-IDF + liblinear, whose vocabulary, sparse matrix and dual all grow with the rows. Here:
- features: the same word 1..n-grams of the token lists and character n-grams of the joined tokens,
  through HashingVectorizer (alternate_sign=False, champion.linear.hash_features columns each). It is
  stateless: nothing is learnt from the rows, so a batch is vectorised alone. There is no IDF (it
  needs document frequencies before the first batch); instead each n-gram counts once per text
  (binary, the limit of TF-IDF's sublinear tf) and each text's vector has unit length (l2), per
  vectorizer, as TF-IDF's are.
- classifier: SGDClassifier(loss="log_loss"), L2, trained by partial_fit over batches of BATCH_ROWS
  rows for champion.linear.sgd_epochs epochs. Its alpha is 1 / (c * rows), the penalty
  LogisticRegression's C puts on the same objective, so champion.linear.c means what it does there.
- batches: `parquet_batches` reads data/tokens.parquet in pyarrow record batches, keeps the fit
  split's rows, and draws each batch at random from a bounded buffer of them (SHUFFLE_BATCHES
  batches); row groups are read in a random order. Memory is the buffer's, not the rows'.
  `memory_batches` does the same over token lists already in memory (the out-of-fold fits).
Deterministic: one seeded RNG per epoch (SEED + epoch) orders the rows; the classifier is seeded.
The result is a LinearModel around a scikit-learn Pipeline (features, classifier), so the champion,
blend, evaluate and serving code use it unchanged; it saves as linear.skops as the TF-IDF one does,
with no type beyond scikit-learn's own and linear.py's analyzers (WordNgrams, joined).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from pipeline.core.config import LinearParams
from pipeline.core.errors import DataError
from pipeline.model.linear import SEED, LinearModel, SplitRows, ngram_features

BATCH_ROWS = 10_000        # rows per partial_fit
SHUFFLE_BATCHES = 8        # record batches held at once, rows drawn at random among them

Batch = tuple[list[list[str]], np.ndarray]


def build_hashed(cfg: LinearParams, alpha: float):
    """An unfitted Pipeline over token lists: hashed word and character n-grams, then SGD log loss."""
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import Pipeline

    features = ngram_features(cfg, HashingVectorizer, n_features=cfg.hash_features, alternate_sign=False,
                              binary=True, norm="l2")
    classifier = SGDClassifier(loss="log_loss", penalty="l2", alpha=alpha, random_state=SEED)
    return Pipeline([("features", features), ("classifier", classifier)])


def _draw(buffer: list[Batch], rng: np.random.Generator, batch_rows: int) -> Iterator[Batch]:
    """The buffered rows, permuted, in batches of batch_rows (the last one may be short)."""
    tokens = [t for b in buffer for t in b[0]]
    y = np.concatenate([b[1] for b in buffer])
    order = rng.permutation(len(y))
    for start in range(0, len(order), batch_rows):
        part = order[start:start + batch_rows]
        yield [tokens[i] for i in part], y[part]


def _shuffled(source: Iterator[Batch], rng: np.random.Generator, batch_rows: int) -> Iterator[Batch]:
    """Batches of batch_rows rows, each drawn from a buffer of SHUFFLE_BATCHES batches' rows."""
    buffer: list[Batch] = []
    held = 0
    for tokens, y in source:
        if len(y):
            buffer.append((tokens, y))
            held += len(y)
        if held >= SHUFFLE_BATCHES * batch_rows:
            yield from _draw(buffer, rng, batch_rows)
            buffer, held = [], 0
    if buffer:
        yield from _draw(buffer, rng, batch_rows)


def parquet_batches(tokens_path: Path, ids: np.ndarray, y: np.ndarray, epoch: int,
                    batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """The rows of `ids` (labels `y`) read from tokens.parquet in record batches: each once an epoch,
    in batches of at most batch_rows, in an order set by SEED + epoch."""
    import pyarrow.parquet as pq

    label = dict(zip(np.asarray(ids).astype(str).tolist(), np.asarray(y).tolist()))
    rng = np.random.default_rng(SEED + epoch)
    file = pq.ParquetFile(tokens_path)
    seen: set[str] = set()

    def source() -> Iterator[Batch]:
        groups = np.random.default_rng([SEED, epoch]).permutation(file.num_row_groups)   # not rng: as memory_batches
        for group in groups.tolist():
            for record in file.iter_batches(batch_size=batch_rows, row_groups=[group], columns=["id", "tokens"]):
                tokens, labels = [], []
                for i, toks in zip(record.column("id").to_pylist(), record.column("tokens").to_pylist()):
                    i = str(i)
                    if i in label and i not in seen:   # an id on several rows: read_token_lists keeps one
                        seen.add(i)
                        tokens.append(list(toks))
                        labels.append(label[i])
                yield tokens, np.asarray(labels, dtype=np.asarray(y).dtype)

    yield from _shuffled(source(), rng, batch_rows)
    if len(seen) != len(label):
        missing = next(i for i in label if i not in seen)
        raise DataError(f"{tokens_path}: {len(label) - len(seen):,} of {len(label):,} fit ids are not in it "
                        f"(first {missing!r}); run the prepare stage again (dvc repro prepare)")


def memory_batches(rows: SplitRows, epoch: int, batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """The same order of batches over token lists already in memory."""
    rng = np.random.default_rng(SEED + epoch)
    source = ((rows.tokens[s:s + batch_rows], rows.y[s:s + batch_rows]) for s in range(0, len(rows.y), batch_rows))
    yield from _shuffled(source, rng, batch_rows)


def fit_hashed(cfg: LinearParams, rows: SplitRows, labels: Sequence[str], tokens_path: Path | None = None,
               batch_rows: int = BATCH_ROWS) -> LinearModel:
    """The out-of-core linear model of `rows`: its token lists streamed from tokens_path when given
    (rows.tokens is then not read), else taken from rows.tokens."""
    present = np.unique(rows.y)
    pipeline = build_hashed(cfg, alpha=1.0 / (cfg.c * max(1, len(rows.y))))
    features, classifier = pipeline.named_steps["features"], pipeline.named_steps["classifier"]
    features.fit([["a"]])   # stateless: marks it fitted
    batches: Callable[[int], Iterator[Batch]] = (
        (lambda e: parquet_batches(tokens_path, rows.ids, rows.y, e, batch_rows)) if tokens_path is not None
        else (lambda e: memory_batches(rows, e, batch_rows)))
    for epoch in range(cfg.sgd_epochs):
        for tokens, y in batches(epoch):
            classifier.partial_fit(features.transform(tokens), y, classes=present)
    return LinearModel(pipeline, len(labels))
