"""Fault catalogue (issue 27), faults: a full disk under each stage, a read-only data/ and tracking folder.

Each case runs a stage as its own process (as `dvc repro` does) on a clone of the session's
`dvc repro`'d project, with the fault made real by the kernel: the clone on a tmpfs with no room
left, or a folder bind-mounted read-only. What must hold: exit 2 with one line saying what could not
be written, every output as it was (byte for byte), no temp file left behind, and the stage's MLflow
run FAILED (the store is outside the full disk), never RUNNING. Mounting needs root (CI runs as
root); elsewhere these skip, saying so. kill -9 and Ctrl-C during a stage are in test_catalogue_kill.py.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from helpers.mounts import can_mount, read_only
from helpers.outputs import leftovers, snapshot
from helpers.project import Project

pytestmark = pytest.mark.integration

@pytest.fixture(scope="session")
def mountable() -> None:
    """Probed once, when a test of this module runs (not at collection, for every tier)."""
    why_not = can_mount()
    if why_not:
        pytest.skip(why_not)


@contextlib.contextmanager
def mounted(cmd: list[str], where: Path) -> Iterator[None]:
    subprocess.run(cmd, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@contextlib.contextmanager
def project_on_a_full_disk(repro_project: Project, tmp_path: Path, stage: str) -> Iterator[Project]:
    """A clone on its own tmpfs, then the tmpfs shrunk to what the clone uses: the next page a stage
    writes finds no space. MLflow's store and the caches stay outside, on the real disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted(["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", str(disk)], disk):
        project = repro_project.clone(disk / "project")
        store = tmp_path / "store"
        store.mkdir()
        project.env.update(MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}",
                           PIPELINE_CACHE_DIR=str(tmp_path / "cache"), PYTHONDONTWRITEBYTECODE="1")
        shutil.copytree(project.root / ".cache", tmp_path / "cache", dirs_exist_ok=True)
        if stage == "tune":
            project.set_param("tune", "n_trials", 4)   # 2 more trials than the study holds
        # MLflow puts a new experiment's artifacts under ./mlruns of the working directory: the
        # experiment is made here first, with its artifacts beside the store.
        subprocess.run([sys.executable, "-c", (
            "import mlflow; mlflow.set_tracking_uri(%r); "
            "mlflow.create_experiment('textclf-table', artifact_location=%r)") % (
            project.env["MLFLOW_TRACKING_URI"], (store / "artifacts").as_uri())], check=True, capture_output=True)
        size = used_bytes(disk) + 4096
        subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True, capture_output=True)
        yield project


def stage_runs(project: Project, stage: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("textclf-table")
    return [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("pipeline.stage") == stage]


def assert_one_line_error(done: subprocess.CompletedProcess, stage: str, says: str) -> str:
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{stage}: error: ") and says in last, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return last


@pytest.mark.usefixtures("mountable")
# One stage in `make test` (train: the model, the bundle and the MLflow model are its writes); the
# other five take 18-27 s each and run in the slow tier (`make test-slow`, in .ci/run when it fits).
@pytest.mark.parametrize("stage", [pytest.param(s, marks=pytest.mark.slow) if s != "train" else s
                                   for s in ("download", "tokenize", "prepare", "tune", "train", "evaluate")])
def test_a_full_disk_under_a_stage_loses_nothing(stage, repro_project: Project, tmp_path):
    with project_on_a_full_disk(repro_project, tmp_path, stage) as project:
        before = snapshot(project.root)
        done = project.run(sys.executable, "-m", f"pipeline.{stage}", timeout=600)
        assert_one_line_error(done, stage, "no space left on the device")
        assert snapshot(project.root) == before
        assert leftovers(project.root) == []
        statuses = [r.info.status for r in stage_runs(project, stage)]
    assert statuses == ["FAILED"], statuses


@pytest.mark.usefixtures("mountable")
def test_a_read_only_data_folder_is_one_line_and_loses_nothing(repro_project: Project, tmp_path):
    project = repro_project.clone(tmp_path / "project")
    project.runs()   # the store exists
    before = snapshot(project.root)
    with read_only(project.root / "data"):
        done = project.run(sys.executable, "-m", "pipeline.tokenize", "--no-cache", timeout=600)
    last = assert_one_line_error(done, "tokenize", "read-only file system")
    assert "data/tokens.parquet" in last
    assert snapshot(project.root) == before and leftovers(project.root) == []
    assert [r.info.status for r in project.runs() if r.data.tags.get("pipeline.stage") == "tokenize"
            and r.info.status != "FINISHED"] == ["FAILED"]


@pytest.mark.usefixtures("mountable")
def test_a_read_only_tracking_folder_is_one_line_before_any_work(repro_project: Project, tmp_path):
    project = repro_project.clone(tmp_path / "project")
    project.runs()
    before = snapshot(project.root)
    with read_only(project.root / "mlruns"):
        done = project.run(sys.executable, "-m", "pipeline.prepare", timeout=600)
    last = assert_one_line_error(done, "prepare", "mlruns/mlflow.db cannot write the store: the folder is on a "
                                 "read-only file system")
    assert "[SQL:" not in last
    assert snapshot(project.root) == before and leftovers(project.root) == []
    assert not [r for r in project.runs() if r.info.status == "RUNNING"]
