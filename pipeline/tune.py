"""tune stage: an Optuna study over tune.space finds the train hyperparameters; train then uses them.

Each trial trains params.yaml's train config with the trial's values merged over it: the train
stage's own `fit`, on the prepared arrays loaded once (optionally a stratified tune.subsample of
the training split), scored on the validation split. After every epoch the validation metric goes
to the pruner through optuna-integration's KerasPruningCallback; a trial whose loss goes NaN or that
raises is recorded FAIL with its reason, and the study goes on.

The study lives in tune.storage ($OPTUNA_STORAGE wins; default SQLite tune/optuna.db) under a name
derived from the dataset, the space and the data: re-running resumes it (tune.n_trials is the
study's total), and a changed space starts a new study. `--worker` joins the same study from more
processes or machines (journal or PostgreSQL storage; see README).

MLflow: this invocation is one run; each trial a nested run with its params, per-epoch metrics,
its state (tag optuna.state) and duration; the best trial is tagged on the parent.

Writes tune/best_params.json (train reads it when train.use_tuned), tune/study.json (summary, DVC
metrics), tune/trials.csv, tune/plots/history.png, importances.png and parallel.png.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pipeline import paths, studies  # noqa: E402
from pipeline.atomic import atomic_file, write_json, write_png  # noqa: E402
from pipeline.cli import StageError, run_stage, stage_parser  # noqa: E402
from pipeline.config import Params, TrainParams, override  # noqa: E402
from pipeline.studies import say  # noqa: E402
from pipeline.tracking import experiment_tags  # noqa: E402
from pipeline.train import Prepared  # noqa: E402

READS = ("dataset.name", "train", "tune")
SUMMARY = paths.TUNE_DIR / "study.json"
TRIALS_CSV = paths.TUNE_DIR / "trials.csv"
PLOTS_DIR = paths.TUNE_DIR / "plots"
PLOTS = {"history": (9, 5), "importances": (9, 5), "parallel": (16, 6)}   # name: size in inches
MAX_FAILURES_IN_A_ROW = 5    # then this invocation stops: something is wrong beyond one trial


class SurplusTrial(Exception):
    """Another worker started the study's last trial first; this one is not run."""


def subsample(split: dict, fraction: float, seed: int) -> dict:
    """A stratified, seeded fraction of a split (at least one row per class)."""
    if fraction >= 1:
        return split
    rng = np.random.default_rng(seed)
    y = split["y"]
    keep = np.sort(np.concatenate([
        rng.choice(rows, max(1, round(len(rows) * fraction)), replace=False)
        for rows in (np.flatnonzero(y == label) for label in np.unique(y))]))
    return {name: values[keep] for name, values in split.items()}


def check_space_fits_data(params: Params, data: Prepared) -> None:
    """Ranges the prepared data cannot serve fail before any trial runs."""
    dim = params.tune.space.get("maxlen")
    if dim is None:
        return
    highest = max(dim.choices) if dim.type == "categorical" else dim.high
    if highest > data.maxlen:
        raise StageError(f"tune.space.maxlen: goes up to {highest:g}, above the prepared length "
                         f"(prepare.maxlen {data.maxlen}); lower it or raise prepare.maxlen")


@dataclass
class Objective:
    """One call is one trial: merge, train, report per epoch, return the validation metric."""
    data: Prepared
    base: TrainParams           # params.yaml's train, with tune.epochs applied
    params: Params
    strategy: Any
    track: bool
    progress: bool | None = None

    def __call__(self, trial) -> float:
        import keras
        from optuna_integration import KerasPruningCallback

        from pipeline.seed import set_seed
        from pipeline.train import fit

        budget = self.params.tune.n_trials
        if studies.ahead_of(trial.study, trial.number) >= budget:
            raise SurplusTrial(f"the study already has its {budget} trials (another worker started "
                               "the last one first)")
        trial.set_user_attr("worker", studies.WORKER)
        values = studies.suggest(trial, self.params.tune.space)
        cfg = override(self.base, values, "tune.space")
        metric = self.params.tune.metric
        keras.backend.clear_session()   # a new graph per trial: no layers piling up across trials
        set_seed(cfg.seed)
        run = None
        if self.track:
            import mlflow

            run = mlflow.start_run(run_name=f"trial {trial.number}", nested=True)
            mlflow.set_tags({"optuna.study": trial.study.study_name, "optuna.trial": str(trial.number),
                             "optuna.worker": studies.WORKER, **experiment_tags()})
            mlflow.log_params({"trial.number": trial.number, **{f"train.{k}": v for k, v in values.items()}})
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
        monitor = metric.replace("/", "_")   # Keras-style log name, as the callback expects
        pruning = KerasPruningCallback(trial, monitor=monitor)

        def on_epoch_end(epoch: int, row: dict) -> None:
            if run:
                mlflow.log_metrics({k: v for k, v in row.items() if "/" in k}, step=epoch + 1)
            trial.set_user_attr("epochs", epoch + 1)
            pruning.on_epoch_end(epoch, {monitor: row[metric]})

        started = time.perf_counter()
        try:
            result = fit(self.data.cut(cfg.maxlen), cfg, self.strategy, on_epoch_end=on_epoch_end,
                         progress=self.progress)
        except BaseException as exc:
            import optuna

            seconds = time.perf_counter() - started
            trial.set_user_attr("seconds", round(seconds, 2))
            if isinstance(exc, optuna.TrialPruned):
                _end_trial_run(run, "PRUNED", seconds)
            elif isinstance(exc, Exception):
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:1000]
                trial.set_user_attr("fail_reason", reason)
                _end_trial_run(run, "FAIL", seconds, reason)
            raise   # Ctrl-C: the stage run ends the nested run KILLED
        seconds = time.perf_counter() - started
        kept = result.history[result.best_epoch - 1]
        value = float(kept[metric])
        trial.set_user_attr("seconds", round(seconds, 2))
        trial.set_user_attr("best_epoch", result.best_epoch)
        if run:
            mlflow.log_metrics({"trial/value": value, "trial/best_epoch": result.best_epoch})
        _end_trial_run(run, "COMPLETE", seconds)
        return value


