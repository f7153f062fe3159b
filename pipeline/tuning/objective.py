"""One Optuna trial is one `fit` of params.yaml's train config with the trial's values merged in.

After every epoch the validation metric goes to the pruner through optuna-integration's
KerasPruningCallback; a trial whose loss goes NaN or that raises is recorded FAIL with its reason,
and the study goes on. Each trial is a nested MLflow run when the stage is tracked.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.core.config import Params, TrainParams, override
from pipeline.core.errors import StageError
from pipeline.core.tracking import end_run, experiment_tags
from pipeline.data.prepared import Prepared
from pipeline.data.splits import fold_indices
from pipeline.tuning import study as studies
from pipeline.tuning.study import say

MAX_FAILURES_IN_A_ROW = 5    # then this invocation stops: something is wrong beyond one trial


class SurplusTrial(Exception):
    """Another worker started the study's last trial first; this one is not run."""


class DuplicateBaseline(Exception):
    """Two processes opened the empty study at once and both enqueued the baseline; not run twice."""


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
        trial.set_user_attr("worker", studies.WORKER)
        self._refuse_unneeded(trial)
        values, cfg = self._config(trial)
        run = self._start_run(trial, values)
        on_epoch_end = self._epoch_hook(trial, run)
        started = time.perf_counter()
        try:
            value, best_epoch = self._train(trial, cfg, on_epoch_end)
        except BaseException as exc:
            _record_failure(trial, run, exc, time.perf_counter() - started)
            raise   # Ctrl-C: the stage run ends the nested run KILLED
        _record_result(trial, run, value, best_epoch, time.perf_counter() - started)
        return value

    def _refuse_unneeded(self, trial) -> None:
        """A trial the study does not need raises, its reason recorded: SurplusTrial, DuplicateBaseline."""
        budget = self.params.tune.n_trials
        skip: Exception | None = None
        if studies.ahead_of(trial.study, trial.number) >= budget:
            skip = SurplusTrial(f"the study already has its {budget} trials (another worker started "
                                "the last one first)")
        elif studies.is_duplicate_baseline(trial):
            skip = DuplicateBaseline("params.yaml's values are already a trial of this study (two "
                                     "processes opened it at once); not run twice")
        if skip is not None:
            trial.set_user_attr("fail_reason", f"{type(skip).__name__}: {skip}")
            raise skip

    def _config(self, trial) -> tuple[dict, TrainParams]:
        """The trial's values and the train config with them merged in; Keras starts afresh, seeded by it."""
        import keras

        from pipeline.core.seed import set_seed

        values = studies.suggest(trial, self.params.tune.space)
        cfg = override(self.base, values, "tune.space")
        keras.backend.clear_session()   # a new graph per trial: no layers piling up across trials
        set_seed(cfg.seed, tensorflow=True)
        return values, cfg

    def _start_run(self, trial, values: dict):
        """The trial's nested MLflow run, with its tags and values; None when the stage is not tracked."""
        if not self.track:
            return None
        import mlflow

        run = mlflow.start_run(run_name=f"trial {trial.number}", nested=True)
        mlflow.set_tags({"optuna.study": trial.study.study_name, "optuna.trial": str(trial.number),
                         "optuna.worker": studies.WORKER, **experiment_tags()})
        mlflow.log_params({"trial.number": trial.number, **{f"train.{k}": v for k, v in values.items()}})
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        return run

    def _epoch_hook(self, trial, run):
        """Each epoch's figures to the trial's run, its count to the trial, its metric to the pruner."""
        from optuna_integration import KerasPruningCallback

        metric = self.params.tune.metric
        monitor = metric.replace("/", "_")   # Keras-style log name, as the callback expects
        pruning = KerasPruningCallback(trial, monitor=monitor)

        def on_epoch_end(epoch: int, row: dict, fold: int | None = None) -> None:
            if run:
                import mlflow

                prefix = "" if fold is None else f"fold_{fold}/"
                mlflow.log_metrics({prefix + k: v for k, v in row.items() if "/" in k}, step=epoch + 1)
            trial.set_user_attr("epochs", epoch + 1)
            if fold is None:   # with folds, the pruner sees each fold's result instead (cross_validate)
                pruning.on_epoch_end(epoch, {monitor: row[metric]})

        return on_epoch_end

    def _train(self, trial, cfg: TrainParams, on_epoch_end) -> tuple[float, int]:
        """The trial's validation metric and kept epoch: of one fit, or over tune.folds folds."""
        from pipeline.model.training import fit

        metric, folds = self.params.tune.metric, self.params.tune.folds
        if folds > 1:
            return cross_validate(self.data.cut(cfg.maxlen), cfg, self.strategy, folds, metric,
                                  self.params.tune.sampler_seed, trial, on_epoch_end, self.progress)
        result = fit(self.data.cut(cfg.maxlen), cfg, self.strategy, on_epoch_end=on_epoch_end,
                     progress=self.progress)
        return float(result.history[result.best_epoch - 1][metric]), result.best_epoch


