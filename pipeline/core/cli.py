"""What every command line shares: one-line errors, Ctrl-C, and for stages --params, -S and --no-track.

`run_command` is the one place a `PipelineError` (core/errors.py: anything the user caused) becomes
one line on stderr and exit code 2, and Ctrl-C exit code 130. Other exceptions are bugs: they keep
their traceback.

A stage's `-S KEY=VALUE` changes a key of params.yaml for this run only, in memory, in the grammar of
`dvc exp run -S` (core/overrides.py). The workers a stage starts itself (TUNE_WORKERS, TRAIN_WORKERS)
get `--params` only: they find the stage's assignments in $PIPELINE_SET_PARAMS, which the stage sets
for its run (a JSON list, applied before their own -S).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from pipeline.core.atomic import cannot_write, exception_chain
from pipeline.core.config import Params, load_params
from pipeline.core.errors import PipelineError, mask_credentials
from pipeline.core.process import sigterm_as_interrupt, watch_owner

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
SET_PARAMS_ENV = "PIPELINE_SET_PARAMS"    # the -S assignments of the stage that started this process
SET_PARAMS_TAG = "pipeline.set_params"    # on the MLflow run of a stage run with -S: the assignments


def run_command(name: str, body: Callable[[], int | None], interrupted: str = "") -> int:
    """body's exit code (None: 0); a PipelineError is one line `name: error: ...` and exit 2."""
    try:
        return body() or 0
    # Every line is redacted: a message may quote a URL with its password (MLflow's own errors
    # repeat the tracking server's URL, $MLFLOW_TRACKING_URI's user:password@ included).
    except PipelineError as exc:
        print(mask_credentials(f"{name}: error: {exc}"), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{name}: interrupted" + (f"; {interrupted}" if interrupted else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        # A full disk or a read-only folder met outside an output (a cache, the tracking store):
        # the user's to fix, so one line, naming the file where the error does.
        reason = cannot_write(exc)
        if reason is None:
            raise
        where = next((str(e.filename) for e in exception_chain(exc) if isinstance(e, OSError) and e.filename), "")
        print(mask_credentials(f"{name}: error: {where + ': ' if where else ''}cannot write: {reason} "
                               f"({' '.join(str(exc).split())[:200]}); free space or fix the folder, then run again"),
              file=sys.stderr)
        return EXIT_BAD_INPUT


def stage_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml",
                        help="parameters file (default: %(default)s); the whole file is checked "
                             "at start-up")
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                        help="a key of params.yaml, in dvc exp run -S's grammar; for a one-off run outside "
                             "DVC (dvc.lock is not updated; use `dvc exp run -S` for a tracked experiment)")
    parser.add_argument("--no-track", action="store_true",
                        help="don't record this run in MLflow (by default each run is one MLflow "
                             "run in mlruns/, or at $MLFLOW_TRACKING_URI)")
    return parser


def _inherited_set_params() -> list[str]:
    """The -S assignments of the stage that started this process ($PIPELINE_SET_PARAMS), or none."""
    text = os.environ.get(SET_PARAMS_ENV, "")
    if not text:
        return []
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise PipelineError(f"${SET_PARAMS_ENV}: expected a JSON list of -S assignments, got {text[:100]!r} "
                            "(the stage that starts a worker sets it; unset it)")
    return values


@contextmanager
def _handed_to_workers(assignments: Sequence[str]) -> Iterator[None]:
    """$PIPELINE_SET_PARAMS holds the assignments while the stage runs: its workers apply them too."""
    before = os.environ.get(SET_PARAMS_ENV)
    if assignments:
        os.environ[SET_PARAMS_ENV] = json.dumps(list(assignments), ensure_ascii=False)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SET_PARAMS_ENV, None)
        else:
            os.environ[SET_PARAMS_ENV] = before


@contextmanager
def _tracked(name: str, params: Params, reads: Sequence[str], args: argparse.Namespace,
             assignments: Sequence[str]) -> Iterator[None]:
    if getattr(args, "no_track", False):
        yield
        return
    from pipeline.core.tracking import stage_run
    with stage_run(name, params, reads):
        if assignments:   # the params logged are the values used; this says they differ from the file's
            import mlflow

            mlflow.set_tag(SET_PARAMS_TAG, mask_credentials(" ".join(f"-S {a}" for a in assignments))[:5000])
        yield


def run_stage(name: str, body: Callable[[Params, argparse.Namespace], None],
              parser: argparse.ArgumentParser, argv: list[str] | None = None,
              reads: Sequence[str] = (), resolve: Callable[[Params], Params] | None = None) -> int:
    """Parse, load params, run `body` as one MLflow run; exit 2 on bad input, 130 on Ctrl-C.

    `resolve` completes the params before the run starts (train merges the tuned values), so the
    run records the values actually used (-S ones included).
    """
    args = parser.parse_args(argv)

    def run() -> None:
        assignments = [*_inherited_set_params(), *(getattr(args, "set_param", None) or [])]
        params = load_params(args.params, assignments)   # before tracking: a bad file creates no run
        if resolve is not None:
            params = resolve(params)
        # The run ends (FAILED / KILLED) as the exception leaves it, before the message is printed.
        # SIGTERM, and a `dvc repro` that goes away, stop the stage as Ctrl-C does (core/process.py).
        with sigterm_as_interrupt(), watch_owner(name), _handed_to_workers(assignments), \
                _tracked(name, params, reads, args, assignments):
            body(params, args)

    return run_command(name, run, interrupted="previous outputs are left as they were")
