"""What a bench measured, kept as bench/results/<bench>.json: docs/BENCHMARKS.md is rendered from these.

The four benches with a make target call `record(...)` when they finish, with the figures they have
just printed (`--no-record`: they don't). `make results` (`python -m pipeline.experiments results`)
then renders the page. A file holds:

    {"bench": "tokenize", "command": "python bench/tokenize_speed.py --rows 20000 ...",
     "date": "2026-12-08T10:00:00+00:00", "commit": "e671639" ("" outside git),
     "machine": {"cpus": 2, "platform": "Linux-..."},
     "figures": [{"what": "tutorial loop", "value": 38.87, "unit": "s", "ratio": 1.0}, ...],
     "notes": ["20,000 rows ...", ...]}              # optional

`ratio` is against the bench's naive baseline (the tutorials' way; how many times faster), or
null where a figure is not compared. Files copied from earlier pages carry "source" besides.
"""
from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.core.atomic import write_json
from pipeline.experiments.benchmarks import FIGURE_KEYS  # the page reads the rows it writes

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"


def figure(what: str, value: float | int, unit: str, ratio: float | None = None) -> dict[str, Any]:
    """One row of a bench's table."""
    return {"what": what, "value": value, "unit": unit, "ratio": ratio}


def command_line() -> str:
    """The command that ran this bench, as typed: `python bench/x.py --rows 20000`."""
    return shlex.join(["python", *sys.argv])


def commit() -> str:
    """git rev-parse --short HEAD of this repository; "" outside git (or without git)."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def record(bench: str, figures: list[dict], command: str, *, notes: list[str] | None = None,
           results_dir: Path = RESULTS_DIR) -> Path:
    """Write results_dir/<bench>.json atomically (a temp file beside it, then a rename); its path."""
    for row in figures:
        if set(row) != set(FIGURE_KEYS):
            raise ValueError(f"bench {bench}: a figure has keys {list(row)}, not {list(FIGURE_KEYS)}")
    data: dict[str, Any] = {
        "bench": bench,
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "figures": figures,
    }
    if notes:
        data["notes"] = list(notes)
    target = Path(results_dir) / f"{bench}.json"
    write_json(target, data)
    # stderr: stdout stays what the bench prints (some end on a `speedup <X>` line read by scripts).
    print(f"recorded {_shown(target)} (make results renders docs/BENCHMARKS.md)", file=sys.stderr)
    return target


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)
