"""The one rank-aware logger: a stage's lines are printed by the chief alone (Lightning's rank_zero_info).

Under MultiWorkerMirroredStrategy every worker runs the train stage's body; only the chief writes
outputs, logs to MLflow and says what it did. The train stage names this process's rank once its
strategy exists (`with log.ranked(is_chief(strategy))`); every other process, and the train stage
until then, is one process and its own chief. The MLflow adapters (core/recording.py) ask the same
`is_chief`, so no stage body guards a print or a log call with it.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

_chief = True


def is_chief() -> bool:
    """Whether this process is the one that prints, writes and records (True outside a strategy's workers)."""
    return _chief


@contextmanager
def ranked(chief: bool) -> Iterator[None]:
    """This process is the chief, or not, for the block; the rank before it comes back after."""
    global _chief
    saved, _chief = _chief, bool(chief)
    try:
        yield
    finally:
        _chief = saved


def info(message: str) -> None:
    """A line of the stage's results on stdout, on the chief only."""
    if _chief:
        print(message)


def note(message: str) -> None:
    """A line on stderr (what happened on the way, a warning), on the chief only."""
    if _chief:
        print(message, file=sys.stderr)
