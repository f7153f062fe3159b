"""How long the evaluate stage's linear baseline takes, and what a cap on its solver costs in accuracy.

  python bench/baseline_speed.py [--root DIR] [--max-iter 100,300,5000]

Reads DIR/data/tokens.parquet and DIR/data/prepared/ (what tokenize and prepare left), builds the
baseline's features as evaluate does (params.yaml's evaluate.baseline), then fits LogisticRegression
with each max_iter and prints seconds, iterations and test accuracy, with ratios to the last
(uncapped) row. Fitting and scoring run in this one process.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from pipeline.core.config import load_params
from pipeline.model import baseline as b


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="folder holding data/ (default: here)")
    p.add_argument("--max-iter", default="100,300,5000", help="comma-separated caps; the last is the reference")
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args()
    cfg = load_params(args.params).evaluate.baseline
    tokens = args.root / "data" / "tokens.parquet"
    by_id = b.read_token_lists(tokens)
    rows = {s: b.split_rows(args.root / "data" / "prepared", s, by_id, tokens) for s in ("train", "val", "test")}
    features = b.build_baseline(cfg).named_steps["features"]
    started = time.perf_counter()
    x = features.fit_transform(rows["train"].tokens + rows["val"].tokens)
    x_test = features.transform(rows["test"].tokens)
    y = np.concatenate([rows["train"].y, rows["val"].y])
    print(f"features: {x.shape[0]:,} rows x {x.shape[1]:,} columns, {x.nnz:,} non-zeros in "
          f"{time.perf_counter() - started:.1f} s; {len(np.unique(y))} classes", flush=True)
    from sklearn.linear_model import LogisticRegression

    results = []
    for cap in map(int, args.max_iter.split(",")):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # ConvergenceWarning under a cap is the point here
            model = LogisticRegression(C=cfg.c, max_iter=cap, random_state=b.SEED).fit(x, y)
        seconds = time.perf_counter() - started
        accuracy = float((model.predict(x_test) == rows["test"].y).mean())
        results.append((cap, seconds, int(np.max(model.n_iter_)), accuracy))
        print(f"max_iter {cap}: {seconds:.1f} s, {int(np.max(model.n_iter_))} iterations, test {accuracy:.4f}",
              file=sys.stderr, flush=True)
    ref_seconds, ref_accuracy = results[-1][1], results[-1][3]
    print(f"{'max_iter':>8} {'seconds':>8} {'x last':>7} {'iters':>6} {'test acc':>9} {'x last':>7}")
    for cap, seconds, iters, accuracy in results:
        print(f"{cap:8d} {seconds:8.1f} {seconds / ref_seconds:7.3f} {iters:6d} {accuracy:9.4f} "
              f"{accuracy / ref_accuracy:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
