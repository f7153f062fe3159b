"""Fault catalogue (issue 27), processes stopped from outside: kill -9 during tokenize, prepare, tune
and evaluate, then `dvc repro`; Ctrl-C during a tune with two trials to run.

Each case changes the clone of the session's `dvc repro`'d project as a user would (a parameter of
the stage), so `dvc repro` runs the stage again, and stops it once its MLflow run is RUNNING (for
tune: with a trial running). After kill -9 nothing could end the run: dvc.lock must be as DVC
recorded it and every output either as recorded or, when the kill came after the stage's atomic
replace, as the finished re-run leaves it: never partial, never missing. The next `dvc repro` must
mark the run KILLED, finish the work and leave no temp file, no run or trial RUNNING and nothing stale
(`dvc status` clean). Train's kill -9 and resume is in test_faults.py.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from helpers.outputs import leftovers, running_stage_runs, snapshot, wait_for
from helpers.project import Project

pytestmark = pytest.mark.integration

# A change to each stage's params that makes `dvc repro` run it again (and keeps its outputs
# valid for the tiny project): section, key, value. Each leaves the stage work to be caught at:
# Okt's normalisation is not in the analysis cache, so every text is analysed again (~4 s here; a
# stopword change took 0.02 s from the cache, and CI's poll came after the write); prepare has
# ~0.6 s here between its run's start and its outputs; tune and evaluate, seconds.
CHANGES = {
    "tokenize": ("tokenize", "norm", True),
    "prepare": ("prepare", "vocab", {"max_size": 19999, "min_freq": 1}),
    "tune": ("tune", "n_trials", 3),
    "evaluate": ("evaluate", "mistakes", 49),
}


def store(project: Project) -> Path:
    return project.root / "mlruns" / "mlflow.db"


def start_dvc_repro(project: Project, log: Path, *args: str) -> subprocess.Popen:
    project.runs()   # the store exists before the stage starts, as after any earlier stage
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "dvc", "repro", *args], cwd=project.root, env=project.env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def caught_mid_run(project: Project, stage: str, log: Path) -> dict:
    """The stage's RUNNING run, once it is at work (tune: a trial running)."""
    def at_work():
        runs = running_stage_runs(store(project), stage)
        return next((r for r in runs if r["pid"] and (stage != "tune" or r["nested_running"])), None)

    return wait_for(at_work, 240, f"the {stage} stage at work", log, poll=0.05)


def stop_everything(dvc: subprocess.Popen) -> None:
    if dvc.poll() is None:
        os.killpg(dvc.pid, signal.SIGKILL)
        dvc.wait(timeout=60)


# Outputs that differ between two runs of the same params: a live study (persist: true; the killed
# trial is in it until a run fails it), and tokenize's timings and cache hits.
VARYING = {"tune/optuna.db", "data/tokenize_stats.json"}


def neither_recorded_nor_rerun(before: dict, killed: dict, rerun: dict) -> list[str]:
    """The outputs the kill left in neither state a finished stage leaves: a partial or lost write."""
    return sorted(k for k in before.keys() | killed.keys()
                  if k not in VARYING and killed.get(k) not in (before.get(k), rerun.get(k)))


def study_states(project: Project) -> list[str]:
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{project.root / 'tune' / 'optuna.db'}")
    return sorted(t.state.name for t in study.trials)


# evaluate in `make test` (the only stage that reruns after it); the other three, 40-60 s each with
# the stages below them, in the slow tier.
@pytest.mark.parametrize("stage", [s if s == "evaluate" else pytest.param(s, marks=pytest.mark.slow)
                                   for s in CHANGES])
