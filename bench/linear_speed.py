"""How long the linear model takes to fit: its classifier against plain multinomial lbfgs.

  python bench/linear_speed.py [--root DIR]

Reads DIR/data/tokens.parquet and DIR/data/prepared/ (what tokenize and prepare left), builds the
linear model's features as the train stage does (params.yaml's champion.linear), then fits on train+val
(1) LogisticRegression with sklearn's defaults (lbfgs, multinomial: the naive choice) and (2) the
stage's classifier (one-vs-rest, liblinear in the dual), and prints seconds and test accuracy of
each, with the ratio to the naive one. Both fits run in this one process, one after the other.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.core.config import load_params
from pipeline.model import linear as b


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="folder holding data/ (default: here)")
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args()
    cfg = load_params(args.params).champion.linear
    tokens = args.root / "data" / "tokens.parquet"
    by_id = b.read_token_lists(tokens)
    rows = {s: b.split_rows(args.root / "data" / "prepared", s, by_id, tokens) for s in ("train", "val", "test")}
    features = b.build_linear(cfg).named_steps["features"]
    started = time.perf_counter()
    x = features.fit_transform(rows["train"].tokens + rows["val"].tokens)
    x_test = features.transform(rows["test"].tokens)
    y = np.concatenate([rows["train"].y, rows["val"].y])
    print(f"features: {x.shape[0]:,} rows x {x.shape[1]:,} columns, {x.nnz:,} non-zeros in "
          f"{time.perf_counter() - started:.1f} s; {len(np.unique(y))} classes", flush=True)
    from sklearn.linear_model import LogisticRegression

    results = []
    for name, model in (("lbfgs multinomial (sklearn default)", LogisticRegression(C=cfg.c, max_iter=5000)),
                        ("one-vs-rest liblinear dual (stage)", b.classifier(cfg.c))):
        started = time.perf_counter()
        model.fit(x, y)
        seconds = time.perf_counter() - started
        accuracy = float((model.predict(x_test) == rows["test"].y).mean())
        results.append((name, seconds, accuracy))
        print(f"{name}: {seconds:.1f} s, test {accuracy:.4f}", file=sys.stderr, flush=True)
    naive_seconds, naive_accuracy = results[0][1], results[0][2]
    print(f"{'classifier':36} {'seconds':>8} {'speed-up':>9} {'test acc':>9} {'diff':>8}")
    for name, seconds, accuracy in results:
        print(f"{name:36} {seconds:8.1f} {naive_seconds / seconds:9.2f} {accuracy:9.4f} "
              f"{accuracy - naive_accuracy:+8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
