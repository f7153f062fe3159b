"""What a study leaves: tune/best_params.json (train reads it), study.json, best.json (the best value
alone, a plain output: scores.json is the one DVC metric), trials.csv and plots."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pipeline.core import paths
from pipeline.core.atomic import atomic_file, write_json, write_png
from pipeline.core.errors import StageError
from pipeline.core.plotting import message_figure
from pipeline.tuning import study as studies
from pipeline.tuning.objective import fail_reason

PLOTS = {"history": (9, 5), "importances": (9, 5), "parallel": (16, 6)}   # name: size in inches
BEST_VALUE = "tune/best_value"   # tune/best.json's one key, as the MLflow metric of the stage run


def summary(study, url: str, metric: str) -> dict:
    from collections import Counter

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    out = {"study": study.study_name, "storage": studies.redact(url), "metric": metric,
           "direction": studies.direction(metric),
           "trials": {s: states.get(s, 0) for s in ("complete", "pruned", "fail", "running")},
           "seconds": round(sum(t.user_attrs.get("seconds", 0) for t in trials), 1)}
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if complete:
        best = study.best_trial
        out["best"] = {"trial": best.number, "value": best.value, "params": best.params,
                       "best_epoch": best.user_attrs.get("best_epoch"),
                       "mlflow_run_id": best.user_attrs.get("mlflow_run_id")}
        out["gain"] = gain(complete, best, metric)
    return out


def gain(complete: list, best, metric: str) -> dict | None:
    """What tuning found over params.yaml's own values (the baseline trial), on validation.

    Positive is better whichever the direction (for a loss, the decrease). None when the baseline
    trial did not complete (pruned, failed, or a study from before it was enqueued).
    """
    start = next((t for t in complete if t.user_attrs.get(studies.BASELINE)), None)
    if start is None:
        return None
    sign = -1.0 if studies.direction(metric) == "minimize" else 1.0
    return {"baseline_trial": start.number, "baseline_value": start.value, "best_value": best.value,
            "improvement": sign * (best.value - start.value)}


def trials_table(study):
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"trial": t.number, "state": t.state.name, "value": t.value,
                     "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds"),
                     **{f"param.{k}": v for k, v in t.params.items()},
                     "reason": fail_reason(t)})
    return pd.DataFrame(rows)


def plot_files(study, metric: str, folder: Path) -> None:
    """Optuna's own plots (matplotlib backend); a plot it cannot draw yet says why instead."""
    import matplotlib
    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as ovm

    makers = {"history": lambda: ovm.plot_optimization_history(study, target_name=metric),
              "importances": lambda: ovm.plot_param_importances(study),
              "parallel": lambda: ovm.plot_parallel_coordinate(study, target_name=metric)}
    for name in PLOTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the matplotlib backend is "experimental"
            try:
                axes = makers[name]()
                figure = np.ravel(axes)[0].figure
                figure.set_size_inches(*PLOTS[name])
            except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError) as exc:
                figure = message_figure(name, f"not available yet: {exc}")
        write_png(figure, folder / f"{name}.png", dpi=90, bbox_inches="tight")


def write_outputs(study, url: str, metric: str) -> dict:
    info = summary(study, url, metric)
    if "best" not in info:
        t = info["trials"]
        reasons = [r for r in map(fail_reason, study.get_trials(deepcopy=False)) if r]
        raise StageError(f"tune: no trial completed ({t['fail']} failed, {t['pruned']} pruned)"
                         + (f"; first failure: {reasons[0]}" if reasons else "")
                         + "; previous outputs are left as they were")
    plot_files(study, metric, paths.TUNE_PLOTS_DIR)
    with atomic_file(paths.TRIALS_CSV) as tmp:
        trials_table(study).to_csv(tmp, index=False)
    write_json(paths.TUNE_SUMMARY, info)
    best = info["best"]
    write_json(paths.TUNE_BEST, {BEST_VALUE: best["value"]})
    # Last: train reads this file, so it changes only once everything beside it is in place.
    write_json(paths.BEST_PARAMS, {"study": info["study"], "trial": best["trial"], "metric": metric,
                                   "value": best["value"], "params": best["params"]})
    return info


def write_untuned() -> None:
    """tune.n_trials 0: train keeps params.yaml's values (empty params), and the outputs say so."""
    note = "tune.n_trials is 0: no study; train uses params.yaml's train section as it is"
    for name in PLOTS:
        write_png(message_figure(name, note), paths.TUNE_PLOTS_DIR / f"{name}.png", dpi=90)
    with atomic_file(paths.TRIALS_CSV) as tmp:
        tmp.write_text("trial,state,value\n")
    write_json(paths.TUNE_SUMMARY, {"study": None, "note": note, "trials": {"complete": 0}})
    write_json(paths.TUNE_BEST, {BEST_VALUE: None})
    write_json(paths.BEST_PARAMS, {"study": None, "trial": None, "metric": None, "value": None,
                                   "params": {}, "note": note})
