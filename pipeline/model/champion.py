"""The served model: the best of three candidates on validation, the RNN, the linear model, or their blend.

The blend's probabilities are `w * rnn + (1 - w) * linear`, with the RNN's weight w chosen from
champion.blend_weights (0 < w < 1; w = 1 is the RNN, w = 0 the linear model). Every figure the choice
reads comes from models that did not train on the rows scored:
- champion.folds 1: the validation split. The RNN's probabilities are the first fits' (with
  train.refit, before they were trained again on val), the linear model's from a fit on train only.
- champion.folds k >= 2 (0: as tune.folds): out-of-fold predictions over train + val. Each of k
  stratified folds is held out once; one RNN (the train config, one member, seed train.seed) trains on
  the rest for the epochs the train stage's fit kept (no early stopping: it never sees the held-out
  fold), and a linear model is fitted on the same rows. On a small dataset this scores w on every
  train + val row instead of one 214-row split, where one row is 0.47 points.
The test split is never read here. The champion is the simplest candidate (linear, then rnn, then
blend) that the best one by champion.select_by beats by no more than champion.simpler_within standard
errors of their paired per-row difference (the one-standard-error rule: on 1,700 Seoul 120 rows the
blend's out-of-fold lead over the linear model was noise, and on five outer folds it served 0.0021 below
it); 0 keeps only exact ties. champion.serve can name one instead.
The served linear model is then fitted on train + val, as the RNN's refit is (pipeline/stages/train.py).
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from pipeline.core.config import ChampionParams, LinearParams, TrainParams
from pipeline.data.prepared import Prepared
from pipeline.data.splits import fold_indices
from pipeline.model.linear import LinearModel, SplitRows, fit_linear, take

KINDS = ("linear", "rnn", "blend")   # simplest first: a tie goes to the earlier one
RNN_WEIGHT = {"linear": 0.0, "rnn": 1.0}


def blend(rnn: np.ndarray, linear: np.ndarray, weight: float) -> np.ndarray:
    """The served probabilities of a blend: weight * rnn + (1 - weight) * linear, in float64.

    Each row is divided by its sum: the float32 parts' rows are off 1 by up to ~1e-7 (46 classes), more
    than the sqrt(eps) of float64 that sklearn's log_loss allows before it warns "do not sum to one"."""
    mixed = weight * np.asarray(rnn, np.float64) + (1.0 - weight) * np.asarray(linear, np.float64)
    return mixed / mixed.sum(1, keepdims=True)


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """val/accuracy and val/loss (log loss, probabilities clipped at 1e-7 as evaluate's are)."""
    p = np.clip(proba[np.arange(len(y)), y], 1e-7, 1.0)
    return {"val/accuracy": float((proba.argmax(1) == y).mean()), "val/loss": float(-np.log(p).mean())}


def per_row(y: np.ndarray, proba: np.ndarray, select_by: str) -> np.ndarray:
    """Each row's part of the selected figure, higher is better: right (1) or wrong (0), or the log
    probability of the true class (clipped as scores() clips it)."""
    if select_by == "val/accuracy":
        return (proba.argmax(1) == y).astype(np.float64)
    return np.log(np.clip(proba[np.arange(len(y)), y], 1e-7, 1.0))


def standard_errors(best: np.ndarray, other: np.ndarray) -> float:
    """How many standard errors of the paired per-row difference `best` leads `other` by (inf when the
    difference is the same on every row and positive; 0 when there is none)."""
    d = best - other
    lead = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    if se == 0.0:
        return 0.0 if lead <= 0 else float("inf")
    return lead / se


def _better(select_by: str):
    """A sort key, higher is better: the selected figure (loss negated)."""
    sign = -1.0 if select_by == "val/loss" else 1.0
    return lambda figures: sign * figures[select_by]


@dataclass(frozen=True)
class Choice:
    """Which candidate serves, with every candidate's validation figures and how they were made."""
    kind: str                      # the champion: rnn | linear | blend
    weight: float                  # the RNN's weight in the served probabilities (1: rnn, 0: linear)
    runner_up: str | None          # the challenger; None when the RNN is the only candidate
    select_by: str
    selected_on: str               # "validation" or "<k>-fold out-of-fold"
    rows: int                      # the rows the figures are of
    candidates: dict[str, dict]    # kind -> val/accuracy, val/loss (blend: and weight)
    grid: list[dict] = field(default_factory=list)   # each blend weight tried, with its figures
    best: str | None = None        # the best by select_by (the champion unless a simpler one is within reach)
    lead_se: dict[str, float] = field(default_factory=dict)   # kind -> the best's lead over it, in standard errors
    named: bool = False            # champion.serve named the kind (not auto)

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


