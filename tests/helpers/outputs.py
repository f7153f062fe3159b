"""What a project's stages wrote, to compare before and after a fault; the runs a fault left behind."""
from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Callable

# What the stages write (dvc.yaml's outs) and DVC's record of them.
OUTPUTS = ("data", "tune", "models", "metrics.json", "scores.json", "plots", "dvc.lock")


def snapshot(root: Path, outputs: tuple[str, ...] = OUTPUTS) -> dict[str, str]:
    """sha256 of every file of the outputs."""
    files = []
    for rel in outputs:
        path = root / rel
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def leftovers(root: Path) -> list[str]:
    """Temp outputs of core/atomic.py (.name.host-pid.xxxx.tmp / .old) anywhere in the project."""
    return [str(p.relative_to(root)) for p in root.rglob(".*") if p.name.endswith((".tmp", ".old"))]


def running_stage_runs(store: Path, stage: str) -> list[dict]:
    """The RUNNING runs of a stage in an MLflow SQLite store, read straight from its tables (a
    stage of the tiny project lasts seconds: MlflowClient's searches would miss some), with their
    pid tag and how many nested runs (trials) under them are RUNNING."""
    if not store.exists():
        return []
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
        rows = db.execute(
            "SELECT r.run_uuid, (SELECT value FROM tags WHERE run_uuid = r.run_uuid AND key = 'pipeline.pid'), "
            "(SELECT COUNT(*) FROM runs c JOIN tags p ON p.run_uuid = c.run_uuid AND p.key = 'mlflow.parentRunId' "
            " WHERE p.value = r.run_uuid AND c.status = 'RUNNING') "
            "FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'pipeline.stage' "
            "WHERE t.value = ? AND r.status = 'RUNNING'", (stage,)).fetchall()
    return [{"run_id": run_id, "pid": int(pid) if pid else None, "nested_running": nested}
            for run_id, pid, nested in rows]


def wait_for(condition: Callable[[], object], timeout: float, what: str, log: Path | None = None,
             poll: float = 0.3):
    """condition()'s first truthy value, polling; an AssertionError with the log's tail after timeout."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n{tail}")
        time.sleep(poll)
    return value
