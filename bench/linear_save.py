"""How long saving the linear model takes: with scikit-learn's TfidfVectorizer (the naive way) against
pipeline/model/tfidf.py's CompactTfidf, which stores its vocabulary as two arrays.

  python bench/linear_save.py [--root DIR] [--rows N]

Fits params.yaml's champion.linear on DIR's train split (data/tokens.parquet and data/prepared/,
what tokenize and prepare left; the first N rows), then saves the same fitted pipeline with skops
twice in this one process: its vectorizers as plain TfidfVectorizer (the same fitted attributes)
and as CompactTfidf, loads each back, checks both give the same probabilities, and prints seconds,
file sizes and the ratio. skops writes a dict entry by entry and each numpy int64 index as its own
.npy member, checking the zip's name list before each: the naive save grows with the square of
the vocabulary.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.core.config import load_params
from pipeline.model import linear as lin


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="folder holding data/ (default: here)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--rows", type=int, default=600, help="training rows to fit on (the naive save is slow)")
    args = p.parse_args()
    import skops.io as sio
    from sklearn.feature_extraction.text import TfidfVectorizer

    from pipeline.model.tfidf import CompactTfidf

    cfg = load_params(args.params).champion.linear
    train, _ = lin.fit_splits(args.root / "data" / "prepared", args.root / "data" / "tokens.parquet")
    rows = lin.take(train, np.arange(min(args.rows, len(train.y))))
    labels = [str(i) for i in range(int(train.y.max()) + 1)]
    model = lin.fit_linear(cfg, rows, labels)
    vectorizers = [v for _, v in model.pipeline.named_steps["features"].transformer_list]
    grams = sum(len(v.vocabulary_) for v in vectorizers)
    results, answers = [], []
    for name, cls in (("TfidfVectorizer (naive)", TfidfVectorizer), ("CompactTfidf (the stage)", CompactTfidf)):
        for v in vectorizers:
            v.__class__ = cls
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            sio.dump(model.pipeline, Path(tmp) / "linear.skops")
            seconds = time.perf_counter() - started
            size = (Path(tmp) / "linear.skops").stat().st_size
            trusted = [*lin.TRUSTED, "sklearn.feature_extraction.text.TfidfVectorizer"]
            loaded = sio.load(Path(tmp) / "linear.skops", trusted=trusted)
        answers.append(loaded.predict_proba(rows.tokens[:50]))
        results.append((name, seconds, size))
        print(f"{name}: {seconds:.2f} s", file=sys.stderr, flush=True)
    assert np.array_equal(answers[0], answers[1]), "both files give the same probabilities"
    print(f"{len(rows.y):,} rows, {grams:,} n-grams in the vocabularies; both files load to the same probabilities")
    print(f"{'vocabulary':34} {'seconds':>8} {'MB':>7} {'speed-up':>9}")
    for name, seconds, size in results:
        print(f"{name:34} {seconds:8.2f} {size / 1e6:7.1f} {results[0][1] / seconds:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
