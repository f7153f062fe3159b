"""The probe of issue 36, stage side: a locked or uncreatable MLflow store, damaged stage outputs and an
unreadable params.yaml, each met by a stage run by hand (`python -m pipeline.<stage>`, its own process).

What must hold: a lock shorter than the wait is waited out; otherwise exit 2 with one line naming the
file or store and the way out, no traceback, nothing lost (models/ kept when only its logging failed),
and the stage's MLflow run FAILED, never left RUNNING. The stores are real SQLite files, the lock a
real `BEGIN EXCLUSIVE` from another process, the read-only folder a read-only bind mount (as root) or
chmod 0o555.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from helpers.mounts import can_mount, read_only
from helpers.outputs import leftovers, snapshot, wait_for
from helpers.project import Project, stage_env
from helpers.tinydata import write_table_project

pytestmark = pytest.mark.integration

TRAIN = ("train:\n  epochs: 2\n  ensemble: 1\n  use_tuned: false\n"
         "  model: {units: 4, embedding_dim: 4, dense_units: 0, bidirectional: false}\nchampion:\n  folds: 1\n")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Project:
    """A tiny table project through download, tokenize and prepare (--no-track): copy it to change it."""
    root = tmp_path_factory.mktemp("probe") / "project"
    root.mkdir()
    write_table_project(root, TRAIN)
    project = Project(root, stage_env(root, root.parent / "dvc-site"))
    for stage in ("download", "tokenize", "prepare"):
        done = project.run(sys.executable, "-m", f"pipeline.{stage}", "--no-track")
        assert done.returncode == 0, done.stderr[-3000:]
    return project


def copy(project: Project, dest: Path) -> Project:
    shutil.copytree(project.root, dest, symlinks=True)
    return Project(dest, stage_env(dest, dest.parent / "dvc-site"))


def one_line_error(done: subprocess.CompletedProcess, stage: str) -> str:
    """The stage's last stderr line, checked to be its error; TensorFlow's start-up chatter may precede it."""
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{stage}: error: "), done.stderr[-3000:]
    return last


def stage_runs(project: Project, stage: str) -> list:
    return [r for r in project.runs() if r.data.tags.get("pipeline.stage") == stage]


# Another process holding the store's write lock: a DB browser's open transaction, `sqlite3 mlflow.db`.
LOCKER = """import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
print(time.time(), flush=True)
"""


def train_meeting_a_lock(project: Project, seconds: float, **env: str) -> dict:
    """The train stage with the store locked for `seconds` from when it writes models/ (its temp folder
    appears), that is, while it logs and registers the model: its exit code, stderr and end, and when
    the lock was released (time.time())."""
    log = project.root.parent / "train.log"
    with open(log, "w") as err:
        stage = subprocess.Popen([sys.executable, "-m", "pipeline.train"], cwd=project.root, stderr=err,
                                 stdout=subprocess.DEVNULL, env={**project.env, **env})
        try:
            wait_for(lambda: list(project.root.glob(".models.*.tmp")) or stage.poll() is not None, 300,
                     "train writing models/", log, poll=0.02)
            locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(project.root / "mlruns" / "mlflow.db"),
                                       str(seconds)], stdout=subprocess.PIPE, text=True)
            assert locker.stdout.readline().strip() == "locked"
            code = stage.wait(timeout=600)
            ended = time.time()
        finally:
            if stage.poll() is None:
                stage.kill()
    released = float(locker.stdout.readline())
    locker.wait(timeout=60)
    return {"code": code, "stderr": log.read_text(errors="replace"), "ended": ended, "released": released}


def test_a_lock_held_while_train_logs_its_model_is_waited_out(prepared, tmp_path):
    """MLflow's first connection to its registry store waited sqlite3's 5 s, then the finished training
    was discarded with a traceback: a 9 s lock is longer than that, shorter than the wait set here (the
    default is 30 s; MLflow's sessions' own 20 s is replaced by the same bound)."""
    project = copy(prepared, tmp_path / "project")
    outcome = train_meeting_a_lock(project, 9, PIPELINE_MLFLOW_BUSY_SECONDS="15")
    assert outcome["code"] == 0, outcome["stderr"][-3000:]
    run = stage_runs(project, "train")[0]
    assert run.info.status == "FINISHED"
    version = project.read_json("models/run.json")["model_version"]
    created = project.client().get_model_version("textclf-table", version).creation_timestamp / 1000
    assert created >= outcome["released"] - 1, "the model was registered before the lock was released"


def test_a_lock_held_longer_than_the_wait_keeps_models_and_fails_the_run(prepared, tmp_path):
    """One line naming the store and the way back; models/ written; the run FAILED by the next stage run
    (the lock outlasted the stage), and the next train only logs: it resumes after its last epoch."""
    project = copy(prepared, tmp_path / "project")
    outcome = train_meeting_a_lock(project, 10, PIPELINE_MLFLOW_BUSY_SECONDS="1")
    done = subprocess.CompletedProcess([], outcome["code"], "", outcome["stderr"])
    last = one_line_error(done, "train")
    store = project.root / "mlruns" / "mlflow.db"
    assert f"MLflow tracking at sqlite:///{store} failed: database is locked (another " \
           "process held the store's lock for over 1 s; $PIPELINE_MLFLOW_BUSY_SECONDS sets how long to wait) " \
           "(models/ is written but not logged: `dvc repro train` logs it, resuming from the finished training)" in last
    [failed] = stage_runs(project, "train")
    assert failed.info.status == "RUNNING" and outcome["ended"] < outcome["released"]   # it ended under the lock
    assert last.endswith(f"; its MLflow run ({failed.info.run_id}) stays RUNNING until the next stage run marks it "
                         "FAILED: the store failed to end it (database is locked)"), last
    assert (project.root / "models" / "model.keras").is_file() and leftovers(project.root) == []
    assert "model_version" not in project.read_json("models/run.json")
    marked = project.run(sys.executable, "-m", "pipeline.download")
    assert marked.returncode == 0, marked.stderr[-3000:]
    assert f"download: marked 1 run(s) FAILED whose process is gone: {failed.info.run_id}" in marked.stderr
    failed = project.client().get_run(failed.info.run_id)
    assert failed.info.status == "FAILED" and "database is locked" in failed.data.tags["pipeline.error"]
    again = project.run(sys.executable, "-m", "pipeline.train")
    assert again.returncode == 0 and "train: resumed after epoch 2" in again.stderr, again.stderr[-3000:]
    assert project.read_json("models/run.json")["model_version"]
    assert not [r for r in project.runs() if r.info.status == "RUNNING"]


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[None]:
    """A folder nobody can create files in: bound onto itself read-only as root (chmod would not stop
    root), chmod 0o555 otherwise."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield
        return
    why_not = can_mount()
    if why_not:
        pytest.skip(why_not)
    with read_only(folder):
        yield


