"""docs/BENCHMARKS.md from bench/results/*.json: one table per bench, with its command, date and commit.

Each bench script in bench/ writes bench/results/<bench>.json when it finishes (bench/record.py,
which this module does not import: the package never imports bench/). A file holds

    {"bench": "tokenize", "command": "python bench/tokenize_speed.py ...", "date": "2026-12-08T10:00:00+00:00",
     "commit": "e671639", "machine": {"cpus": 2, "platform": "Linux-..."},
     "figures": [{"what": "tutorial loop", "value": 38.87, "unit": "s", "ratio": 1}, ...],
     "notes": ["...", ...],                  # optional
     "source": "docs/benchmarks.md at ..."}  # optional: figures copied from an earlier page, not measured by it

The Makefile says which target runs which script: each table names the target that refreshes it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pipeline.core.atomic import atomic_file
from pipeline.core.errors import ExperimentError

BENCH_RESULTS = Path("bench/results")
BENCHMARKS = Path("docs/BENCHMARKS.md")
MAKEFILE = Path("Makefile")
FIGURE_KEYS = ("what", "value", "unit", "ratio")
_SCRIPT = re.compile(r"\bbench/[\w.-]+\.py\b")
_TARGET = re.compile(r"^([A-Za-z0-9_.-]+):")


@dataclass(frozen=True)
class BenchRecord:
    """One bench/results/<bench>.json."""
    bench: str
    command: str
    date: str
    commit: str
    figures: tuple[dict[str, Any], ...]
    machine: dict[str, Any]
    notes: tuple[str, ...] = ()
    source: str = ""

    @property
    def script(self) -> str:
        """bench/<name>.py as the command names it; "" when it names none."""
        found = _SCRIPT.search(self.command)
        return found[0] if found else ""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(data: Any) -> str | None:
    """What is wrong with a results file's content, or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for key in ("bench", "command", "date", "commit"):
        if not isinstance(data.get(key), str):
            return f"{key!r} is missing or not a string"
    if not data["bench"]:
        return "'bench' is empty"
    figures = data.get("figures")
    if not isinstance(figures, list) or not figures:
        return "'figures' is missing or not a non-empty list"
    for n, row in enumerate(figures, 1):
        if not isinstance(row, dict) or set(row) != set(FIGURE_KEYS):
            return f"figure {n} does not have exactly the keys {', '.join(FIGURE_KEYS)}"
        if not isinstance(row["what"], str) or not isinstance(row["unit"], str):
            return f"figure {n}: 'what' and 'unit' must be strings"
        if not _number(row["value"]) or not (row["ratio"] is None or _number(row["ratio"])):
            return f"figure {n}: 'value' must be a number and 'ratio' a number or null"
    if not isinstance(data.get("machine", {}), dict):
        return "'machine' is not an object"
    notes = data.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        return "'notes' is not a list of strings"
    if not isinstance(data.get("source", ""), str):
        return "'source' is not a string"
    return None


