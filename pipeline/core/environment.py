"""Is this the project's Python? Checked before a command imports anything else.

`dvc repro` runs each stage with the first `python` on PATH: `.venv/bin/dvc repro` without the venv
activated runs the stages with the system's Python, which fails deep in an import
(`ModuleNotFoundError: tqdm`). This says in one line what to do instead.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# Top-level modules every command needs (find_spec looks for them without importing them).
NEEDED = ("yaml", "pydantic", "numpy", "pandas", "tqdm", "mlflow", "keras", "optuna", "sklearn", "konlpy")
EXIT_BAD_INPUT = 2   # as core/cli.py (not imported: it imports pydantic)


def missing(modules: tuple[str, ...] = NEEDED) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require_project_python() -> None:
    """Exit 2 with one line when this Python lacks the project's packages."""
    gone = missing()
    if not gone:
        return
    where = os.environ.get("DVC_STAGE")
    command = f"stage {where}" if where else "pipeline"
    venv = Path(os.environ.get("DVC_ROOT") or ".") / ".venv" / "bin" / "activate"
    fix = (f"activate the project's environment (`. {venv}`) and run it again" if venv.is_file()
           else "create the project's environment with `make install`, activate it (`. .venv/bin/activate`) "
                "and run it again")
    print(f"{command}: error: {sys.executable} lacks the project's packages ({', '.join(gone)}); {fix}",
          file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)