def test_kill_9_during_a_stage_then_dvc_repro_leaves_nothing_stale(stage, repro_project: Project, tmp_path):
    project = repro_project.clone(tmp_path / "project")
    project.set_param(*CHANGES[stage])
    before = snapshot(project.root)
    log = tmp_path / "dvc.log"
    dvc = start_dvc_repro(project, log)
    try:
        run = caught_mid_run(project, stage, log)
        os.kill(run["pid"], signal.SIGKILL)
        assert dvc.wait(timeout=120) != 0
    finally:
        stop_everything(dvc)
    assert [r["run_id"] for r in running_stage_runs(store(project), stage)] == [run["run_id"]], \
        "killed mid-run: nothing could end its run"
    killed = snapshot(project.root)
    assert killed["dvc.lock"] == before["dvc.lock"], "DVC records a stage only when it succeeds"

    again = project.dvc("repro")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert neither_recorded_nor_rerun(before, killed, snapshot(project.root)) == []
    said = again.stdout + again.stderr
    # The first stage DVC runs ends it (each stage's start looks for runs of dead processes).
    marked = re.search(r"(\w+): marked (\d+) run\(s\) KILLED whose process is gone: (.*)", said)
    assert marked and int(marked[2]) == 1 + run["nested_running"] and run["run_id"] in marked[3], said[-3000:]
    print("dvc repro ran:", re.findall(r"Running stage '(\w+)'", said), "; marked by", marked[1])
    dead = project.client().get_run(run["run_id"])
    assert dead.info.status == "KILLED"
    assert "ended without ending the run: killed" in dead.data.tags["pipeline.error"]
    assert not [r for r in project.runs() if r.info.status == "RUNNING"]
    status = project.dvc("status").stdout
    assert status.split() == ["download:", "always", "changed"], status   # download checks its source every run
    assert leftovers(project.root) == []
    if stage == "evaluate":   # a clone's store is empty: the train run of models/ is in the original's
        assert "is not in this MLflow store" in said and "test figures are logged on this run only" in said
    if stage == "tune":   # the killed trial failed, and the study holds its three trials
        assert study_states(project) == ["COMPLETE"] * 3 + ["FAIL"]


def test_kill_9_during_a_forced_rerun_of_nothing_changed_then_dvc_repro_ends_its_run(repro_project: Project,
                                                                                   tmp_path):
    """`dvc repro --force` with nothing changed, killed: dvc.lock still matches every output, so the
    next `dvc repro` has no stage of the work to run. download runs on every `dvc repro`
    (always_changed) and opens a stage run, so it is the one that marks the dead run KILLED."""
    project = repro_project.clone(tmp_path / "project")
    before = snapshot(project.root)
    log = tmp_path / "dvc.log"
    dvc = start_dvc_repro(project, log, "--force", "--single-item", "evaluate")
    try:
        run = caught_mid_run(project, "evaluate", log)
        os.kill(run["pid"], signal.SIGKILL)
        assert dvc.wait(timeout=120) != 0
    finally:
        stop_everything(dvc)
    assert [r["run_id"] for r in running_stage_runs(store(project), "evaluate")] == [run["run_id"]]

    again = project.dvc("repro")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    said = again.stdout + again.stderr
    assert re.findall(r"Running stage '(\w+)'", said) == ["download"], said[-3000:]
    assert f"download: marked 1 run(s) KILLED whose process is gone: {run['run_id']}" in said, said[-3000:]
    assert project.client().get_run(run["run_id"]).info.status == "KILLED"
    assert not [r for r in project.runs() if r.info.status == "RUNNING"]
    assert neither_recorded_nor_rerun(before, snapshot(project.root), before) == []
    assert leftovers(project.root) == []


@pytest.mark.slow
def test_ctrl_c_during_a_two_trial_tune_ends_the_run_and_its_trial_killed(repro_project: Project, tmp_path):
    """Ctrl-C in the terminal: SIGINT to `dvc repro` and its stage (one process group)."""
    project = repro_project.clone(tmp_path / "project")
    project.set_param("tune", "n_trials", 4)   # two more than the study holds
    before = snapshot(project.root)
    log = tmp_path / "dvc.log"
    dvc = start_dvc_repro(project, log)
    try:
        run = caught_mid_run(project, "tune", log)
        os.killpg(dvc.pid, signal.SIGINT)
        assert dvc.wait(timeout=120) != 0
    finally:
        stop_everything(dvc)
    text = log.read_text(errors="replace")
    assert "tune: interrupted" in text and "Traceback" not in text, text[-3000:]
    after = snapshot(project.root)
    assert after.pop("tune/optuna.db") and after == {k: v for k, v in before.items() if k != "tune/optuna.db"}
    assert leftovers(project.root) == []
    tune_run = project.client().get_run(run["run_id"])
    assert tune_run.info.status == "KILLED"
    assert not [r for r in project.runs() if r.info.status == "RUNNING"], "the trial's run ended too"
    states = study_states(project)
    assert "RUNNING" not in states and states.count("COMPLETE") == 2
