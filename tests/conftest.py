"""Fixtures shared by the tests: the HTTP site, the shared data folder, a params builder."""
from __future__ import annotations

import os
from pathlib import Path

import httpsite
import pytest

from pipeline.core.config import Params, parse_params

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def site():
    """A real HTTP server on 127.0.0.1 serving `site.files`."""
    yield from httpsite.serve()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared datasets at {SHARED_DATA} (absent here; CI has them)")
    return SHARED_DATA


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run a stage function with tmp_path as the repo root (data/, .cache/ land there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / ".cache"))
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    return tmp_path


def make_params(**sections) -> Params:
    """Params from plain dicts, through the same checks as params.yaml."""
    return parse_params(sections)
