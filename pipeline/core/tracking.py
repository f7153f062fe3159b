"""MLflow tracking: every stage invocation is one run in the experiment of its dataset.

Runs go to a local SQLite store, mlruns/mlflow.db, with artifacts in mlruns/artifacts/ (MLflow
3.17 refuses the old ./mlruns file store), or wherever $MLFLOW_TRACKING_URI points. `import mlflow`
costs seconds, so it happens inside the functions: `--help` and a bad params.yaml stay fast.
"""
from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from pipeline.core import paths, process
from pipeline.core.atomic import cannot_write, exception_chain
from pipeline.core.config import Params, to_dict
from pipeline.core.errors import PipelineError, TrackingError, mask_credentials, warn
from pipeline.core.process import sigterm_as_interrupt

if TYPE_CHECKING:
    import mlflow

# Set before mlflow is imported anywhere through this module, so `python -m pipeline.x` run by
# hand (not through the Makefile, which exports it too) sends nothing either.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

LOCAL_STORE = Path("mlruns")   # under paths.repo_root()
SERVER_SCHEMES = ("http", "https", "databricks")
_EXPORTED = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")
MAX_KEY_LENGTH = 250          # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
MAX_PARAM_LENGTH = 6000       # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
DATASET_ATTEMPTS = 5          # log_inputs tries: workers starting together race to create a dataset (log_datasets)
MAX_TAG_LENGTH = 8000         # mlflow.utils.validation.MAX_TAG_VAL_LENGTH
# MLflow accepts names matching [/\w.\- :]; Python's \w is Unicode, so Hangul labels such as
# "경제" are accepted as they are (a test checks this against the real store). Inside one name
# segment "/" is our separator and ":" is refused on Windows, so both are escaped.
_SEGMENT_CHAR = re.compile(r"[\w.\- ]")


# What kind of experiment this is, for MLflow 3's UI: "custom_model_development" is its "Machine
# learning" kind (model training; the other is "genai_development": traces, token usage). The values
# are the UI's ExperimentKind (mlflow/server/js); the Python package has no constant for them.
KIND_TAG, KIND_MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# The data each stage reads, as MLflow dataset inputs by context: the runs table's Dataset column.
# The download stage logs "raw" itself once it has laid the files out (at its start they are the
# previous run's).
STAGE_DATA = {"tokenize": ("raw",), "prepare": ("tokens",), "tune": ("train", "val"), "train": ("train", "val"),
              "evaluate": ("test", "train", "val", "tokens", "raw")}
DIGEST_LENGTH = 12   # hex characters; MLflow allows 36 and suggests about 8


def local_store() -> Path:
    return paths.repo_root() / LOCAL_STORE


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the SQLite store under mlruns/ in the repo root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    local_store().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(local_store() / 'mlflow.db').resolve()}"


def _is_server(uri: str) -> bool:
    return uri.split(":", 1)[0].lower() in SERVER_SCHEMES


def artifact_root() -> str | None:
    """Where new experiments keep artifacts; a tracking server decides that itself (None)."""
    if _is_server(tracking_uri()):
        return None
    return (local_store() / "artifacts").resolve().as_uri()


def experiment_name(dataset: str) -> str:
    return f"textclf-{dataset}"


def registered_model_name(dataset: str) -> str:
    return f"textclf-{dataset}"