def read_record(path: Path) -> BenchRecord:
    """One results file, checked; a damaged one is an ExperimentError of one line naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problem = " ".join(str(exc).split())
    else:
        problem = _check(data)
    if problem is not None:
        raise ExperimentError(f"{path}: not a bench results file ({problem}); fix it, or run its bench again")
    return BenchRecord(data["bench"], data["command"], data["date"], data["commit"], tuple(data["figures"]),
                       dict(data.get("machine", {})), tuple(data.get("notes", [])), data.get("source", ""))


def read_records(results_dir: Path) -> list[BenchRecord]:
    """Every results_dir/*.json, in file-name order."""
    return [read_record(path) for path in sorted(Path(results_dir).glob("*.json"))]


def make_targets(makefile: Path) -> dict[str, str]:
    """bench/<script>.py -> the Makefile target whose recipe runs it, in the Makefile's order; {} without one."""
    try:
        lines = Path(makefile).read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    targets: dict[str, str] = {}
    target = None
    for line in lines:
        found = _TARGET.match(line)
        if found and not line.startswith("\t"):
            target = found[1]
        elif line.startswith("\t") and target:
            for script in _SCRIPT.findall(line):
                targets.setdefault(script, target)
    return targets


def _value(value: float | int | None) -> str:
    return "" if value is None else f"{value:,}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _refresh(record: BenchRecord, targets: dict[str, str]) -> str:
    target = targets.get(record.script)
    return f"`make {target}`" if target else f"`{record.command}`"


def _machine(machine: dict[str, Any]) -> str:
    parts = []
    if machine.get("cpus"):
        parts.append(f"{machine['cpus']} CPUs")
    if machine.get("platform"):
        parts.append(str(machine["platform"]))
    return ", ".join(parts)


def render_benchmarks(records: Sequence[BenchRecord], targets: dict[str, str], results_link: str) -> str:
    """The page: an index (bench, how to refresh it, when measured), then one table per bench."""
    order = {script: n for n, script in enumerate(targets)}
    records = sorted(records, key=lambda r: (order.get(r.script, len(order)), r.bench))
    lines = [
        "# Benchmarks: the figures measured",
        "",
        "Generated by `make results` (`python -m pipeline.experiments results`) from",
        f"[bench/results/*.json]({results_link}); do not edit by hand. Each bench script in `bench/` writes its",
        "file when it finishes, with the figures it prints (`--no-record`: it does not). To refresh a",
        "bench's table, run its target below, then `make results`. What each bench compares, how, and",
        "the data each needs are in [benchmarks.md](benchmarks.md).",
        "",
        "*ratio* is against the bench's naive baseline (the tutorials' way of doing the same work, ratio",
        "1): how many times faster. It is blank where a figure is not compared. Timings vary from run to",
        "run on a shared machine.",
        "",
        "| bench | refresh with | measured | commit |",
        "| --- | --- | --- | --- |",
    ]
    for r in records:
        when = _cell(r.date) + (" (copied from an earlier page)" if r.source else "")
        lines.append(f"| [{_cell(r.bench)}](#{_anchor(r.bench)}) | {_refresh(r, targets)} | {when} | "
                     f"{_cell(r.commit) or '—'} |")
    for r in records:
        lines += ["", f"## {r.bench}", "", f"`{r.command}`" + (f" (`make {targets[r.script]}`)"
                                                               if r.script in targets else "")]
        measured = f"Measured {r.date}" + (f" at commit {r.commit}" if r.commit else "")
        machine = _machine(r.machine)
        lines += ["", measured + (f" on {machine}" if machine else "") + "."]
        if r.source:
            lines.append(f"Copied from {r.source}, where they were measured earlier; {_refresh(r, targets)} "
                         "replaces them with a recorded run.")
        lines += ["", "| what | value | unit | ratio |", "| --- | --- | --- | --- |"]
        for row in r.figures:
            lines.append(f"| {_cell(row['what'])} | {_value(row['value'])} | {_cell(row['unit'])} | "
                         f"{_value(row['ratio'])} |")
        if r.notes:
            lines.append("")
            lines += [f"- {' '.join(note.split())}" for note in r.notes]
    return "\n".join(lines) + "\n"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def write_benchmarks(results_dir: Path = BENCH_RESULTS, output: Path = BENCHMARKS,
                     makefile: Path = MAKEFILE) -> list[BenchRecord]:
    """Render results_dir/*.json to output, atomically; the records rendered."""
    records = read_records(results_dir)
    if not records:
        raise ExperimentError(f"{results_dir}: no bench results (*.json) to render; run a bench first "
                              "(make bench, make bench-train, ...)")
    link = Path(os.path.relpath(Path(results_dir).resolve(), Path(output).resolve().parent)).as_posix() + "/"
    text = render_benchmarks(records, make_targets(makefile), link)
    with atomic_file(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return records
