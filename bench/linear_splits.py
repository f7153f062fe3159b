"""How much the linear model's test figure owes to the split: its accuracy on each split, and
cross-validated on train + val.

  python bench/linear_splits.py [--root DIR] [--folds 5]

Reads DIR/data/tokens.parquet and DIR/data/prepared/ as the evaluate stage does and fits the
stages' linear model (params.yaml's champion.linear) four ways: on train, scored on val and on test;
on train + val (the served model's fit), scored on test; and stratified k-fold cross-validation over
train + val (every row scored once by a model that did not see it). On a small dataset the
spread between the test figure and the cross-validated one says how far one 10% split can move
a comparison. The last line is the test figure against the cross-validated mean (the ratio).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.core.config import load_params
from pipeline.model import linear as b


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="folder holding data/ (default: here)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="the folds' shuffle")
    args = p.parse_args()
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cfg = load_params(args.params).champion.linear
    tokens, prepared = args.root / "data" / "tokens.parquet", args.root / "data" / "prepared"
    by_id = b.read_token_lists(tokens)
    train, val, test = (b.split_rows(prepared, s, by_id, tokens) for s in ("train", "val", "test"))
    labels = json.loads((prepared / "labels.json").read_text(encoding="utf-8"))
    both = b.concat_rows([train, val])

    def accuracy(fit: b.SplitRows, on: b.SplitRows) -> float:
        return float((b.fit_linear(cfg, fit, labels).predict_proba(on.tokens).argmax(1) == on.y).mean())

    rows = [("train -> val", len(train.y), len(val.y), accuracy(train, val)),
            ("train -> test", len(train.y), len(test.y), accuracy(train, test)),
            ("train+val -> test (served)", len(both.y), len(test.y), accuracy(both, test))]
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    predicted = cross_val_predict(b.build_linear(cfg), both.tokens, both.y, cv=folds)
    per_fold = [float((predicted[i] == both.y[i]).mean()) for _, i in folds.split(both.tokens, both.y)]
    cv = float((predicted == both.y).mean())
    rows.append((f"{args.folds}-fold CV on train+val", len(both.y), len(both.y), cv))
    print(f"{'fit -> scored on':<30} {'fit rows':>8} {'scored':>7} {'accuracy':>9}")
    for name, n_fit, n_scored, acc in rows:
        print(f"{name:<30} {n_fit:8,d} {n_scored:7,d} {acc:9.4f}")
    print(f"folds: {', '.join(f'{a:.4f}' for a in per_fold)} (min {min(per_fold):.4f}, max {max(per_fold):.4f})")
    print(f"test (served) / cross-validated: {rows[2][3] / cv:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