def choose(y: np.ndarray, rnn: np.ndarray, linear: np.ndarray | None, cfg: ChampionParams,
           selected_on: str) -> Choice:
    """The champion among the candidates scored on rows `y` (never test rows)."""
    better = _better(cfg.select_by)
    candidates = {"rnn": scores(y, rnn)}
    probas = {"rnn": rnn}
    grid: list[dict] = []
    if linear is not None:
        probas["linear"] = linear
        candidates["linear"] = scores(y, linear)
        grid = [{"weight": w, **scores(y, blend(rnn, linear, w))} for w in cfg.blend_weights]
        other = "val/loss" if cfg.select_by == "val/accuracy" else "val/accuracy"
        # Between weights the other figure breaks a tie (accuracy moves in whole rows); then the lower weight.
        best = max(grid, key=lambda g: (better(g), _better(other)(g), -g["weight"]))
        candidates["blend"] = dict(best)
        probas["blend"] = blend(rnn, linear, best["weight"])
    ranked = sorted((k for k in KINDS if k in candidates), key=lambda k: (-better(candidates[k]), KINDS.index(k)))
    rows = {k: per_row(y, p, cfg.select_by) for k, p in probas.items()}
    lead_se = {k: standard_errors(rows[ranked[0]], rows[k]) for k in ranked}
    # The simplest candidate the best one does not clearly beat (the best itself leads by 0).
    within = next(k for k in KINDS if k in lead_se and lead_se[k] <= cfg.simpler_within)
    kind = within if cfg.serve == "auto" else cfg.serve   # a named one is a candidate (config.py)
    runner_up = next((k for k in ranked if k != kind), None)
    weight = candidates["blend"]["weight"] if kind == "blend" else RNN_WEIGHT[kind]
    ordered = {k: candidates[k] for k in ("rnn", "linear", "blend") if k in candidates}   # the RNN first
    return Choice(kind, weight, runner_up, cfg.select_by, selected_on, len(y), ordered, grid, ranked[0],
                  {k: round(v, 3) if np.isfinite(v) else v for k, v in lead_se.items()}, cfg.serve != "auto")


def resolve_folds(cfg: ChampionParams, tune_folds: int) -> int:
    return cfg.folds or tune_folds


def rnn_out_of_fold(data: Prepared, cfg: TrainParams, strategy, folds: int, epochs: int,
                    progress: bool | None = None) -> np.ndarray:
    """Out-of-fold probabilities [train + val rows, classes] of one RNN per fold, each trained for
    `epochs` epochs on the other folds (under `strategy`: every worker of a multi-worker run calls it)."""
    from pipeline.core.seed import set_seed
    from pipeline.model.inference import predict_proba
    from pipeline.model.training import fit

    pool = data.with_val_in_train().train   # train then val, row for row
    once = cfg.model_copy(update={"ensemble": 1, "refit": False, "early_stopping_patience": 0})
    out = np.zeros((len(pool["y"]), len(data.labels)))
    for k, (rest, held) in enumerate(fold_indices(pool["y"], folds, cfg.seed, "champion.folds", pool.get("group"))):
        print(f"train: out-of-fold RNN {k + 1}/{folds}: {len(rest):,} rows, {epochs} epoch(s)", file=sys.stderr)
        set_seed(cfg.seed, tensorflow=True)
        part = dataclasses.replace(data, train={n: a[rest] for n, a in pool.items()},
                                   val={n: a[held] for n, a in pool.items()})
        model = fit(part, once, strategy, None, None, progress, stop_after=epochs, keep_last=True).model
        out[held] = predict_proba(model, pool["x"][held], pool["length"][held], data.padding, 256)
    return out


