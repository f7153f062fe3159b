"""tune stage: an Optuna study over tune.space finds the train hyperparameters; train then uses them.

Each trial trains params.yaml's train config with the trial's values merged over it: the train
stage's own `fit`, on the prepared arrays loaded once (optionally a stratified tune.subsample of
the training split), scored on the validation split. After every epoch the validation metric goes
to the pruner through optuna-integration's KerasPruningCallback; a trial whose loss goes NaN or that
raises is recorded FAIL with its reason, and the study goes on.

The study lives in tune.storage ($OPTUNA_STORAGE wins; default SQLite tune/optuna.db) under a name
derived from the dataset, the space and the data: re-running resumes it (tune.n_trials is the
study's total), and a changed space starts a new study. `--worker` joins the same study from more
processes or machines (journal or PostgreSQL storage; see docs/tuning.md).

MLflow: this invocation is one run; each trial a nested run with its params, per-epoch metrics,
its state (tag optuna.state) and duration; the best trial is tagged on the parent.

Writes tune/best_params.json (train reads it when train.use_tuned), tune/study.json (summary, DVC
metrics), tune/trials.csv, tune/plots/history.png, importances.png and parallel.png.
"""
from __future__ import annotations

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.core import paths, recording, workers  # noqa: E402
from pipeline.core.cli import run_stage, stage_parser  # noqa: E402
from pipeline.core.config import Params, TrainParams, override  # noqa: E402
from pipeline.core.errors import StageError  # noqa: E402
from pipeline.tuning import study as studies  # noqa: E402
from pipeline.tuning.objective import Objective, check_space_fits_data, run_trials, subsample  # noqa: E402
from pipeline.tuning.outputs import PLOTS, write_outputs, write_untuned  # noqa: E402
from pipeline.tuning.study import NOT_READ_BY_TRIALS, say  # noqa: E402

# The train keys a trial reads (dvc.yaml's list for tune), not the whole section.
READS = ("dataset.name", *(f"train.{key}" for key in TrainParams.model_fields if key not in NOT_READ_BY_TRIALS),
         "tune")


def _body(params: Params, args) -> None:
    cfg = params.tune
    if cfg.n_trials == 0:
        if not args.worker:
            write_untuned()
            say(f"tune.n_trials is 0: no tuning -> {paths.BEST_PARAMS}")
        return
    # $TUNE_WORKERS: the workers start first, loading TensorFlow and the data while this process does.
    with workers.spawned(extra_workers(args, studies.storage_url(cfg)), "tune", fatal=False):
        _tune(params, args)


def _tune(params: Params, args) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)   # one line per trial comes from `report`
    studies.no_traceback_on_interrupt()
    cfg = params.tune
    data = _load(params)
    base = override(params.train, {"epochs": cfg.epochs or params.train.epochs}, "tune.epochs")
    url = studies.storage_url(cfg)
    study, name, seed = _open_study(params, base, data, url, args.worker)
    recording.record_study(name, studies.redact(url), studies.WORKER, "worker" if args.worker else "main", seed,
                           len(data.train["y"]))
    ran = run_trials(study, _objective(params, data, base), cfg, args.worker)
    if args.worker:
        say(f"worker done: {ran} trial(s) here; the study has {studies.counted(study)} of {cfg.n_trials}")
        return
    info = write_outputs(study, url, cfg.metric)
    recording.record_tuning(info, PLOTS)
    _report(info, cfg.metric)


def _load(params: Params):
    """The prepared arrays, checked against the space, the training split subsampled (tune.subsample)."""
    from pipeline.data.prepared import load_prepared

    cfg = params.tune
    data = load_prepared()
    check_space_fits_data(params, data)
    return dataclasses.replace(data, train=subsample(data.train, cfg.subsample, cfg.sampler_seed))


def _open_study(params: Params, base: TrainParams, data, url: str, worker: bool):
    """The study of this space and data, created or resumed, its trial 0 params.yaml's own values;
    the study, its name and this process's sampler seed."""
    import optuna

    from pipeline.data.prepared import data_fingerprint

    cfg = params.tune
    name = studies.study_name(params, base, data_fingerprint(paths.PREPARED_DIR))
    seed = studies.sampler_seed(cfg, worker)
    study = optuna.create_study(
        study_name=name, storage=studies.open_storage(url, worker=worker),
        sampler=studies.make_sampler(cfg, seed), pruner=studies.make_pruner(cfg, base.epochs),
        direction=studies.direction(cfg.metric), load_if_exists=True)
    done = studies.counted(study)
    start = studies.baseline(cfg.space, params.train, data.maxlen)
    if studies.ensure_baseline(study, start):   # whoever opens the study first, main or worker
        say(f"trial 0 is params.yaml's own train values: {start}")
    say(f"study {name} in {studies.redact(url)}: {done} of {cfg.n_trials} trials"
        + (" (resuming)" if done else "") + (" as a worker" if worker else ""))
    return study, name, seed


def _objective(params: Params, data, base: TrainParams) -> Objective:
    from pipeline.model.strategies import make_strategy

    # Trials under multi_worker would need every worker in step; Optuna workers replace it here.
    distribute = "auto" if params.train.distribute == "multi_worker" else params.train.distribute
    return Objective(data, base, params, make_strategy(distribute, params.train.devices), recording.recording())


def _report(info: dict, metric: str) -> None:
    best, t, g = info["best"], info["trials"], info["gain"]
    over = (f"; {'+' if g['improvement'] >= 0 else ''}{g['improvement']:.4f} over params.yaml's values "
            f"(trial {g['baseline_trial']}: {g['baseline_value']:.4f})") if g else ""
    say(f"best trial {best['trial']}: {metric} {best['value']:.4f}{over} with {best['params']} "
        f"({t['complete']} complete, {t['pruned']} pruned, {t['fail']} failed) -> {paths.BEST_PARAMS}")


def extra_workers(args, url: str) -> list[tuple[list[str], dict[str, str]]]:
    """$TUNE_WORKERS-1 `--worker` processes beside this run, on its study (none for a worker)."""
    n = workers.count("TUNE_WORKERS")
    if args.worker or n <= 1:
        return []
    if studies.is_sqlite(url):
        raise StageError(f"TUNE_WORKERS={n} needs a storage several processes share, not SQLite ({url}): set "
                         "OPTUNA_STORAGE (the local cluster's env file does) or "
                         "tune.storage: journal:tune/optuna.journal")
    argv = [sys.executable, "-m", "pipeline.tune", "--worker", "--params", args.params,
            *(["--no-track"] if args.no_track else [])]
    return [(argv, workers.worker_env())] * (n - 1)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m pipeline.tune", __doc__ + """
workers: start the stage once (dvc repro, or python -m pipeline.tune), and in other terminals or
machines `python -m pipeline.tune --worker` with the same params.yaml, prepared data and storage:
  one machine:    tune.storage: journal:tune/optuna.journal
  many machines:  OPTUNA_STORAGE=postgresql://user:password@host/db (every worker the same URL)
  this machine:   TUNE_WORKERS=3 starts 2 workers beside the stage (they stop with it)
browse a study: make dashboard (optuna-dashboard on the default SQLite storage).""")
    parser.add_argument("--worker", action="store_true",
                        help="join the study and run trials until it has tune.n_trials; write no outputs "
                             "(the stage run that started the study writes them)")
    workers.bind_to_parent()   # a --worker started by the stage (TUNE_WORKERS) dies with it
    return run_stage("tune", _body, parser, argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
