"""What every command line shares: one-line errors, Ctrl-C, and for stages --params and --no-track.

`run_command` is the one place a `PipelineError` (core/errors.py: anything the user caused) becomes
one line on stderr and exit code 2, and Ctrl-C exit code 130. Other exceptions are bugs: they keep
their traceback.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Callable, Sequence

from pipeline.core.atomic import cannot_write, exception_chain
from pipeline.core.config import Params, load_params
from pipeline.core.errors import PipelineError, mask_credentials
from pipeline.core.process import sigterm_as_interrupt, watch_owner

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


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
    parser.add_argument("--no-track", action="store_true",
                        help="don't record this run in MLflow (by default each run is one MLflow "
                             "run in mlruns/, or at $MLFLOW_TRACKING_URI)")
    return parser


def _tracked(name: str, params: Params, reads: Sequence[str],
             args: argparse.Namespace) -> AbstractContextManager:
    if getattr(args, "no_track", False):
        return nullcontext()
    from pipeline.core.tracking import stage_run
    return stage_run(name, params, reads)


def run_stage(name: str, body: Callable[[Params, argparse.Namespace], None],
              parser: argparse.ArgumentParser, argv: list[str] | None = None,
              reads: Sequence[str] = (), resolve: Callable[[Params], Params] | None = None) -> int:
    """Parse, load params, run `body` as one MLflow run; exit 2 on bad input, 130 on Ctrl-C.

    `resolve` completes the params before the run starts (train merges the tuned values), so the
    run records the values actually used.
    """
    args = parser.parse_args(argv)

    def run() -> None:
        params = load_params(args.params)   # before tracking: a bad file creates no run
        if resolve is not None:
            params = resolve(params)
        # The run ends (FAILED / KILLED) as the exception leaves it, before the message is printed.
        # SIGTERM, and a `dvc repro` that goes away, stop the stage as Ctrl-C does (core/process.py).
        with sigterm_as_interrupt(), watch_owner(name), _tracked(name, params, reads, args):
            body(params, args)

    return run_command(name, run, interrupted="previous outputs are left as they were")
