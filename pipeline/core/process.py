"""Which process runs a stage, whether a recorded process still lives, and a watch on `dvc repro`.

A process is named by host, pid and start time: a pid alone is reused by the system, so a run
recorded by pid 4711 yesterday is not "alive" because some other process has that pid today.

`watch_owner` stops a stage whose `dvc repro` is gone. DVC starts a stage as `$SHELL -c "<cmd>"`
and only forwards Ctrl-C to it as part of the terminal's process group: `kill <dvc pid>` (an IDE's
stop button, a supervisor) ends DVC and leaves the stage running on its own, replacing outputs that
DVC will never record. The watch turns that into the same SIGTERM a `kill` of the stage would be:
interrupted, outputs left as they were, the MLflow run KILLED.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

HOST = socket.gethostname()
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "busybox"})
WATCH_SECONDS = 1.0


def started(pid: int) -> float | None:
    """The process's start time (seconds since the epoch, as psutil gives it); None if it is gone."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def alive(pid: int, start: float | None = None) -> bool:
    """Whether process `pid` exists and is not a zombie (and, given `start`, is the one started then)."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        # create_time is rounded differently by different readers; a reused pid starts much later.
        return start is None or abs(process.create_time() - start) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True   # someone else's process, but it exists


def identity() -> dict[str, str]:
    """host, pid and start time of this process, as strings (MLflow tags)."""
    return {"host": HOST, "pid": str(os.getpid()), "started": f"{started(os.getpid()) or 0:.2f}"}


def owner():
    """The process that started this stage, skipping the shell DVC runs the command in (psutil)."""
    import psutil

    process = psutil.Process().parent()
    while process is not None and process.name() in SHELLS and process.pid != 1:
        process = process.parent()
    return process


# Code that a KeyboardInterrupt must not cut in half: a SQLite write interrupted between its INSERT
# and its COMMIT leaves the database locked by this very process, so the MLflow run can no longer
# be ended KILLED ("database is locked" after the store's busy timeout, tracking.BUSY_SECONDS; seen in CI).
DATABASE_MODULES = ("sqlalchemy", "sqlite3", "psycopg", "psycopg2", "mlflow.store", "optuna.storages")
RETRY_SECONDS = 0.05


def in_database_call(frame: Any) -> bool:
    """Whether `frame` (or a caller of it) runs code of a database client."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(DATABASE_MODULES):
            return True
        frame = frame.f_back
    return False


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM (DVC, a CI timeout, `kill`, watch_owner) raises KeyboardInterrupt.

    Neither SIGTERM nor Ctrl-C interrupts a database call: the signal is delivered again a moment
    later, until it lands outside one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield   # handlers can only be installed from the main thread
        return

    def interrupt(signum: int, frame: Any) -> None:
        if in_database_call(frame):
            timer = threading.Timer(RETRY_SECONDS, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        # None means a handler not installed from Python; the default is the closest we can do.
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def watch_owner(name: str, on_gone: Callable[[], None] | None = None) -> Iterator[None]:
    """While the block runs under `dvc repro` ($DVC_STAGE is set), stop it if DVC goes away.

    Stopping is a SIGTERM to this process, which the stage treats as Ctrl-C. Outside DVC nothing
    is watched: a stage started by hand under `nohup` must outlive the shell that started it.
    """
    if not os.environ.get("DVC_STAGE"):
        yield
        return
    import psutil

    try:
        dvc = owner()
    except psutil.Error:
        dvc = None
    if dvc is None or dvc.pid == 1:
        yield   # already orphaned, or started by init: nothing to watch
        return
    done = threading.Event()
    what = f"{dvc.name()} pid {dvc.pid}"

    def gone() -> None:
        print(f"{name}: the process that started this stage ({what}) is gone; stopping as if "
              "interrupted", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    def running() -> bool:
        try:
            return dvc.is_running() and dvc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def watch() -> None:
        while not done.wait(WATCH_SECONDS):
            if not running():
                (on_gone or gone)()
                return

    thread = threading.Thread(target=watch, name="watch-dvc", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
