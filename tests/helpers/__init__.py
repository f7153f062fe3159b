"""What the test modules share besides fixtures (those are in conftest.py).

Test modules import from here (`from helpers import REPO`, `from helpers.project import ...`) and
never from each other or from conftest.py; tests/test_hygiene.py checks that.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", REPO.parent / "shared" / "data"))


def make_params(**sections):
    """Params from plain dicts, through the same checks as params.yaml."""
    from pipeline.core.config import parse_params

    return parse_params(sections)