def _end_trial_run(run, state: str, seconds: float, reason: str = "") -> None:
    import mlflow

    if run is None:
        return
    mlflow.log_metric("trial/seconds", seconds)
    mlflow.set_tag("optuna.state", state)
    if reason:
        mlflow.set_tag("pipeline.error", reason)
    mlflow.end_run("FAILED" if state == "FAIL" else "FINISHED")


def fail_reason(trial) -> str:
    """Ours (user attr, set by Objective), else the one Optuna recorded; "" for other states."""
    return trial.user_attrs.get("fail_reason") or trial.system_attrs.get("fail_reason", "")


class Report:
    """A study callback: one line per trial this process finished; remembers the last state."""

    def __init__(self, budget: int) -> None:
        self.budget, self.last_state = budget, None

    def __call__(self, study, trial) -> None:
        self.last_state = trial.state.name
        if self.last_state == "COMPLETE":
            what = f"{trial.value:.4f}"
        elif self.last_state == "PRUNED":
            what = f"pruned after epoch {trial.user_attrs.get('epochs', '?')}"
        else:
            what = f"failed: {fail_reason(trial) or '?'}"
        best = ""
        if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            best = f"; best {study.best_value:.4f} (trial {study.best_trial.number})"
        say(f"trial {trial.number} ({studies.counted(study)}/{self.budget}): {what} "
            f"in {trial.user_attrs.get('seconds', 0):.0f} s{best}")


def run_trials(study, objective: Objective, cfg, worker: bool) -> int:
    """Trials until the study holds tune.n_trials (all workers together) or tune.timeout passes;
    how many this process ran."""
    started, failures_in_a_row, ran = time.monotonic(), 0, 0
    studies.fail_dead_trials(study)
    report = Report(cfg.n_trials)
    while studies.counted(study) < cfg.n_trials:
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[report], gc_after_trial=True)
        ran += 1
        failures_in_a_row = failures_in_a_row + 1 if report.last_state == "FAIL" else 0
        if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            say(f"{failures_in_a_row} trials failed in a row; stopping (see the reasons above)")
            break
        # Checked between trials, as Optuna does: a trial in progress finishes, and a run does at
        # least one trial however short the timeout.
        if cfg.timeout and time.monotonic() - started >= cfg.timeout and studies.counted(study) < cfg.n_trials:
            say(f"tune.timeout ({cfg.timeout:g} s) reached")
            break
    if not worker:
        wait_for_workers(study)
    return ran


def wait_for_workers(study, poll: float = 5.0) -> None:
    """The outputs describe the whole study: wait for trials still running in other workers."""
    from optuna.trial import TrialState

    announced = False
    while running := study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not announced:
            say(f"waiting for {len(running)} trial(s) running in other workers")
            announced = True
        time.sleep(poll)
        studies.fail_dead_trials(study)


# --- outputs ------------------------------------------------------------------------------------

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
    return out


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
                figure = _message_figure(name, f"not available yet: {exc}")
        write_png(figure, folder / f"{name}.png", dpi=90, bbox_inches="tight")


def _message_figure(title: str, text: str):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 2.5))
    figure.text(0.5, 0.5, f"{title}\n{text}", ha="center", va="center", wrap=True)
    return figure


def write_outputs(study, url: str, metric: str) -> dict:
    info = summary(study, url, metric)
    if "best" not in info:
        t = info["trials"]
        reasons = [r for r in map(fail_reason, study.get_trials(deepcopy=False)) if r]
        raise StageError(f"tune: no trial completed ({t['fail']} failed, {t['pruned']} pruned)"
                         + (f"; first failure: {reasons[0]}" if reasons else "")
                         + "; previous outputs are left as they were")
    plot_files(study, metric, PLOTS_DIR)
    with atomic_file(TRIALS_CSV) as tmp:
        trials_table(study).to_csv(tmp, index=False)
    write_json(SUMMARY, info)
    best = info["best"]
    # Last: train reads this file, so it changes only once everything beside it is in place.
    write_json(paths.BEST_PARAMS, {"study": info["study"], "trial": best["trial"], "metric": metric,
                                   "value": best["value"], "params": best["params"]})
    return info


