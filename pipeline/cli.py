"""What every stage's command line shares: --params, one-line errors, Ctrl-C."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from pipeline.config import Params, ParamsError, load_params

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class StageError(RuntimeError):
    """A failure the user can act on; printed as one line, without a traceback."""


def stage_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml",
                        help="parameters file (default: %(default)s); the whole file is checked "
                             "at start-up")
    return parser


def run_stage(name: str, body: Callable[[Params, argparse.Namespace], None],
              parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    args = parser.parse_args(argv)
    # Imported here so a bad params.yaml is reported before any heavy import.
    from pipeline.fetch import FetchError
    from pipeline.readers import DataError

    try:
        params = load_params(args.params)
        body(params, args)
    except (ParamsError, DataError, FetchError, StageError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{name}: interrupted; previous outputs are left as they were", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
