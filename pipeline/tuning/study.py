"""Optuna plumbing for the tune stage: storage, study name, sampler, pruner, the trial budget.

Storages, by tune.storage (or $OPTUNA_STORAGE, which wins):
  ""                     SQLite file tune/optuna.db: one process at a time
  journal:<file>         Optuna's journal file: several processes on one machine (file locks)
  postgresql://... etc.  any SQLAlchemy URL Optuna's RDBStorage takes: workers on many machines
SQLite takes one writer at a time, so workers refuse it ("database is locked" is the known failure).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from pipeline.core import paths, process
from pipeline.core.config import Params, SearchDim, TrainParams, TuneParams, to_dict
from pipeline.core.errors import StageError, mask_credentials

if TYPE_CHECKING:
    import optuna

DEFAULT_DB = paths.OPTUNA_DB
HEARTBEAT_SECONDS = 20        # RDB storages: a running trial's worker checks in this often ...
GRACE_SECONDS = 90            # ... and is declared dead (its trial FAIL) after this long silent
# Shorter ones for a test that kills a worker (not params: they change nothing a trial measures).
HEARTBEAT_VAR, GRACE_VAR = "PIPELINE_TUNE_HEARTBEAT_SECONDS", "PIPELINE_TUNE_GRACE_SECONDS"
SCHEMA_ATTEMPTS = 4
# host:pid:start time: the start time tells a reused pid from the worker that ran a trial.
WORKER = f"{process.HOST}:{os.getpid()}:{process.started(os.getpid()) or 0:.2f}"
# Train keys a trial never reads: trials are one fit of params.yaml's train values (no ensemble, no
# refit, never the tuned values). The tune stage does not depend on them (dvc.yaml), and they are out
# of the study's name, so changing train.ensemble neither re-runs tune nor starts a fresh study.
NOT_READ_BY_TRIALS = ("use_tuned", "refit", "ensemble")
# Train keys that do not change what a trial measures, only where it runs: a study resumes across them.
_NOT_OBJECTIVE = ("distribute", "devices", *NOT_READ_BY_TRIALS)


def storage_url(cfg: TuneParams) -> str:
    return os.environ.get("OPTUNA_STORAGE") or cfg.storage or f"sqlite:///{DEFAULT_DB}"


def storage_key() -> str:
    """Where the storage URL came from, for messages."""
    return "$OPTUNA_STORAGE" if os.environ.get("OPTUNA_STORAGE") else "tune.storage"


def redact(url: str) -> str:
    """The URL without its password, for logs and MLflow."""
    if url.startswith("journal:"):
        return url
    if "://" not in url:
        return mask_credentials(url)
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:   # not parseable: show only the scheme
        return url.split("://", 1)[0] + "://..."


def is_sqlite(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0].lower() == "sqlite"


def open_storage(url: str, worker: bool = False) -> optuna.storages.BaseStorage:
    import optuna

    if worker and is_sqlite(url):
        raise StageError(f"{storage_key()}: {redact(url)} is SQLite, which takes one writer at a time ('database is "
                         "locked' under several workers): use journal:tune/optuna.journal for workers on "
                         "this machine, or a postgresql:// URL for workers on several machines")
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if is_sqlite(url) and url.count("/") >= 3:
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    heartbeat = heartbeat_seconds()
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Heartbeats: a worker killed mid-trial does not leave its trial RUNNING for ever.
                return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat[0], grace_period=heartbeat[1])
        except (IntegrityError, ProgrammingError):
            # Workers starting together on an empty database race to create Optuna's tables
            # ("duplicate key ... pg_type"): the loser waits and finds them made.
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(1.0 + attempt)
        except Exception as exc:
            detail = mask_credentials(" ".join(str(exc).split()))[:300]
            raise StageError(f"{storage_key()}: cannot open {redact(url)}: {detail}") from None
    raise AssertionError("unreachable")


def heartbeat_seconds() -> tuple[int, int]:
    """RDB storages' heartbeat interval and grace period: 20 s and 90 s, or $PIPELINE_TUNE_HEARTBEAT_SECONDS
    and $PIPELINE_TUNE_GRACE_SECONDS (the grace must be longer than the interval)."""
    values = []
    for var, default in ((HEARTBEAT_VAR, HEARTBEAT_SECONDS), (GRACE_VAR, GRACE_SECONDS)):
        raw = os.environ.get(var, "").strip() or str(default)
        if not raw.isdigit() or int(raw) < 1:
            raise StageError(f"${var}: {raw!r} is not a whole number of seconds (1 or more)")
        values.append(int(raw))
    if values[1] <= values[0]:
        raise StageError(f"${GRACE_VAR} ({values[1]} s) must be longer than ${HEARTBEAT_VAR} ({values[0]} s)")
    return values[0], values[1]


def study_name(params: Params, trial_train: TrainParams, data_key: str) -> str:
    """tune.study_name, else textclf-<dataset>-<digest of what the objective measures>.

    The digest covers the space, the trial settings, the train params trials start from
    (`trial_train`: train with tune.epochs applied) and the prepared data:
    re-running with the same ones resumes the study; changing any starts a new one, so old trials
    never mix with new. n_trials, timeout, the sampler, the pruner and the storage are left out.
    """
    cfg = params.tune
    if cfg.study_name:
        return cfg.study_name
    train = {k: v for k, v in to_dict(trial_train).items() if k not in _NOT_OBJECTIVE}
    objective = {"space": to_dict(cfg.space), "metric": cfg.metric, "epochs": cfg.epochs,
                 "subsample": cfg.subsample, "train": train, "data": data_key}
    if cfg.folds > 1:   # only then: studies made before tune.folds existed keep their names
        objective["folds"] = cfg.folds
    digest = hashlib.sha256(json.dumps(objective, sort_keys=True).encode()).hexdigest()[:10]
    return f"textclf-{params.dataset.name}-{digest}"


def direction(metric: str) -> str:
    return "minimize" if metric.endswith("loss") else "maximize"


def sampler_seed(cfg: TuneParams, worker: bool) -> int:
    """The study's seed for the first process; each extra worker draws its own seeded stream.

    Two workers with one seed would propose the same trials, one after the other.
    """
    return cfg.sampler_seed if not worker else cfg.sampler_seed + 1 + zlib.crc32(WORKER.encode()) % 1_000_000


def make_sampler(cfg: TuneParams, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # constant_liar: running trials count as bad results, so parallel workers spread out.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.startup_trials, constant_liar=True)


def make_pruner(cfg: TuneParams, epochs: int) -> optuna.pruners.BasePruner:
    import optuna

    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, cfg.startup_trials),
                                           n_warmup_steps=cfg.warmup_epochs)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def suggest(trial: optuna.trial.Trial, space: Mapping[str, SearchDim]) -> dict[str, Any]:
    """One value per key of tune.space, named as in params.yaml's train section."""
    values: dict[str, Any] = {}
    for key, dim in space.items():
        if dim.type == "categorical":
            values[key] = trial.suggest_categorical(key, list(dim.choices))
        elif dim.type == "int":
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, step=dim.step, log=dim.log)
    return values