def linear_out_of_fold(rows: SplitRows, cfg: LinearParams, labels: Sequence[str], folds: int,
                       seed: int) -> np.ndarray:
    """Out-of-fold probabilities of the linear model on the same folds as rnn_out_of_fold's."""
    out = np.zeros((len(rows.y), len(labels)))
    for rest, held in fold_indices(rows.y, folds, seed, "champion.folds", rows.groups):
        out[held] = fit_linear(cfg, take(rows, rest), labels).predict_proba(take(rows, held).tokens)
    return out


def kept_epochs(history_epochs: Sequence[int]) -> int:
    """The epoch count the fold fits train for: the median of what the train stage's fits kept."""
    return max(1, int(np.median(list(history_epochs) or [1])))


def linear_on_validation(train: SplitRows, val: SplitRows, cfg: LinearParams, labels: Sequence[str]) -> np.ndarray:
    """The linear model fitted on train only, its probabilities on val."""
    model: LinearModel = fit_linear(cfg, train, labels)
    return model.predict_proba(val.tokens)


def select(data: Prepared, validated, cfg: ChampionParams, train_cfg: TrainParams, folds: int,
           oof_rnn: np.ndarray | None, prepared_dir, tokens_path) -> tuple[Choice, LinearModel | None]:
    """The choice, and the linear model to serve (fitted on train + val; None when it is off).

    `validated` is the RNN whose validation figures are honest (FitResult.validated); with folds >= 2,
    `oof_rnn` is rnn_out_of_fold's. Only the train and val splits are read.
    """
    from pipeline.model.inference import predict_proba
    from pipeline.model.linear import concat_rows, fit_splits

    def rnn_on_val() -> np.ndarray:
        return predict_proba(validated, data.val["x"], data.val["length"], data.padding, cfg.batch_size)

    if not cfg.linear.enabled:
        return choose(data.val["y"], rnn_on_val(), None, cfg, "validation"), None
    train, val = fit_splits(prepared_dir, tokens_path)
    for split, rows in (("train", train), ("val", val)):   # the arrays and the token lists, row for row
        if not np.array_equal(getattr(data, split)["id"].astype(str), rows.ids):
            raise ValueError(f"{prepared_dir}/{split}.npz: its ids are not in the order the token lists were read")
    both = concat_rows([train, val])
    if folds >= 2:
        linear = linear_out_of_fold(both, cfg.linear, data.labels, folds, train_cfg.seed)
        choice = choose(both.y, oof_rnn, linear, cfg, f"{folds}-fold out-of-fold")
    else:
        choice = choose(val.y, rnn_on_val(), linear_on_validation(train, val, cfg.linear, data.labels), cfg,
                        "validation")
    return choice, fit_linear(cfg.linear, both, data.labels, tokens_path)


def describe(choice: Choice, train_cfg: TrainParams, linear_cfg: LinearParams | None, kind: str | None = None) -> str:
    """One paragraph for the registry: what the model of `kind` (the champion by default) is made of."""
    kind = kind or choice.kind
    m = train_cfg.model
    rnn = (f"RNN ({'bidirectional ' if m.bidirectional else ''}{m.cell}, {m.units} units, {m.pooling} pooling"
           f"{f', ensemble of {train_cfg.ensemble}' if train_cfg.ensemble > 1 else ''})")
    linear = ""
    if linear_cfg is not None:
        grams = [f"word 1-{linear_cfg.word_ngrams}-grams" if linear_cfg.word_ngrams else "",
                 f"character {linear_cfg.char_ngrams[0]}-{linear_cfg.char_ngrams[1]}-grams"
                 if linear_cfg.char_ngrams else ""]
        linear = f"linear model (TF-IDF {' + '.join(g for g in grams if g)}, logistic regression C={linear_cfg.c:g})"
    figures = choice.candidates[kind]
    if kind == "blend":
        what = f"blend: {figures['weight']:.2f} x {rnn} + {1 - figures['weight']:.2f} x {linear}"
    else:
        what = rnn if kind == "rnn" else linear
    role = "champion" if kind == choice.kind else "challenger"
    others = ", ".join(f"{k} {v[choice.select_by]:.4f}" for k, v in choice.candidates.items() if k != kind)
    return (f"{role}: {what}. Chosen on {choice.selected_on} {choice.select_by} over {choice.rows:,} rows: "
            f"{figures[choice.select_by]:.4f} (others: {others}).")
