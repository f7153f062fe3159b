"""Faults that need real processes: `dvc repro` stopped by its PID, a stage killed with SIGKILL.

Both on a clone of the session's `dvc repro`'d project, with a train stage made long enough to be
caught mid-training. What must hold: the outputs DVC recorded stay as they were, and no MLflow run
is left RUNNING (KILLED instead, with the run that resumes the work pointing back at it).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from helpers import outputs
from helpers.outputs import wait_for
from helpers.project import Project

pytestmark = pytest.mark.integration


def train_runs(project: Project) -> list:
    return [r for r in project.runs() if r.data.tags.get("pipeline.stage") == "train"]


def epochs_logged(project: Project, run_id: str) -> int:
    return len(project.client().get_metric_history(run_id, "val/loss"))


def running_train(project: Project):
    """The train run in progress with at least one epoch logged, or None."""
    for run in train_runs(project):
        if run.info.status == "RUNNING" and epochs_logged(project, run.info.run_id) >= 1:
            return run
    return None


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of what DVC recorded: the model folder, metrics and dvc.lock."""
    return outputs.snapshot(root, ("models", "dvc.lock", "metrics.json"))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def long_training(project: Project, epochs: int) -> None:
    project.set_param("train", "epochs", epochs)
    project.set_param("train", "early_stopping_patience", 0)
    # The store exists before the stage starts (as after any earlier stage): two processes creating
    # one SQLite store at once race in MLflow's migrations.
    project.runs()


def test_stopping_dvc_repro_by_its_pid_stops_the_stage_as_interrupted(repro_project: Project, tmp_path):
    """`kill <dvc pid>` (an IDE's stop button, a supervisor): DVC exits, and its stage must not go on
    to replace models/ behind DVC's back."""
    project = repro_project.clone(tmp_path / "project")
    long_training(project, 3000)
    before = snapshot(project.root)
    log = tmp_path / "dvc.log"
    with log.open("w") as out:
        dvc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--single-item", "train"], cwd=project.root,
                               env=project.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: running_train(project) is not None, 240, "the train stage training", log)
        stage = [p.pid for p in psutil.Process(dvc.pid).children(recursive=True)]
        assert stage, "the stage runs as DVC's child"
        run = running_train(project)
        os.kill(dvc.pid, signal.SIGTERM)
        assert dvc.wait(timeout=60) != 0
        wait_for(lambda: all(gone(pid) for pid in stage), 60, "the orphaned stage stopping", log)
    finally:
        for p in psutil.Process(dvc.pid).children(recursive=True) if not gone(dvc.pid) else []:
            p.kill()
        if dvc.poll() is None:
            dvc.kill()
    text = log.read_text(errors="replace")
    assert "is gone; stopping as if interrupted" in text, text[-3000:]
    assert "train: interrupted; previous outputs are left as they were" in text
    assert snapshot(project.root) == before, "models/, metrics.json and dvc.lock are as DVC recorded them"
    ended = project.client().get_run(run.info.run_id)
    assert ended.info.status == "KILLED"
    assert epochs_logged(project, run.info.run_id) < 3000
    assert not project.client().search_model_versions("name='textclf-table'"), "no model was registered"


def test_a_killed_stage_run_is_marked_killed_and_the_resumed_run_points_back(repro_project: Project, tmp_path):
    """kill -9 mid-epoch: nothing can end the run then. The next run of a stage ends it KILLED; the
    train run that resumes the work says which run it continues and holds the whole curve."""
    project = repro_project.clone(tmp_path / "project")
    epochs = 20
    long_training(project, epochs)
    log = tmp_path / "train.log"
    with log.open("w") as out:
        first = subprocess.Popen([sys.executable, "-m", "pipeline.train"], cwd=project.root, env=project.env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (r := running_train(project)) is not None and epochs_logged(project, r.info.run_id) >= 3,
                 240, "three epochs logged", log)
        killed = running_train(project)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    assert project.client().get_run(killed.info.run_id).info.status == "RUNNING"
    assert killed.data.tags["pipeline.pid"] == str(first.pid)
    assert killed.data.tags["pipeline.host"] and float(killed.data.tags["pipeline.process_started"]) > 0

    again = project.run(sys.executable, "-m", "pipeline.train", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"marked 1 run(s) KILLED whose process is gone: {killed.info.run_id}" in again.stderr
    assert "train: resumed after epoch" in again.stderr

    old = project.client().get_run(killed.info.run_id)
    assert old.info.status == "KILLED"
    assert f"pid {first.pid}) ended without ending the run" in old.data.tags["pipeline.error"]
    (resumed,) = [r for r in train_runs(project) if r.info.run_id != killed.info.run_id]
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags["pipeline.resumes_run"] == killed.info.run_id
    from_epoch = int(resumed.data.tags["train.resumed_from_epoch"])
    assert 3 <= from_epoch < epochs
    steps = [m.step for m in project.client().get_metric_history(resumed.info.run_id, "val/loss")]
    assert sorted(steps) == list(range(1, epochs + 1)), "the resumed run holds the whole learning curve"
    assert not [r for r in project.runs() if r.info.status == "RUNNING"]