def _record_failure(trial, run, exc: BaseException, seconds: float) -> None:
    """A trial that raised: its time, and its run ended PRUNED, or FAIL with the reason (a Ctrl-C's
    is left to the stage run)."""
    import optuna

    trial.set_user_attr("seconds", round(seconds, 2))
    if isinstance(exc, optuna.TrialPruned):
        _end_trial_run(run, "PRUNED", seconds)
    elif isinstance(exc, Exception):
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:1000]
        trial.set_user_attr("fail_reason", reason)
        _end_trial_run(run, "FAIL", seconds, reason)


def _record_result(trial, run, value: float, best_epoch: int, seconds: float) -> None:
    """A trial that finished: its time, kept epoch and value, and its run ended COMPLETE."""
    trial.set_user_attr("seconds", round(seconds, 2))
    trial.set_user_attr("best_epoch", best_epoch)
    if run:
        import mlflow

        mlflow.log_metrics({"trial/value": value, "trial/best_epoch": best_epoch})
    _end_trial_run(run, "COMPLETE", seconds)


def fold_splits(data: Prepared, folds: int, seed: int) -> list[Prepared]:
    """Train+val cut into `folds` stratified, seeded folds: each fold is the validation split of one
    Prepared whose training split is the rest. (The test split is never seen.)"""
    import dataclasses

    pool = data.with_val_in_train().train   # train then val, row for row
    return [dataclasses.replace(data, train={k: v[fit_rows] for k, v in pool.items()},
                                val={k: v[val_rows] for k, v in pool.items()})
            for fit_rows, val_rows in fold_indices(pool["y"], folds, seed, "tune.folds", pool.get("group"))]


def cross_validate(data: Prepared, cfg: TrainParams, strategy, folds: int, metric: str, seed: int, trial,
                   on_epoch_end, progress) -> tuple[float, int]:
    """The metric averaged over k folds of train+val (and the median kept epoch).

    A 214-row validation split moves accuracy in steps of 0.47 points, too coarse to tell two
    configurations apart; k folds score every train+val row once. The pruner sees the running
    mean after each fold (its steps are folds here, not epochs).
    """
    import optuna

    from pipeline.model.training import fit

    values, epochs = [], []
    for k, part in enumerate(fold_splits(data, folds, seed)):
        result = fit(part, cfg, strategy, on_epoch_end=lambda e, row, k=k: on_epoch_end(e, row, k),
                     progress=progress)
        values.append(float(result.history[result.best_epoch - 1][metric]))
        epochs.append(result.best_epoch)
        trial.report(float(np.mean(values)), step=k)
        if k < folds - 1 and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {k + 1} of {folds}")
    trial.set_user_attr("fold_values", [round(v, 6) for v in values])
    return float(np.mean(values)), int(np.median(epochs))


def _end_trial_run(run, state: str, seconds: float, reason: str = "") -> None:
    import mlflow

    if run is None:
        return
    mlflow.log_metric("trial/seconds", seconds)
    mlflow.set_tag("optuna.state", state)
    if reason:
        mlflow.set_tag("pipeline.error", reason)
    end_run("FAILED" if state == "FAIL" else "FINISHED")   # its link, without a password in the URI


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
    started, ran = time.monotonic(), 0
    studies.fail_dead_trials(study)
    report = Report(cfg.n_trials)
    while True:
        more, stopped = trials_to_budget(study, objective, cfg, report, started)
        ran += more
        if worker:
            return ran
        wait_for_workers(study)
        if stopped or studies.counted(study) >= cfg.n_trials:
            return ran
        # A worker killed mid-trial left it RUNNING (counted) until the heartbeat failed it: the study
        # is short of that trial, and this run makes it up.
        say(f"the study is {cfg.n_trials - studies.counted(study)} trial(s) short (a worker died mid-trial): "
            "running them here")


def trials_to_budget(study, objective: Objective, cfg, report: Report, started: float) -> tuple[int, bool]:
    """One trial at a time while the study is short of tune.n_trials: (how many ran, whether it
    stopped early, on failures in a row or tune.timeout)."""
    ran = failures_in_a_row = 0
    # Waiting (enqueued) trials are drawn even when they fill the budget: a duplicate baseline
    # among them is failed unrun, which frees its place.
    while studies.counted(study) < cfg.n_trials or studies.waiting(study):
        study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[report], gc_after_trial=True)
        ran += 1
        failures_in_a_row = failures_in_a_row + 1 if report.last_state == "FAIL" else 0
        if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            say(f"{failures_in_a_row} trials failed in a row; stopping (see the reasons above)")
            return ran, True
        # Checked between trials, as Optuna does: a trial in progress finishes, and a run does at
        # least one trial however short the timeout.
        if cfg.timeout and time.monotonic() - started >= cfg.timeout and studies.counted(study) < cfg.n_trials:
            say(f"tune.timeout ({cfg.timeout:g} s) reached")
            return ran, True
    return ran, False


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