def test_a_store_that_cannot_be_created_fails_in_seconds(prepared, tmp_path):
    """sqlite:////read-only/mlflow.db took MLflow's 10 engine attempts with back-off: 104 s."""
    project = copy(prepared, tmp_path / "project")
    before = snapshot(project.root)
    folder = tmp_path / "read-only"
    elsewhere = Project(project.root, {**project.env, "MLFLOW_TRACKING_URI": f"sqlite:///{folder}/mlflow.db"})
    with read_only_folder(folder):
        started = time.monotonic()
        done = elsewhere.run(sys.executable, "-m", "pipeline.prepare", timeout=300)
        seconds = time.monotonic() - started
        assert not list(folder.iterdir())
    last = one_line_error(done, "prepare")
    why = "the folder is on a read-only file system" if os.geteuid() == 0 else "no permission to write there"
    assert last == (f"prepare: error: MLflow tracking at sqlite:///{folder}/mlflow.db cannot write the store: cannot "
                    f"create {folder}/mlflow.db ({folder}: {why}) (--no-track runs the stage without it, or point "
                    "$MLFLOW_TRACKING_URI at a writable folder)")
    assert seconds < 30, f"took {seconds:.0f} s"
    assert snapshot(project.root) == before


# A file cut short (a disk that filled, a copy interrupted), and the stage run by hand that reads it.
DAMAGED = [("data/prepared/train.npz", "train", "BadZipFile: File is not a zip file"),
           ("data/prepared/val.npz", "tune", "BadZipFile: File is not a zip file"),
           ("data/prepared/vocab.json", "train", "JSONDecodeError: "),
           ("data/prepared/labels.json", "tune", "JSONDecodeError: "),
           ("data/prepared/params.json", "train", "JSONDecodeError: "),
           ("data/tokens.parquet", "prepare", "ArrowInvalid: "),
           ("data/tokens.parquet", "train", "ArrowInvalid: ")]      # the linear model's token lists


@pytest.mark.parametrize("rel, stage, reason", DAMAGED, ids=[f"{s}-{Path(r).name}" for r, s, _ in DAMAGED])
def test_a_truncated_input_is_one_line_naming_it_and_the_stage_that_writes_it(prepared, tmp_path, rel, stage, reason):
    project = copy(prepared, tmp_path / "project")
    path = project.root / rel
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    before = snapshot(project.root)
    last = one_line_error(project.run(sys.executable, "-m", f"pipeline.{stage}"), stage)
    writer, folder = ("tokenize", rel) if rel.endswith(".parquet") else ("prepare", "data/prepared")
    assert last.startswith(f"{stage}: error: {rel}: damaged or not what the {writer} stage writes ({reason}"), last
    assert last.endswith(f"; rebuild it with `dvc repro {writer}` or `dvc checkout {folder}`"), last
    assert snapshot(project.root) == before and leftovers(project.root) == []
    assert [r.info.status for r in stage_runs(project, stage)] == ["FAILED"]


@pytest.mark.parametrize("stage", ["prepare", "train"])
def test_a_params_yaml_not_in_utf8_is_one_line_naming_the_line(prepared, tmp_path, stage):
    project = copy(prepared, tmp_path / "project")
    path = project.root / "params.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_bytes(text.replace("tokenize:\n", "# 형태소 분석\ntokenize:\n").encode("cp949"))
    line = text.split("tokenize:\n")[0].count("\n") + 1
    done = project.run(sys.executable, "-m", f"pipeline.{stage}")
    assert one_line_error(done, stage) == (f"{stage}: error: params.yaml: line {line}: not UTF-8 text (byte 0xc7); "
                                           "save it as UTF-8 (a Korean Windows editor may have saved it as cp949)")
    assert project.runs() == []   # before tracking: no run at all


def test_a_params_yaml_that_is_a_folder_is_one_line(prepared, tmp_path):
    project = copy(prepared, tmp_path / "project")
    (project.root / "params.yaml").unlink()
    (project.root / "params.yaml").mkdir()
    done = project.run(sys.executable, "-m", "pipeline.tune")
    assert one_line_error(done, "tune") == "tune: error: params.yaml: is a folder, not a file"
    assert project.runs() == []