def ensure_experiment(dataset: str) -> str:
    """Point MLflow at the store, make the dataset's experiment the active one; its id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    bound_sqlite_waits(tracking_uri())   # before MLflow makes an engine
    with _no_env_export():
        mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    name = experiment_name(dataset)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(name, artifact_location=artifact_root(),
                                                     tags={KIND_TAG: KIND_MODEL_TRAINING})
        except MlflowException:
            # Another process created it between our look-up and create: use theirs.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            # Deleted in the UI: the name stays taken, so bring it back rather than fail the stage.
            client.restore_experiment(experiment_id)
    if experiment is not None and KIND_TAG not in experiment.tags:
        # Made before the tag was set (or by another tool): tagged now. A kind chosen in the UI stays.
        client.set_experiment_tag(experiment_id, KIND_TAG, KIND_MODEL_TRAINING)
    with _no_env_export():
        mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def _no_env_export() -> Iterator[None]:
    """Undo MLflow's export of the URI / experiment to os.environ (meant for child processes).

    Left there, the exported URI would pass for the user's $MLFLOW_TRACKING_URI: a later stage in
    the same process but another folder (tests, a notebook) would log into the first store.
    """
    saved = {key: os.environ.get(key) for key in _EXPORTED}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _resolve(params: Params, key: str) -> Any:
    value: Any = params
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _flatten(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from _flatten(inner, f"{key}.{name}")
    else:
        yield key, value


def flat_params(params: Params, reads: Sequence[str]) -> dict[str, str]:
    """The resolved values of the keys a stage reads, as dotted keys and string values."""
    flat: dict[str, str] = {}
    for read in reads:
        for key, value in _flatten(to_dict(_resolve(params, read)), read):
            flat[key] = mask_credentials(str(value))[:MAX_PARAM_LENGTH]
    return flat


def _git(*args: str) -> str | None:
    """Output of a git command in the cwd; None outside a repository or without git."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _segment(text: str) -> str:
    """One part of a metric or tag name, in characters MLflow accepts; others hex-escaped."""
    if text in ("", ".", ".."):
        # Would make the name resolve to another path ("a//b", "a/./b"), which MLflow refuses.
        return "".join(f"_{ord(c):x}_" for c in text) or "_"
    return "".join(c if _SEGMENT_CHAR.fullmatch(c) else f"_{ord(c):x}_" for c in text)


def metric_key(*parts: str) -> str:
    """A valid MLflow name from path parts: "tokenize", "length", "p95" -> "tokenize/length/p95"."""
    key = "/".join(_segment(str(p)) for p in parts)
    if len(key) > MAX_KEY_LENGTH:
        # Truncated names would collide; a digest of the whole keeps them apart.
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
        key = f"{key[:MAX_KEY_LENGTH - 9]}-{digest}"
    return key


def data_tags(manifest: Path | None = None) -> dict[str, str]:
    """"data.<file>.sha256" for every file the download stage recorded, when it has run."""
    manifest = manifest or paths.RAW_DIR / "manifest.json"
    if not manifest.is_file():
        return {}
    try:
        files = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError):
        return {}   # a damaged manifest is the download stage's business, not tracking's
    return {metric_key(*f"data.{f['path']}.sha256".split("/")): str(f["sha256"])
            for f in files if isinstance(f, dict) and "path" in f and "sha256" in f}


def run_tags(stage: str) -> dict[str, str]:
    commit = _git("rev-parse", "HEAD") or ""
    # Untracked files do not count: generated data is git-ignored, and notes lying around
    # should not make every run look dirty.
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    tags = {"pipeline.stage": stage, "dvc.stage": stage, "git.commit": commit,
            "git.dirty": "true" if status else "false", **data_tags()}
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return {**tags, **experiment_tags()}


def experiment_tags() -> dict[str, str]:
    """`dvc exp run` names the experiment (-n, or a random name) in the stages' environment;
    pipeline.experiments finds the runs, trials included, by this tag."""
    name = os.environ.get("DVC_EXP_NAME")
    if not name:
        return {}
    return {"pipeline.experiment": name, "dvc.exp_baseline": os.environ.get("DVC_EXP_BASELINE_REV", "")}


HOST_TAG, PID_TAG, STARTED_TAG = "pipeline.host", "pipeline.pid", "pipeline.process_started"
RESUMES_TAG = "pipeline.resumes_run"   # on a run that continues the work of an interrupted one
FIRST_CONTACT_SECONDS = 5.0


def process_tags() -> dict[str, str]:
    """Who runs this stage: a later stage run can tell whether a RUNNING run's process is gone."""
    me = process.identity()
    return {HOST_TAG: me["host"], PID_TAG: me["pid"], STARTED_TAG: me["started"]}


def check_reachable(uri: str, way_out: str = "--no-track runs the stage without it") -> None:
    """Fail in seconds when a tracking server does not answer at all.

    MLflow retries a refused connection 7 times with exponential back-off (over 4 minutes) before
    it gives up; any HTTP answer (even 401 or 404) means the server is there, and MLflow's own
    requests take it from here.
    """
    if uri.split(":", 1)[0].lower() not in ("http", "https"):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=FIRST_CONTACT_SECONDS)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        if isinstance(exc, requests.ConnectionError) and "refused" in str(exc).lower():
            reason = "connection refused"
        raise TrackingError(f"MLflow tracking at {mask_credentials(uri)}: no answer ({reason} within "
                            f"{FIRST_CONTACT_SECONDS:g} s); start the server or fix $MLFLOW_TRACKING_URI"
                            + (f" ({way_out})" if way_out else "")) from None


