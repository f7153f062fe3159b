"""Which model options lift the recurrent classifier, measured on the prepared data in data/prepared/.

  python bench/model_options.py [--configs last,max,...] [--seeds 1]

Trains params.yaml's train config with each option set over it (the same split, seed and epochs;
early stopping on val loss) and prints validation and test accuracy, and the ratio of each to the
first row (params.yaml as it is). Choose on validation; the test column is for the report.
Run `dvc repro prepare` (or `make repro`) first: the data is whatever data/prepared/ holds.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pipeline.core import paths  # noqa: E402
from pipeline.core.config import load_params, override  # noqa: E402
from pipeline.core.seed import set_seed  # noqa: E402
from pipeline.data.prepared import load_prepared  # noqa: E402
from pipeline.data.sequences import shorten  # noqa: E402
from pipeline.model.inference import predict_proba  # noqa: E402
from pipeline.model.strategies import make_strategy  # noqa: E402
from pipeline.model.training import fit_ensemble  # noqa: E402

CONFIGS = {
    "params.yaml": {},
    "last": {"model.pooling": "last"},
    "max": {"model.pooling": "max"},
    "mean": {"model.pooling": "mean"},
    "concat": {"model.pooling": "concat"},
    "attention": {"model.pooling": "attention"},
    "attention x5": {"model.pooling": "attention", "ensemble": 5},
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names (default: all)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per config; accuracies are averaged")
    p.add_argument("--params", default="params.yaml")
    args = p.parse_args()
    params = load_params(args.params)
    data = load_prepared()
    strategy = make_strategy("none", ())
    with np.load(paths.PREPARED_DIR / "test.npz") as f:
        test_split = dict(f)
    rows = []
    for name in args.configs.split(","):
        accs = []
        started = time.perf_counter()
        for seed in range(args.seeds):
            options = dict(CONFIGS[name])
            members = options.pop("ensemble", params.train.ensemble)   # not a tunable key: set directly
            cfg = override(params.train, options, name).model_copy(
                update={"seed": params.train.seed + seed, "ensemble": members})
            set_seed(cfg.seed, tensorflow=True)
            cut = data.cut(cfg.maxlen)
            result = fit_ensemble(cut, cfg, strategy, progress=False)
            val = result.best["val/accuracy"]
            test = shorten(test_split, cfg.maxlen, data.padding, data.truncating) if cfg.maxlen else test_split
            proba = predict_proba(result.model, test["x"], test["length"], data.padding, 256)
            accs.append((val, float((proba.argmax(1) == test["y"]).mean())))
        val, test = np.mean(accs, axis=0)
        rows.append((name, val, test, (time.perf_counter() - started) / args.seeds))
        print(f"{name}: val {val:.4f} test {test:.4f}", file=sys.stderr, flush=True)
    base_val, base_test = rows[0][1], rows[0][2]
    print(f"{'config':<20} {'val acc':>8} {'x first':>8} {'test acc':>9} {'x first':>8} {'s/run':>7}")
    for name, val, test, seconds in rows:
        print(f"{name:<20} {val:8.4f} {val / base_val:8.3f} {test:9.4f} {test / base_test:8.3f} {seconds:7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
