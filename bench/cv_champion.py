"""The champion against the RNN and the linear model on k test splits instead of one: paired,
nested cross-validation over train + val.

  python bench/cv_champion.py [--root DIR] [--folds 5] [--inner-folds F] [--ensemble N] [--seed 0]
                              [--set KEY=VALUE ...]

Each of k stratified folds of train + val is held out once as a test split; the other rows are what
train + val are in the pipeline, and on them the train stage is replayed: the RNN (params.yaml's
train config with the tune stage's best values) learns on a stratified 8/9 and stops early on the
other 1/9 (the pipeline's val); the champion is chosen as the stage chooses it (champion.folds >= 2:
out-of-fold RNNs and linear models over those rows, the blend weight from champion.blend_weights;
otherwise on the 1/9), and the served linear model is fitted on all of them. The RNN, the linear
model, the blend and the champion are scored on the held-out fold, which no choice saw. The test
split is never read. One row per fold (and which kind won it), then the means and the champion's
against the linear model's (the ratio, the bar of issue 26: not below 1).

`--set model.pooling=max` (a tunable train key, its value in YAML) changes the RNN's config;
`--inner-folds 1` chooses on the inner 1/9 instead of out-of-fold (faster: one RNN per fold fewer k).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pipeline.core.config import load_params, override  # noqa: E402
from pipeline.core.overrides import parse_assignments  # noqa: E402
from pipeline.core.seed import set_seed  # noqa: E402
from pipeline.data.prepared import load_prepared  # noqa: E402
from pipeline.data.splits import by_group, fold_indices  # noqa: E402
from pipeline.model import champion as ch  # noqa: E402
from pipeline.model import linear as lin  # noqa: E402
from pipeline.model.inference import predict_proba  # noqa: E402
from pipeline.model.strategies import make_strategy  # noqa: E402
from pipeline.model.training import fit_ensemble  # noqa: E402
from pipeline.tuning.best import resolve_tuned  # noqa: E402

NAMES = ("rnn", "linear", "blend", "champion")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="folder holding data/ and tune/ (default: here)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--folds", type=int, default=5, help="outer folds: the held-out test splits")
    p.add_argument("--inner-folds", type=int, default=-1,
                   help="the champion's out-of-fold choice inside each fold (default: champion.folds as the "
                        "train stage resolves it; 1: choose on the inner val split)")
    p.add_argument("--ensemble", type=int, default=0, help="RNN members (default: the train config's)")
    p.add_argument("--seed", type=int, default=0, help="the folds' shuffle and the inner train/val split")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a train key over the tuned config, in dvc exp run -S's grammar, e.g. model.pooling=max")
    args = p.parse_args()
    from sklearn.model_selection import train_test_split

    params = resolve_tuned(load_params(args.params), args.root / "tune" / "best_params.json")
    options = parse_assignments(args.set, "--set")
    cfg = override(params.train, options, "--set") if options else params.train
    if args.ensemble:
        cfg = cfg.model_copy(update={"ensemble": args.ensemble})
    champ = params.champion
    if not champ.linear.enabled:
        p.error("champion.linear.enabled is false: there is no linear model to compare")
    inner = ch.resolve_folds(champ, params.tune.folds) if args.inner_folds < 0 else args.inner_folds
    prepared_dir, tokens_path = args.root / "data" / "prepared", args.root / "data" / "tokens.parquet"
    data = load_prepared(prepared_dir).cut(cfg.maxlen)
    rows = lin.concat_rows(list(lin.fit_splits(prepared_dir, tokens_path)))
    pool = data.with_val_in_train().train   # train then val, row for row
    assert (pool["id"].astype(str) == rows.ids).all(), "the arrays and the token lists are in the same order"
    val_share = len(data.val["y"]) / len(pool["y"])
    strategy = make_strategy("none", ())

    print(f"{args.folds} folds of {len(pool['y']):,} rows (train + val); RNN: {cfg.model.cell}, "
          f"{cfg.model.pooling} pooling, ensemble of {cfg.ensemble} {options or ''}; champion chosen "
          f"{f'{inner}-fold out-of-fold' if inner >= 2 else 'on the inner val split'}", file=sys.stderr)
    results, winners = [], []
    folds = fold_indices(pool["y"], args.folds, args.seed, "--folds", pool.get("group"))
    for k, (rest, held_out) in enumerate(folds):
        started = time.perf_counter()
        # The fold's early-stopping rows, cut by text as prepare cuts val: copies stay on one side.
        group, group_y = by_group(pool["y"][rest], pool.get("group", np.arange(len(pool["y"])))[rest])
        fit_groups, _ = train_test_split(np.arange(len(group_y)), test_size=val_share, stratify=group_y,
                                         random_state=args.seed)
        fit_idx, stop_idx = rest[np.isin(group, fit_groups)], rest[~np.isin(group, fit_groups)]
        order = np.concatenate([fit_idx, stop_idx])   # the fold's train + val, as with_val_in_train orders them
        fold = dataclasses.replace(data, train={n: a[fit_idx] for n, a in pool.items()},
                                   val={n: a[stop_idx] for n, a in pool.items()})
        set_seed(cfg.seed, tensorflow=True)
        result = fit_ensemble(fold, cfg, strategy, progress=False)
        fold_rows = lin.take(rows, order)
        if inner >= 2:
            oof_rnn = ch.rnn_out_of_fold(fold, cfg, strategy, inner, ch.kept_epochs(result.kept_epochs), False)
            oof_linear = ch.linear_out_of_fold(fold_rows, champ.linear, data.labels, inner, cfg.seed)
            choice = ch.choose(fold_rows.y, oof_rnn, oof_linear, champ, f"{inner}-fold out-of-fold")
        else:
            on_val = predict_proba(result.validated, fold.val["x"], fold.val["length"], data.padding, 256)
            inner_train, inner_val = lin.take(rows, fit_idx), lin.take(rows, stop_idx)
            choice = ch.choose(inner_val.y, on_val, ch.linear_on_validation(inner_train, inner_val, champ.linear,
                                                                            data.labels), champ, "validation")
        linear = lin.fit_linear(champ.linear, fold_rows, data.labels)
        y = pool["y"][held_out]
        rnn_p = predict_proba(result.model, pool["x"][held_out], pool["length"][held_out], data.padding, 256)
        linear_p = linear.predict_proba(lin.take(rows, held_out).tokens)
        blend_w = choice.candidates["blend"]["weight"]
        probas = {"rnn": rnn_p, "linear": linear_p, "blend": ch.blend(rnn_p, linear_p, blend_w),
                  "champion": ch.blend(rnn_p, linear_p, choice.weight)}
        results.append([float((probas[n].argmax(1) == y).mean()) for n in NAMES])
        winners.append(choice.kind if choice.kind != "blend" else f"blend {choice.weight:g}")
        print(f"fold {k + 1}: " + " ".join(f"{n} {a:.4f}" for n, a in zip(NAMES, results[-1]))
              + f"; champion {winners[-1]} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    acc = np.array(results)
    print(f"{'fold':<6} {'rows':>6} " + " ".join(f"{n:>9}" for n in NAMES) + f"  {'champion is':<12}")
    for k, ((_, held_out), row, won) in enumerate(zip(folds, acc, winners)):
        print(f"{k + 1:<6} {len(held_out):6,d} " + " ".join(f"{a:9.4f}" for a in row) + f"  {won}")
    print(f"{'mean':<6} {len(pool['y']):6,d} " + " ".join(f"{a:9.4f}" for a in acc.mean(0)))
    diff = acc[:, 3] - acc[:, 1]
    kinds = Counter(w.split()[0] for w in winners)
    print(f"champion - linear: {diff.mean():+.4f} +/- {diff.std(ddof=1):.4f} (sd over folds), not below it on "
          f"{int((diff >= 0).sum())} of {len(diff)} folds; "
          f"champion / linear: {acc[:, 3].mean() / acc[:, 1].mean():.3f}; "
          f"rnn / linear: {acc[:, 0].mean() / acc[:, 1].mean():.3f}; chosen: "
          + ", ".join(f"{k} {n}x" for k, n in kinds.most_common()))
    means = dict(zip(NAMES, acc.mean(0).round(4).tolist()))
    print(json.dumps({"folds": args.folds, "inner_folds": inner, "mean": means, "chosen": winners}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