def close_dead_runs(experiment_id: str) -> dict[str, str]:
    """End the RUNNING runs of this host whose process is gone, KILLED; their ids and new status.

    A stage killed outright (kill -9, out of memory, power) cannot end its own run. Its process tags
    tell a later stage run that nobody will: that run ends it, with nested runs (trials) under it.
    Runs of other hosts are left alone (their processes cannot be seen from here). A run whose process
    failed to end it (the store locked for longer than it waited) ends as that process's note says: FAILED.
    """
    import mlflow

    client = mlflow.MlflowClient()
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'",
                                 max_results=1000)
    dead = {r.info.run_id: r for r in running
            if r.data.tags.get(HOST_TAG) == process.HOST and r.data.tags.get(PID_TAG, "").isdigit()
            and not process.alive(int(r.data.tags[PID_TAG]), float(r.data.tags.get(STARTED_TAG) or 0) or None)}
    orphans = True
    while orphans:   # nested runs of dead runs, at any depth
        orphans = {r.info.run_id: r for r in running
                   if r.info.run_id not in dead and r.data.tags.get("mlflow.parentRunId") in dead}
        dead.update(orphans)
    ended = {}
    for run_id, run in dead.items():
        tags = run.data.tags
        try:   # a process that failed to end its run (the store was locked) said how it ended
            note = json.loads(_note(run_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            note = {"status": "KILLED", "error": f"its process ({tags.get(HOST_TAG, 'of its parent run')} pid "
                                                 f"{tags.get(PID_TAG, '?')}) ended without ending the run: killed"}
        client.set_tag(run_id, "pipeline.error", note["error"])
        client.set_terminated(run_id, note["status"])
        _note(run_id).unlink(missing_ok=True)
        ended[run_id] = note["status"]
    return dict(sorted(ended.items()))


def _start(stage: str, dataset: str, run_name: str, nested: bool) -> mlflow.ActiveRun:
    import mlflow

    uri = tracking_uri()
    mlflow_log = logging.getLogger("mlflow")
    level = mlflow_log.level
    # MLflow logs a store's failure with its traceback before raising it; the one line below says it.
    mlflow_log.setLevel(logging.CRITICAL)
    try:
        check_reachable(uri)
        check_creatable(uri)
        experiment_id = ensure_experiment(dataset)
        if not nested:
            closed = close_dead_runs(experiment_id)
            for status in sorted(set(closed.values()), reverse=True):
                ids = [run_id for run_id, s in closed.items() if s == status]
                print(f"{stage}: marked {len(ids)} run(s) {status} whose process is gone: {', '.join(ids)}",
                      file=sys.stderr)
        return mlflow.start_run(run_name=run_name, nested=nested)
    except TrackingError:
        raise
    except Exception as exc:   # any store failure: one line naming the store and the way out
        raise store_error(exc) from exc
    finally:
        mlflow_log.setLevel(level)


# SQLAlchemy's statement, parameters and help link, and the driver's class before its message:
# noise in a one-line message.
_SQL_DETAIL = re.compile(r"\s*(\[SQL: .*?\]|\[parameters: .*?\]|\(Background on this error at: [^)]*\))|^\([\w.]+\) ")
WAY_OUT = "--no-track runs the stage without it"


def _said(exc: BaseException) -> str:
    """A store's error as one line of text, its password masked."""
    return mask_credentials(_SQL_DETAIL.sub("", " ".join(str(exc).split())).strip())


def store_error(exc: BaseException, way_out: str = WAY_OUT) -> TrackingError:
    """The store's failure as one line: the store, what went wrong, the way out."""
    text = _said(exc)
    reason = cannot_write(exc)
    what = f"cannot write the store: {reason} ({text})" if reason else f"failed: {text}"
    if "database is locked" in text:
        what += (f" (another process held the store's lock for over {busy_seconds():g} s; "
                 f"${BUSY_VAR} sets how long to wait)")
    return TrackingError(f"MLflow tracking at {mask_credentials(tracking_uri())} {what} ({way_out})")


def is_store_failure(exc: BaseException) -> bool:
    """Whether exc is MLflow's store being unusable (locked, unreadable), not a bug: a database's
    OperationalError (MLflow's SQL store raises it as TEMPORARILY_UNAVAILABLE) from MLflow's code, not
    from another database a stage uses (Optuna's)."""
    for link in exception_chain(exc):
        if type(link).__name__ == "OperationalError" or getattr(link, "error_code", None) == "TEMPORARILY_UNAVAILABLE":
            tb = link.__traceback__
            while tb is not None:
                if tb.tb_frame.f_globals.get("__name__", "").startswith("mlflow."):
                    return True
                tb = tb.tb_next
    return False


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI; None for another store or an in-memory database."""
    if not uri.startswith("sqlite:///"):
        return None
    name = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(name) if name and name != ":memory:" else None


def check_creatable(uri: str) -> None:
    """Fail at once when a SQLite store does not exist and cannot be made where the URI says.

    MLflow retries making its engine 10 times with back-off (104 s) before it gives up on a database
    it cannot create; a read-only folder cannot become writable in that time.
    """
    db = sqlite_file(uri)
    if db is None or db.exists():
        return
    folder = next(p for p in (db.parent, *db.parent.parents) if p.exists())   # MLflow makes the rest
    try:
        tempfile.TemporaryFile(dir=folder).close()   # what creating the file needs, without a trace
    except OSError as exc:
        reason = cannot_write(exc) or exc.strerror or str(exc)
        raise TrackingError(f"MLflow tracking at {mask_credentials(uri)} cannot write the store: cannot create "
                            f"{db} ({folder}: {reason}) ({WAY_OUT}, or point $MLFLOW_TRACKING_URI at a "
                            "writable folder)") from None


# How long a SQLite store waits for a lock another process holds (a DB browser's open transaction,
# `sqlite3 mlruns/mlflow.db` with BEGIN EXCLUSIVE, a parallel stage's write). MLflow waits 20 s in its
# sessions, but the connection that makes a store (the registry's, first used when train logs its
# model) keeps sqlite3's 5 s: a lock held for seconds discarded a finished training.
BUSY_VAR, BUSY_SECONDS = "PIPELINE_MLFLOW_BUSY_SECONDS", 30.0
_BOUNDED: set[str] = set()   # database files whose waits are bounded (their engines' listeners installed)


def busy_seconds() -> float:
    value = os.environ.get(BUSY_VAR, "").strip()
    try:
        seconds = float(value) if value else BUSY_SECONDS
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise TrackingError(f"${BUSY_VAR}: expected a number of seconds >= 0, got {value!r}")
    return seconds


def bound_sqlite_waits(uri: str) -> None:
    """Every connection to this SQLite store waits busy_seconds() for a lock, MLflow's sessions too."""
    db = sqlite_file(uri)
    busy_seconds()   # a bad value is one line now, not a traceback inside SQLAlchemy
    if db is None or os.path.abspath(db) in _BOUNDED:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def bounded(dialect, name: object) -> bool:   # SQLAlchemy gives sqlite3 the file's absolute path
        return dialect.name == "sqlite" and bool(name) and os.path.abspath(str(name)) in _BOUNDED

    if not _BOUNDED:   # once per process: the listeners serve every store named in _BOUNDED
        @event.listens_for(Engine, "do_connect")
        def connect(dialect, record, cargs, cparams) -> None:   # sqlite3.connect(file, timeout=...)
            if cargs and bounded(dialect, cargs[0]):
                cparams["timeout"] = busy_seconds()

        @event.listens_for(Engine, "before_cursor_execute", retval=True)
        def pragma(conn, cursor, statement, parameters, context, executemany):
            # MLflow starts every session with PRAGMA busy_timeout = 20000: the same bound instead.
            if statement.startswith("PRAGMA busy_timeout") and bounded(conn.dialect, conn.engine.url.database):
                statement = f"PRAGMA busy_timeout = {round(busy_seconds() * 1000)};"
            return statement, parameters
    _BOUNDED.add(os.path.abspath(db))


@contextmanager
def stage_run(stage: str, params: Params, reads: Sequence[str], dataset: str | None = None,
              run_name: str | None = None, nested: bool = False) -> Iterator[mlflow.ActiveRun]:
    """One MLflow run around a stage: FINISHED, FAILED on an exception, KILLED on Ctrl-C/SIGTERM.

    The exception is re-raised after the run has ended; no path leaves the run RUNNING.
    """
    import mlflow

    outer = mlflow.active_run()   # the parent of a nested run, which must stay as it is
    with _links_without_password(), _store_errors_unlogged():
        # Installed before the run starts, so a SIGTERM at any point after that finds the handler.
        with sigterm_as_interrupt():
            try:
                run = _start(stage, dataset or params.dataset.name, run_name or stage, nested)
                mlflow.set_tags({**run_tags(stage), **process_tags()})
                mlflow.log_params(flat_params(params, reads))
                if not nested:   # a trial reads what its stage run has logged
                    log_datasets(STAGE_DATA.get(stage, ()), dataset or params.dataset.name)
                yield run
            except KeyboardInterrupt:
                _end_since(outer, "KILLED")
                raise
            except BaseException as exc:
                # The store failing under the stage (locked for longer than we wait) is one line, not a bug.
                error = store_error(exc) if not isinstance(exc, PipelineError) and is_store_failure(exc) else exc
                unended = _end_since(outer, "FAILED", error=error)
                if unended and isinstance(error, PipelineError):
                    error = type(error)(f"{error}; {unended}")
                if error is exc:
                    raise
                raise error from exc
        unended = _end_since(outer, "FINISHED")
        if unended:   # the stage's work is done and its outputs whole: said, not failed
            warn(unended)


@contextmanager
def _store_errors_unlogged() -> Iterator[None]:
    """MLflow's SQL store logs each database error with its traceback, then raises it: the stage
    says it in one line (stage_run), so the log's copy is dropped."""
    log = logging.getLogger("mlflow.store.db.utils")

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR

    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def _end_since(outer: mlflow.ActiveRun | None, status: str, error: BaseException | None = None) -> str:
    """End the runs started inside stage_run: ours, and any nested run the stage left open; '', or
    what happened to the runs the store failed to end (their process leaves a note: close_dead_runs).

    Nothing is ended when ours never started (a TrackingError, or Ctrl-C during the start).
    """
    import mlflow

    unended = []
    message = mask_credentials(f"{type(error).__name__}: {error}")[:MAX_TAG_LENGTH] if error is not None else ""
    while (active := mlflow.active_run()) is not None and (
            outer is None or active.info.run_id != outer.info.run_id):
        try:
            try:
                if error is not None:
                    # The reason beside the status, so the UI shows why without the terminal.
                    mlflow.set_tag("pipeline.error", message)
            finally:
                end_run(status)   # off MLflow's stack even when the store fails
        except Exception as exc:
            if not is_store_failure(exc):
                raise
            _leave_note(active.info.run_id, status, message)
            unended.append(active.info.run_id)
            reason = _said(exc)
    if not unended:
        return ""
    return (f"its MLflow run ({', '.join(unended)}) stays RUNNING until the next stage run marks it {status}: "
            f"the store failed to end it ({reason})")


def _note(run_id: str) -> Path:
    """Where a stage leaves how its run ended when the store could not take it."""
    return paths.cache_dir() / "tracking" / f"unended-{run_id}.json"


def _leave_note(run_id: str, status: str, error: str) -> None:
    try:
        _note(run_id).parent.mkdir(parents=True, exist_ok=True)
        _note(run_id).write_text(json.dumps({"status": status, "error": error}), encoding="utf-8")
    except OSError:
        pass   # then the next stage run marks it KILLED, the most it can tell


def end_run(status: str) -> None:
    """mlflow.end_run of the active run; its link printed here when _links_without_password is on."""
    import mlflow

    info = mlflow.active_run().info
    mlflow.end_run(status)
    if _OWN_LINKS in os.environ:
        host = _CREDENTIALS.sub(r"\1", tracking_uri()).rstrip("/")
        print(f"🏃 View run {info.run_name} at: {host}/#/experiments/{info.experiment_id}/runs/{info.run_id}")


# MLflow's switch, and ours: set, this process (and the stages it starts) print the links.
_SUPPRESS_LINKS, _OWN_LINKS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "PIPELINE_PRINTS_RUN_LINKS"
_CREDENTIALS = re.compile(r"(://)[^/@\s]*@")   # user:password@ of a URL, dropped (mask_credentials masks it)


@contextmanager
def _links_without_password() -> Iterator[None]:
    """MLflow prints each ended run's link on a tracking server with the URI as given, user:password@
    included. With a password in the URI, MLflow's print is off and end_run prints the link
    without the credentials (the browser asks for them). A user's own switch is left alone."""
    uri = tracking_uri()
    if mask_credentials(uri) == uri or _SUPPRESS_LINKS in os.environ:
        yield
        return
    os.environ.update({_SUPPRESS_LINKS: "true", _OWN_LINKS: "1"})
    try:
        yield
    finally:
        for key in (_SUPPRESS_LINKS, _OWN_LINKS):
            os.environ.pop(key, None)


def is_tracking() -> bool:
    """Whether a run is active; False without importing mlflow when nothing imported it."""
    mlflow = sys.modules.get("mlflow")
    return mlflow is not None and mlflow.active_run() is not None


def _numeric_leaves(stats: dict, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    for key, value in stats.items():
        where = (*path, str(key))
        if isinstance(value, dict):
            yield from _numeric_leaves(value, where)
        # bool is a Number to Python (numpy's bool_ is not), but a flag is not a measurement.
        elif isinstance(value, numbers.Number) and not isinstance(value, bool):
            yield where, float(value)


def log_stats(stats: dict, prefix: str) -> None:
    """Every numeric leaf of nested stats as a metric "<prefix>/<path>/<to>/<leaf>"."""
    import mlflow

    metrics = {metric_key(prefix, *path): value for path, value in _numeric_leaves(stats)}
    if metrics:
        mlflow.log_metrics(metrics)


def log_files(files: Iterable[Path], artifact_path: str) -> None:
    """Log existing files under one artifact folder (a missing one is simply not there to log)."""
    import mlflow

    for file in files:
        if Path(file).is_file():
            mlflow.log_artifact(str(file), artifact_path)


def _file_digest(path: Path) -> str:
    """The start of the file's md5: the hash dvc.lock (or, for a file in a folder, DVC's cache) records."""
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return md5.hexdigest()[:DIGEST_LENGTH]


def _raw_data() -> tuple[Path, str, dict] | None:
    """data/raw: a digest of the manifest's checksums (not of the manifest: a mirror or the
    canonical host give the same files), and where the files came from."""
    manifest = paths.RAW_DIR / "manifest.json"
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        listing = "".join(f"{f['path']} {f['sha256']}\n" for f in sorted(files, key=lambda f: f["path"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None   # absent or damaged: the download stage's business, not tracking's
    digest = hashlib.sha256(listing.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]
    return paths.RAW_DIR, digest, {"files": len(files), "bytes": sum(int(f.get("size", 0)) for f in files),
                                   "sources": [mask_credentials(str(f.get("source", ""))) for f in files]}


def _data_file(context: str) -> tuple[Path, str, dict] | None:
    """(path, digest, profile) of the data a context names, None when it is not there."""
    if context == "raw":
        return _raw_data()
    path = paths.TOKENS if context == "tokens" else paths.PREPARED_DIR / f"{context}.npz"
    if not path.is_file():
        return None
    try:
        if context == "tokens":
            import pyarrow.parquet as pq

            rows = pq.read_metadata(path).num_rows
        else:
            import numpy as np

            with np.load(path) as arrays:
                rows = len(arrays["y"])   # reads the labels only, not the token arrays
    except Exception:   # damaged (truncated, not an archive): the stage that reads it says so, in one line
        return None
    return path, _file_digest(path), {"rows": rows, "bytes": path.stat().st_size}


def data_inputs(contexts: Sequence[str], dataset: str) -> list:
    """MLflow DatasetInputs for the data files of these contexts that exist: name
    "<dataset>-<context>", the digest, the file (relative to the repo root) as a local source,
    rows or files and bytes as the profile, and the context as the input's tag."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for context in contexts:
        found = _data_file(context)
        if found is None:
            continue
        path, digest, profile = found
        meta = MetaDataset(LocalArtifactDatasetSource(path.as_posix()), name=f"{dataset}-{context}", digest=digest)
        entity = Dataset(**meta.to_dict(), profile=json.dumps(profile))   # name, digest, source (type)
        inputs.append(DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs


def log_datasets(contexts: Sequence[str], dataset: str, run_id: str | None = None) -> None:
    """Log the data of these contexts as inputs of the active run (or of run_id): the runs table's
    Dataset column and the run page's datasets. Data not there yet is left out."""
    import mlflow

    inputs = data_inputs(contexts, dataset) if contexts else []
    if not inputs:
        return
    run_id = run_id or mlflow.active_run().info.run_id
    for attempt in range(DATASET_ATTEMPTS):
        try:
            mlflow.MlflowClient().log_inputs(run_id, datasets=inputs)
            return
        except mlflow.exceptions.MlflowException as exc:
            # MLflow's SQL store looks a dataset up, then inserts it: tune workers starting together
            # race on the same (experiment, name, digest) and the loser's insert fails. Once the
            # winner's row exists the lookup finds it, so trying again succeeds.
            if "UNIQUE constraint" not in str(exc) and "duplicate key" not in str(exc):
                raise
            if attempt == DATASET_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
