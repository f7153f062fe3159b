"""The recurrent model against the linear baseline on k test splits instead of one: paired
cross-validation over train + val.

  python bench/cv_rnn_vs_baseline.py [--root DIR] [--folds 5] [--ensemble N] [--seed 0] [--set KEY=VALUE ...]

Each of k stratified folds of train + val is held out once as a test split; the other rows are what
train + val are in the pipeline. On them the run is replayed as the stages do it: the RNN (params.yaml's
train config with the tune stage's best values, as the train stage uses it) learns on a
stratified 8/9 of them and stops early on the other 1/9 (the pipeline's val); the baseline
(evaluate.baseline) is fitted on all of them, as the evaluate stage fits it on train + val. Both
are scored on the held-out fold. The test split is never read. One row per fold, then the mean
difference with its standard deviation, and the RNN's mean accuracy against the baseline's (the
ratio). `--set model.embedding_init=ppmi` (a tunable train key, its value in YAML) changes the
RNN's config, to compare an option on k folds rather than on one validation split.

On a small dataset one 10% test split can favour either model by several points; k paired splits
say whether a difference is the models' or the split's.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from pipeline.core.config import load_params, override  # noqa: E402
from pipeline.core.seed import set_seed  # noqa: E402
from pipeline.data.prepared import load_prepared  # noqa: E402
from pipeline.model import baseline as b  # noqa: E402
from pipeline.model.inference import predict_proba  # noqa: E402
from pipeline.model.strategies import make_strategy  # noqa: E402
from pipeline.model.training import fit_ensemble  # noqa: E402
from pipeline.tuning.best import resolve_tuned  # noqa: E402
from pipeline.tuning.objective import fold_indices  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="folder holding data/ and tune/ (default: here)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--ensemble", type=int, default=0, help="RNN members (default: the train config's)")
    p.add_argument("--seed", type=int, default=0, help="the folds' shuffle and the inner train/val split")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a train key over the tuned config, e.g. model.embedding_init=ppmi")
    args = p.parse_args()
    from sklearn.model_selection import train_test_split

    params = resolve_tuned(load_params(args.params), args.root / "tune" / "best_params.json")
    options = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    cfg = override(params.train, options, "--set") if options else params.train
    if args.ensemble:
        cfg = cfg.model_copy(update={"ensemble": args.ensemble})
    prepared_dir, tokens_path = args.root / "data" / "prepared", args.root / "data" / "tokens.parquet"
    data = load_prepared(prepared_dir).cut(cfg.maxlen)
    by_id = b.read_token_lists(tokens_path)
    rows = b.concat_rows([b.split_rows(prepared_dir, s, by_id, tokens_path) for s in ("train", "val")])
    pool = data.with_val_in_train().train   # train then val, row for row
    assert (pool["id"].astype(str) == rows.ids).all(), "the arrays and the token lists are in the same order"
    labels = json.loads((prepared_dir / "labels.json").read_text(encoding="utf-8"))
    val_share = len(data.val["y"]) / len(pool["y"])
    strategy = make_strategy("none", ())

    def take(idx: np.ndarray) -> b.SplitRows:
        return b.SplitRows(rows.ids[idx], rows.y[idx], [rows.tokens[i] for i in idx])

    print(f"{args.folds} folds of {len(pool['y']):,} rows (train + val); RNN: {cfg.model.cell}, "
          f"{cfg.model.pooling} pooling, ensemble of {cfg.ensemble} {options or ''}", file=sys.stderr)
    results = []
    folds = fold_indices(pool["y"], args.folds, args.seed)   # the tune stage's folds (tune.folds)
    for k, (rest, held_out) in enumerate(folds):
        started = time.perf_counter()
        fit_idx, stop_idx = train_test_split(rest, test_size=val_share, stratify=pool["y"][rest],
                                             random_state=args.seed)
        fold = dataclasses.replace(data, train={n: a[fit_idx] for n, a in pool.items()},
                                   val={n: a[stop_idx] for n, a in pool.items()})
        set_seed(cfg.seed, tensorflow=True)
        model = fit_ensemble(fold, cfg, strategy, progress=False).model
        proba = predict_proba(model, pool["x"][held_out], pool["length"][held_out], data.padding, 256)
        rnn = float((proba.argmax(1) == pool["y"][held_out]).mean())
        base = b.fit_and_score(params.evaluate.baseline, take(rest), take(held_out), labels).metrics["test/accuracy"]
        results.append((rnn, base))
        print(f"fold {k + 1}: rnn {rnn:.4f} baseline {base:.4f} ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)
    rnn, base = np.array(results).T
    diff = rnn - base
    print(f"{'fold':<6} {'rows':>6} {'rnn':>8} {'baseline':>9} {'rnn - baseline':>15}")
    for k, ((_, held_out), r, bl) in enumerate(zip(folds, rnn, base)):
        print(f"{k + 1:<6} {len(held_out):6,d} {r:8.4f} {bl:9.4f} {r - bl:+15.4f}")
    print(f"{'mean':<6} {len(pool['y']):6,d} {rnn.mean():8.4f} {base.mean():9.4f} {diff.mean():+15.4f}")
    print(f"difference: {diff.mean():+.4f} +/- {diff.std(ddof=1):.4f} (sd over folds); rnn wins "
          f"{int((diff > 0).sum())} of {len(diff)} folds; rnn / baseline: {rnn.mean() / base.mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
