"""Local worker processes a stage starts beside itself, and that never outlive it.

`TUNE_WORKERS=N` makes the tune stage start N-1 `python -m pipeline.tune --worker` processes on its
study; `TRAIN_WORKERS=N` makes the train stage the chief of N MultiWorkerMirroredStrategy processes
on 127.0.0.1 (docs/distributed.md, "Local cluster"). Both go through `spawned`:

- the block ends normally: the workers are waited for (they stop on their own when the work is
  done), and stopped if they do not;
- the block raises (a failed trial budget, Ctrl-C, SIGTERM from DVC): they are stopped at once;
- the stage dies outright (kill -9): each worker gets SIGTERM from the kernel (PR_SET_PDEATHSIG, set by
  `bind_to_parent` in the worker itself) and, under `dvc repro`, also sees its parent gone
  (process.watch_owner).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

from pipeline.core.errors import StageError

PARENT_VAR = "PIPELINE_WORKER_PARENT"   # set in a worker's environment: the pid of the stage that started it
COUNT_VARS = ("TUNE_WORKERS", "TRAIN_WORKERS")
STOP_SECONDS = 15.0
PR_SET_PDEATHSIG = 1
STUCK_SECONDS = 60.0
EXIT_STUCK = 3


def count(var: str) -> int:
    """How many processes $var asks for (1 when unset)."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise StageError(f"${var}: {raw!r} is not a number of processes (1 or more)")
    return int(raw)


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n distinct ports free now on `host` (held open together, so no two are the same)."""
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_env(**extra: str) -> dict[str, str]:
    """This process's environment for a worker: marked as ours, without the counts (a worker starts none)."""
    env = {k: v for k, v in os.environ.items() if k not in COUNT_VARS}
    env[PARENT_VAR] = str(os.getpid())
    env.update(extra)
    return env


def bind_to_parent() -> None:
    """In a worker: get SIGTERM when the stage that started it dies, however it dies (Linux)."""
    parent = os.environ.pop(PARENT_VAR, "")
    if not parent.isdigit():
        return
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != int(parent):   # it died before the line above: nobody waits for this worker
        raise SystemExit(f"the stage that started this worker (pid {parent}) is gone")


def _stop(procs: Sequence[subprocess.Popen], seconds: float) -> None:
    """SIGTERM (a worker ends its MLflow run as KILLED), then SIGKILL after `seconds`."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + seconds
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _watch(procs: Sequence[subprocess.Popen], name: str, fatal: bool, done: threading.Event) -> None:
    """Until `done` is set: each worker that ends with an error is reported once; with `fatal`, this
    process is sent SIGTERM (and exits if that does not end it)."""
    reported: set[int] = set()
    while not done.wait(0.5):
        for i, proc in enumerate(procs):
            code = proc.poll()
            if code is None or code == 0 or proc.pid in reported:
                continue
            reported.add(proc.pid)
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            print(f"{name}: worker {i + 1} (pid {proc.pid}) ended with {how}"
                  + ("; stopping" if fatal else "; the others go on"), file=sys.stderr, flush=True)
            if fatal:
                os.kill(os.getpid(), signal.SIGTERM)   # the stage's SIGTERM handling: outputs kept, run KILLED
                # Python sees the signal only between TensorFlow ops: a collective op waiting for the
                # dead worker may never return. Then the run is left to the next stage run, which
                # marks it KILLED (tracking.close_dead_runs).
                if not done.wait(STUCK_SECONDS):
                    print(f"{name}: still waiting for the dead worker after {STUCK_SECONDS:g} s; exiting",
                          file=sys.stderr, flush=True)
                    _stop(procs, STOP_SECONDS)
                    os._exit(EXIT_STUCK)
                return


@contextmanager
def spawned(commands: Sequence[tuple[list[str], dict[str, str]]], name: str, fatal: bool, hold: bool = False,
            finish_seconds: float = 120.0) -> Iterator[list[subprocess.Popen]]:
    """Run (argv, env) workers while the block runs; see the module docstring.

    `fatal`: a worker that exits with an error stops this process too (MultiWorkerMirroredStrategy
    cannot go on without it); otherwise it is reported and the block goes on (an Optuna worker's
    trial is failed by the study's heartbeat, and the other workers finish the study).
    `hold`: each worker's stdin is a pipe, closed when the block ends: a worker that reads it to the
    end stays until then.
    """
    procs: list[subprocess.Popen] = []
    done = threading.Event()
    try:
        for argv, env in commands:
            procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if hold else subprocess.DEVNULL))
        if procs:
            print(f"{name}: started {len(procs)} worker(s): pid {', '.join(str(p.pid) for p in procs)}",
                  file=sys.stderr, flush=True)
            threading.Thread(target=_watch, args=(procs, name, fatal, done), name=f"{name}-workers",
                             daemon=True).start()
        yield procs
    except BaseException:
        done.set()
        _stop(procs, STOP_SECONDS)
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
        raise
    done.set()
    for proc in procs:
        if proc.stdin is not None:
            proc.stdin.close()
    deadline = time.monotonic() + finish_seconds
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name}: worker pid {proc.pid} still runs {finish_seconds:g} s after the work ended; stopping it",
                  file=sys.stderr, flush=True)
    _stop(procs, STOP_SECONDS)