def baseline(space: Mapping[str, SearchDim], train: TrainParams, prepared_maxlen: int) -> dict[str, Any]:
    """params.yaml's own train values for the keys of the space, where the space contains them.

    Enqueued as a new study's first trial, so the best trial is never worse (on validation) than
    the configuration the study started from.
    """
    values: dict[str, Any] = {}
    for key, dim in space.items():
        value: Any = train
        for part in key.split("."):
            value = getattr(value, part)
        if key == "maxlen" and not value:
            value = prepared_maxlen          # 0 means "as prepared"
        if dim.type == "categorical":
            if value in dim.choices and type(value) in {type(c) for c in dim.choices}:
                values[key] = value
        elif dim.low <= value <= dim.high and (not dim.step or (value - dim.low) % dim.step == 0):
            values[key] = value
    return values


BASELINE = "baseline"   # the user attr that marks the trial of params.yaml's own values


def ensure_baseline(study: optuna.Study, values: Mapping[str, Any]) -> bool:
    """Enqueue params.yaml's values as an empty study's first trial; whether this process did.

    Every process (the stage or a `--worker`) calls it before its first trial, so whoever opens
    the study first, its first trial (number 0: numbers are given out by the storage) is the
    baseline. Two processes opening an empty study at the same instant may both enqueue it: the
    later copy is failed unrun when it is drawn (`is_duplicate_baseline`).
    """
    if study.get_trials(deepcopy=False):
        return False
    study.enqueue_trial(dict(values), user_attrs={BASELINE: True}, skip_if_exists=True)
    return True


def is_duplicate_baseline(trial: optuna.trial.Trial) -> bool:
    """A baseline trial with a lower-numbered baseline trial before it (see ensure_baseline)."""
    if not trial.user_attrs.get(BASELINE):
        return False
    return any(t.user_attrs.get(BASELINE) and t.number < trial.number
               for t in trial.study.get_trials(deepcopy=False))


# --- the budget: tune.n_trials trials for the whole study, whoever runs them --------------------

def counted_states() -> tuple:
    from optuna.trial import TrialState

    # Failed trials do not count: a re-run replaces them.
    return (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


def counted(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=counted_states()))


def waiting(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def ahead_of(study: optuna.Study, number: int) -> int:
    """Counted trials created before trial `number` (trial numbers are given out by the storage)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=counted_states()) if t.number < number)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark RUNNING trials whose worker is gone as FAIL; their numbers.

    A trial of this machine whose process no longer exists is failed at once, on any storage. Other
    machines' trials (their processes cannot be seen from here) are failed by Optuna's heartbeat
    once stale, on an RDB storage with one (study.py's storage); the journal storage has none.
    """
    import optuna
    from optuna.trial import TrialState

    def running() -> set[int]:
        return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}

    before = running()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A no-op without a heartbeat. (The study's storage is Optuna's cache around the RDB one, so
        # an isinstance check on RDBStorage, as this function had, never let it run.)
        optuna.storages.fail_stale_trials(study)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(t.user_attrs.get("worker", ""))
        if owner != WORKER and _gone(owner):
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    return sorted(before - running())


def _gone(worker: str) -> bool:
    """Whether a trial's worker ("host:pid:start", or "host:pid" from older versions) ran on this
    machine and its process no longer exists."""
    host, _, rest = worker.partition(":")
    pid, _, start = rest.partition(":")
    if host != process.HOST or not pid.isdigit():
        return False
    return not process.alive(int(pid), float(start) if start and float(start) > 0 else None)


class _NoTracebackOnInterrupt(logging.Filter):
    """Optuna logs a failed trial's exception with its traceback before raising it again; for Ctrl-C
    (or the SIGTERM a stage turns into one) the stage's line `tune: interrupted` says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            record.exc_info, record.exc_text = None, None
        return True


def no_traceback_on_interrupt() -> None:
    """Optuna's trial warnings without the traceback of an interrupt (once per process)."""
    logger = logging.getLogger("optuna.study._optimize")   # where Optuna reports a failed trial
    if not any(isinstance(f, _NoTracebackOnInterrupt) for f in logger.filters):
        logger.addFilter(_NoTracebackOnInterrupt())


def say(message: str) -> None:
    print(f"tune: {message}", file=sys.stderr, flush=True)