def write_untuned() -> None:
    """tune.n_trials 0: train keeps params.yaml's values (empty params), and the outputs say so."""
    note = "tune.n_trials is 0: no study; train uses params.yaml's train section as it is"
    for name in PLOTS:
        write_png(_message_figure(name, note), PLOTS_DIR / f"{name}.png", dpi=90)
    with atomic_file(TRIALS_CSV) as tmp:
        tmp.write_text("trial,state,value\n")
    write_json(SUMMARY, {"study": None, "note": note, "trials": {"complete": 0}})
    write_json(paths.BEST_PARAMS, {"study": None, "trial": None, "metric": None, "value": None,
                                   "params": {}, "note": note})


# --- the stage ----------------------------------------------------------------------------------

def _body(params: Params, args) -> None:
    cfg = params.tune
    if cfg.n_trials == 0:
        if not args.worker:
            write_untuned()
            say(f"tune.n_trials is 0: no tuning -> {paths.BEST_PARAMS}")
        return
    import optuna

    from pipeline import tracking
    from pipeline.train import data_fingerprint, load_prepared, make_strategy

    optuna.logging.set_verbosity(optuna.logging.WARNING)   # one line per trial comes from `report`
    data = load_prepared()
    check_space_fits_data(params, data)
    data = dataclasses.replace(data, train=subsample(data.train, cfg.subsample, cfg.sampler_seed))
    epochs = cfg.epochs or params.train.epochs
    base = override(params.train, {"epochs": epochs}, "tune.epochs")
    url = studies.storage_url(cfg)
    name = studies.study_name(params, base, data_fingerprint(paths.PREPARED_DIR))
    seed = studies.sampler_seed(cfg, args.worker)
    study = optuna.create_study(
        study_name=name, storage=studies.open_storage(url, worker=args.worker),
        sampler=studies.make_sampler(cfg, seed), pruner=studies.make_pruner(cfg, epochs),
        direction=studies.direction(cfg.metric), load_if_exists=True)
    done = studies.counted(study)
    if not args.worker and not study.trials:
        start = studies.baseline(cfg.space, params.train, data.maxlen)
        study.enqueue_trial(start, user_attrs={"baseline": True})
        say(f"trial 0 is params.yaml's own train values: {start}")
    say(f"study {name} in {studies.redact(url)}: {done} of {cfg.n_trials} trials"
        + (" (resuming)" if done else "") + (" as a worker" if args.worker else ""))
    track = tracking.is_tracking()
    if track:
        import mlflow

        mlflow.set_tags({"optuna.study": name, "optuna.storage": studies.redact(url),
                         "optuna.worker": studies.WORKER, "optuna.role": "worker" if args.worker else "main"})
        mlflow.log_params({"tune.sampler_seed_used": seed, "tune.train_rows": len(data.train["y"])})
    # Trials under multi_worker would need every worker in step; Optuna workers replace it here.
    distribute = "auto" if params.train.distribute == "multi_worker" else params.train.distribute
    objective = Objective(data, base, params, make_strategy(distribute, params.train.devices), track)
    ran = run_trials(study, objective, cfg, args.worker)
    if args.worker:
        say(f"worker done: {ran} trial(s) here; the study has {studies.counted(study)} of {cfg.n_trials}")
        return
    info = write_outputs(study, url, cfg.metric)
    best = info["best"]
    if track:
        import mlflow

        mlflow.set_tags({"tune.best_trial": str(best["trial"]), "tune.best_value": f"{best['value']:.6g}",
                         "tune.best_run_id": str(best["mlflow_run_id"])})
        mlflow.log_metrics({"tune/best_value": best["value"],
                            **{f"tune/trials/{k}": v for k, v in info["trials"].items()}})
        tracking.log_files([paths.BEST_PARAMS, SUMMARY, TRIALS_CSV], "tune")
        tracking.log_files([PLOTS_DIR / f"{p}.png" for p in PLOTS], "tune/plots")
    t = info["trials"]
    say(f"best trial {best['trial']}: {cfg.metric} {best['value']:.4f} with {best['params']} "
        f"({t['complete']} complete, {t['pruned']} pruned, {t['fail']} failed) -> {paths.BEST_PARAMS}")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m pipeline.tune", __doc__ + """
workers: start the stage once (dvc repro, or python -m pipeline.tune), and in other terminals or
machines `python -m pipeline.tune --worker` with the same params.yaml, prepared data and storage:
  one machine:    tune.storage: journal:tune/optuna.journal
  many machines:  OPTUNA_STORAGE=postgresql://user:password@host/db (every worker the same URL)
browse a study: make dashboard (optuna-dashboard on the default SQLite storage).""")
    parser.add_argument("--worker", action="store_true",
                        help="join the study and run trials until it has tune.n_trials; write no outputs "
                             "(the stage run that started the study writes them)")
    return run_stage("tune", _body, parser, argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
