"""The tune stage: a real Optuna study (SQLite, journal, PostgreSQL) over real training, in MLflow."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from helpers import REPO, make_params
from helpers.tinydata import TINY_MODEL
from pipeline.core.config import TrainParams, override
from pipeline.core.errors import ParamsError, StageError
from pipeline.tuning import study as studies

SPACE = {"model.units": {"type": "int", "low": 4, "high": 16, "log": True},
         "learning_rate": {"type": "float", "low": 0.001, "high": 0.05, "log": True},
         "maxlen": {"type": "int", "low": 6, "high": 12, "step": 2}}
GOOD = {"model.units": 16, "learning_rate": 0.05, "maxlen": 12}
BAD = {"model.units": 4, "learning_rate": 0.001, "maxlen": 6}


def tune_params(**tune) -> dict:
    return {"dataset": {"name": "seoul120"},
            "train": {"model": TINY_MODEL, "epochs": 3, "batch_size": 16, "learning_rate": 0.001,
                      "early_stopping_patience": 0, "seed": 3},
            "tune": {"n_trials": 4, "epochs": 3, "startup_trials": 1, "warmup_epochs": 0,
                     "space": SPACE, **tune}}


def write_project(root: Path, **tune) -> None:
    """params.yaml for the tiny task (the `project` fixture has put its data/prepared in place)."""
    (root / "params.yaml").write_text(yaml.safe_dump(tune_params(**tune)), encoding="utf-8")


@pytest.fixture
def project(tmp_path, monkeypatch, tiny_prepared, mlflow_store) -> Path:
    """tmp_path as the repo root, with the tiny task's data/prepared and an empty MLflow store, and no
    store named by the shell."""
    shutil.copytree(tiny_prepared, tmp_path / "data" / "prepared")
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "OPTUNA_STORAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / ".cache"))
    yield tmp_path
    import mlflow
    assert mlflow.active_run() is None, "a run was left active"


# --- pieces -----------------------------------------------------------------------------------

def test_override_checks_values_like_params_yaml():
    train = TrainParams()
    merged = override(train, {"model.units": 32, "learning_rate": 0.01, "maxlen": 50}, "best.json")
    assert (merged.model.units, merged.learning_rate, merged.maxlen) == (32, 0.01, 50)
    assert merged.model.cell == train.model.cell
    with pytest.raises(ParamsError, match="best.json: train.model.dropout: expected a number >= 0 and < 1"):
        override(train, {"model.dropout": 1.5}, "best.json")
    with pytest.raises(ParamsError, match="best.json: seed: not a tunable train key"):
        override(train, {"seed": 1}, "best.json")


def test_subsample_is_stratified_and_seeded():
    from pipeline.tuning.objective import subsample

    y = np.array([0] * 80 + [1] * 20 + [2] * 2)
    split = {"x": np.arange(len(y))[:, None], "y": y, "length": np.ones(len(y), int)}
    part = subsample(split, 0.25, seed=1)
    assert np.bincount(part["y"]).tolist() == [20, 5, 1]   # every class kept, at least one row
    assert np.array_equal(part["x"], subsample(split, 0.25, seed=1)["x"])
    assert not np.array_equal(part["x"], subsample(split, 0.25, seed=2)["x"])
    assert np.array_equal(part["y"], y[part["x"][:, 0]])   # rows stay whole
    assert subsample(split, 1.0, seed=1) is split


def test_study_name_follows_the_space_and_data_not_the_budget():
    base = make_params(**tune_params())
    train = base.train
    name = studies.study_name(base, train, "data1")
    assert name.startswith("textclf-seoul120-")
    more_trials = make_params(**tune_params(n_trials=50, timeout=60, pruner="hyperband", sampler_seed=7))
    assert studies.study_name(more_trials, train, "data1") == name
    other_space = make_params(**tune_params(space={**SPACE, "optimizer": {"type": "categorical",
                                                                         "choices": ["adam", "sgd"]}}))
    assert studies.study_name(other_space, train, "data1") != name
    assert studies.study_name(base, train, "data2") != name
    assert studies.study_name(make_params(**tune_params(study_name="mine")), train, "data1") == "mine"
    # Keys a trial never reads (it is one fit) leave the study as it is; one it reads starts another.
    unread = train.model_copy(update={"ensemble": 5, "refit": not train.refit, "use_tuned": not train.use_tuned})
    assert studies.study_name(base, unread, "data1") == name
    assert studies.study_name(base, train.model_copy(update={"learning_rate": 0.123}), "data1") != name


def test_baseline_is_the_params_yaml_values_the_space_contains():
    params = make_params(**tune_params(space={
        **SPACE, "model.cell": {"type": "categorical", "choices": ["lstm", "gru"]},
        "model.bidirectional": {"type": "categorical", "choices": [1, 2]},   # False is not 0 here
        "batch_size": {"type": "int", "low": 32, "high": 128}}))
    start = studies.baseline(params.tune.space, params.train, prepared_maxlen=12)
    # units 8 and maxlen 0 (= the prepared 12) fit; lr 0.001 is the low end; batch 16 is outside.
    assert start == {"model.units": 8, "learning_rate": 0.001, "maxlen": 12, "model.cell": "gru"}
    assert studies.baseline(params.tune.space, params.train, prepared_maxlen=11).get("maxlen") is None


def test_workers_refuse_sqlite_and_passwords_are_hidden():
    with pytest.raises(StageError, match="SQLite.*journal:tune/optuna.journal.*postgresql://"):
        studies.open_storage("sqlite:///tune/optuna.db", worker=True)
    assert studies.redact("postgresql://me:secret@db.example:5432/optuna") == \
        "postgresql://me:***@db.example:5432/optuna"
    assert studies.sampler_seed(make_params().tune, worker=False) == 42
    assert studies.sampler_seed(make_params().tune, worker=True) != 42


def test_space_above_the_prepared_length_fails_before_any_trial(project, capsys):
    from pipeline.stages.tune import main

    write_project(project, space={**SPACE, "maxlen": {"type": "int", "low": 6, "high": 40}})
    assert main(["--no-track"]) == 2
    assert "tune.space.maxlen: goes up to 40, above the prepared length (prepare.maxlen 12)" in \
        capsys.readouterr().err
    assert not (project / "tune" / "best_params.json").exists()


def test_no_trials_means_train_keeps_its_params(project):
    from pipeline.stages.tune import main
    from pipeline.tuning.best import resolve_tuned

    write_project(project, n_trials=0)
    assert main(["--no-track"]) == 0
    best = json.loads((project / "tune" / "best_params.json").read_text())
    assert best["params"] == {} and best["study"] is None
    params = make_params(**tune_params())
    assert resolve_tuned(params).train == params.train
    assert not (project / "tune" / "optuna.db").exists()


def test_timeout_ends_the_run_after_the_trial_in_progress(project, capsys):
    from pipeline.stages.tune import main

    write_project(project, n_trials=50, timeout=0.01, epochs=1)
    assert main(["--no-track"]) == 0
    trials = optuna.load_study(study_name=json.loads((project / "tune" / "study.json").read_text())["study"],
                               storage="sqlite:///tune/optuna.db").get_trials()
    assert len(trials) == 1 and trials[0].user_attrs["baseline"] is True
    assert "tune.timeout (0.01 s) reached" in capsys.readouterr().err
    assert json.loads((project / "tune" / "best_params.json").read_text())["trial"] == 0


def test_train_merges_the_best_trial_only_when_asked(project):
    from pipeline.tuning.best import resolve_tuned

    params = make_params(**tune_params())
    with pytest.raises(StageError, match="tune/best_params.json: missing; run the tune stage first"):
        resolve_tuned(params)
    (project / "tune").mkdir()
    (project / "tune" / "best_params.json").write_text(json.dumps({"params": {"model.units": 12, "maxlen": 8}}))
    merged = resolve_tuned(params)
    assert (merged.train.model.units, merged.train.maxlen) == (12, 8)
    assert merged.train.model.cell == "gru" and merged.tune == params.tune
    off = make_params(**{**tune_params(), "train": {**tune_params()["train"], "use_tuned": False}})
    assert resolve_tuned(off).train.model.units == 8
    (project / "tune" / "best_params.json").write_text(json.dumps({"params": {"model.units": 0}}))
    with pytest.raises(StageError, match="tune/best_params.json: train.model.units: expected an integer >= 1"):
        resolve_tuned(params)


# --- the stage, in this process, against real SQLite stores ----------------------------------------

def test_study_prunes_records_failures_resumes_and_is_tracked(project):
    """Enqueued trials make the story certain: a good one, a hopeless one (pruned after its first
    epoch), and one whose maxlen the data cannot serve (it raises: FAIL, the study goes on)."""
    import mlflow

    from pipeline.stages.tune import main

    write_project(project, study_name="t")
    (project / "tune").mkdir()
    study = optuna.create_study(study_name="t", storage="sqlite:///tune/optuna.db", direction="maximize")
    for values in (GOOD, BAD, {**GOOD, "maxlen": 20}):
        study.enqueue_trial(values, skip_if_exists=False)
    assert main([]) == 0

    trials = optuna.load_study(study_name="t", storage="sqlite:///tune/optuna.db").get_trials()
    states = [t.state.name for t in trials]
    assert states[:3] == ["COMPLETE", "PRUNED", "FAIL"]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 4 and len(trials) == 5
    assert "train.maxlen: 20 is above the prepared length" in trials[2].user_attrs["fail_reason"]
    assert list(trials[0].intermediate_values) == [0, 1, 2] and list(trials[1].intermediate_values) == [0]
    assert trials[0].value > 0.8   # token 3 or 4 decides the class: the good config learns it

    best = json.loads((project / "tune" / "best_params.json").read_text())
    top = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert best == {"study": "t", "trial": top.number, "metric": "val/accuracy", "value": top.value,
                    "params": top.params}
    summary = json.loads((project / "tune" / "study.json").read_text())
    assert summary["trials"] == {"complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
                                 "fail": 1, "running": 0}
    table = (project / "tune" / "trials.csv").read_text().splitlines()
    assert len(table) == 6 and table[3].split(",")[1] == "FAIL"
    for name in ("history", "importances", "parallel"):
        assert (project / "tune" / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("textclf-seoul120").experiment_id])
    parent = next(r for r in runs if r.info.run_name == "tune")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tune.best_trial"] == str(top.number)
    assert parent.data.tags["tune.best_run_id"] == top.user_attrs["mlflow_run_id"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "tune")} >= {
        "tune/best_params.json", "tune/study.json", "tune/trials.csv", "tune/plots"}
    nested = {r.data.tags["optuna.trial"]: r for r in runs
              if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(nested) == ["0", "1", "2", "3", "4"]
    assert [nested[n].data.tags["optuna.state"] for n in "012"] == ["COMPLETE", "PRUNED", "FAIL"]
    assert [nested[n].info.status for n in "012"] == ["FINISHED", "FINISHED", "FAILED"]
    assert "train.maxlen: 20" in nested["2"].data.tags["pipeline.error"]
    assert nested["0"].data.params["train.learning_rate"] == "0.05"
    assert len(client.get_metric_history(nested["0"].info.run_id, "val/accuracy")) == 3
    assert len(client.get_metric_history(nested["1"].info.run_id, "val/accuracy")) == 1
    assert "trial/seconds" in nested["0"].data.metrics

    # Re-running resumes: the study already has its trials, nothing is trained, outputs are the same.
    before = (project / "tune" / "best_params.json").read_bytes()
    assert main(["--no-track"]) == 0
    assert len(optuna.load_study(study_name="t", storage="sqlite:///tune/optuna.db").trials) == 5
    assert (project / "tune" / "best_params.json").read_bytes() == before
    # A larger budget runs only the missing trials.
    write_project(project, study_name="t", n_trials=5)
    assert main(["--no-track"]) == 0
    assert len(optuna.load_study(study_name="t", storage="sqlite:///tune/optuna.db").trials) == 6


@pytest.mark.parametrize("first", ["worker", "main"])
def test_trial_0_is_the_baseline_whoever_opens_the_study(project, first):
    """The baseline is enqueued by whoever opens the empty study (a --worker too), exactly once."""
    from pipeline.stages.tune import main

    write_project(project, n_trials=1, epochs=1, pruner="none", study_name="t", storage="journal:tune/optuna.journal")
    assert main(["--no-track", *(["--worker"] if first == "worker" else [])]) == 0
    write_project(project, n_trials=2, epochs=1, pruner="none", study_name="t", storage="journal:tune/optuna.journal")
    assert main(["--no-track", *(["--worker"] if first == "main" else [])]) == 0
    trials = optuna.load_study(study_name="t", storage=open_for_reading(project, "journal:tune/optuna.journal")
                               ).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 2
    assert [t.number for t in trials if t.user_attrs.get("baseline")] == [0]
    assert trials[0].params == {"model.units": 8, "learning_rate": 0.001, "maxlen": 12}
    # What tuning gained over params.yaml's values, on validation (the best is never worse).
    summary = json.loads((project / "tune" / "study.json").read_text())
    gain = summary["gain"]
    assert gain["baseline_trial"] == 0 and gain["baseline_value"] == trials[0].value
    assert gain["improvement"] == pytest.approx(summary["best"]["value"] - trials[0].value) and gain["improvement"] >= 0


def test_a_baseline_enqueued_twice_by_a_race_is_run_once(project):
    """Two processes that found the study empty at the same instant both enqueue the baseline."""
    from pipeline.stages.tune import main

    write_project(project, n_trials=2, epochs=1, pruner="none", study_name="t")
    (project / "tune").mkdir()
    study = optuna.create_study(study_name="t", storage="sqlite:///tune/optuna.db", direction="maximize")
    start = {"model.units": 8, "learning_rate": 0.001, "maxlen": 12}
    for _ in range(2):
        study.enqueue_trial(start, user_attrs={studies.BASELINE: True}, skip_if_exists=False)
    assert main(["--no-track"]) == 0
    trials = optuna.load_study(study_name="t", storage="sqlite:///tune/optuna.db").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "not run twice" in trials[1].user_attrs["fail_reason"]
    assert trials[2].params != start


# --- several worker processes on one study -----------------------------------------------------------

def run_tune(root: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.tune", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def two_workers_then_main(root: Path, storage: str, track: bool, monkeypatch, capsys
                          ) -> tuple[optuna.Study, list[str]]:
    """2 `--worker` processes at once on one study, then the stage run that writes the outputs
    (in this process: the `project` fixture made root the cwd)."""
    from pipeline.stages.tune import main

    write_project(root, n_trials=6, epochs=2, study_name="shared")
    monkeypatch.setenv("OPTUNA_STORAGE", storage)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if track:   # the MLflow store exists before the workers start (as after any earlier stage)
        import mlflow
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}").search_experiments()
    flags = [] if track else ["--no-track"]
    workers = [run_tune(root, env, "--worker", *flags) for _ in range(2)]
    errors = []
    for proc in workers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        errors.append(err)
    capsys.readouterr()
    assert main(flags) == 0
    errors.append(capsys.readouterr().err)
    return optuna.load_study(study_name="shared", storage=open_for_reading(root, storage)), errors


def open_for_reading(root: Path, storage: str):
    if storage.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(str(root / storage[len("journal:"):])))
    return storage


def check_shared_study(study: optuna.Study, errors: list[str], root: Path) -> None:
    trials = study.get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    surplus = [t for t in trials if t.state.name == "FAIL"]
    assert len(finished) == 6, [t.state.name for t in trials]
    # A FAIL here can only be a trial started when the last one was already taken elsewhere, or the
    # second copy of the baseline when both workers found the study empty at the same instant.
    assert all("already has its 6 trials" in t.user_attrs.get("fail_reason", "")
               or "not run twice" in t.user_attrs.get("fail_reason", "") for t in surplus)
    # The workers created the study: its trial 0 is still params.yaml's values, run exactly once.
    baselines = [t for t in finished if t.user_attrs.get("baseline")]
    assert trials[0].user_attrs.get("baseline") is True and [t.number for t in baselines] == [0]
    assert trials[0].params == {"model.units": 8, "learning_rate": 0.001, "maxlen": 12}
    assert len({t.number for t in trials}) == len(trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 6, "two trials tried the same values"
    assert len({t.user_attrs["worker"] for t in finished}) == 2, "both workers ran trials"
    assert not any("locked" in e.lower() for e in errors), errors
    assert "6 of 6 trials" in errors[2]   # the stage run found the study complete
    best = json.loads((root / "tune" / "best_params.json").read_text())
    assert best["trial"] == study.best_trial.number


@pytest.mark.integration
def test_two_workers_on_one_journal_file(project, monkeypatch, capsys):
    study, errors = two_workers_then_main(project, "journal:tune/optuna.journal", True, monkeypatch, capsys)
    check_shared_study(study, errors, project)
    import mlflow
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("textclf-seoul120").experiment_id])
    parents = {r.info.run_id: r.data.tags["optuna.role"] for r in runs if r.info.run_name == "tune"}
    assert sorted(parents.values()) == ["main", "worker", "worker"]
    trial_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in parents]
    # A surplus trial (if any) fails before its MLflow run would start: the runs are the 6 trials.
    assert len(trial_runs) == 6 and {r.data.tags["optuna.state"] for r in trial_runs} <= {"COMPLETE", "PRUNED"}
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_folds_cover_train_and_val_once_stratified_and_never_test():
    from helpers.tinydata import tiny_data
    from pipeline.tuning.objective import fold_indices, fold_splits

    data = tiny_data()
    parts = fold_splits(data, 4, seed=1)
    pool = np.concatenate([data.train["x"], data.val["x"]])
    seen = np.concatenate([p.val["x"] for p in parts])
    assert len(seen) == len(pool) and sorted(map(bytes, seen)) == sorted(map(bytes, pool))
    share = np.concatenate([data.train["y"], data.val["y"]]).mean()
    for p in parts:
        assert len(p.train["y"]) + len(p.val["y"]) == len(pool)
        assert abs(p.val["y"].mean() - share) < 0.05, "stratified: each fold has the pool's class shares"
    again = fold_splits(data, 4, seed=1)   # seeded
    assert all(np.array_equal(a.val["x"], b.val["x"]) for a, b in zip(parts, again))
    # the indices behind them (bench/cv_champion.py cuts its folds with these)
    whole = data.with_val_in_train().train
    for p, (fit_rows, held_out) in zip(parts, fold_indices(whole["y"], 4, seed=1)):
        assert np.array_equal(p.val["x"], whole["x"][held_out]) and np.array_equal(p.train["y"], whole["y"][fit_rows])


def test_a_cross_validated_study_scores_each_trial_on_every_fold(project):
    from pipeline.stages.tune import main

    write_project(project, n_trials=1, epochs=1, pruner="none", folds=3, study_name="cv")
    assert main(["--no-track"]) == 0
    trials = optuna.load_study(study_name="cv", storage="sqlite:///tune/optuna.db").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"]
    for t in trials:
        assert len(t.user_attrs["fold_values"]) == 3
        assert t.value == pytest.approx(np.mean(t.user_attrs["fold_values"]), abs=1e-6)
        assert list(t.intermediate_values) == [0, 1, 2]   # the pruner saw the running mean per fold


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_a_trial_whose_worker_is_gone_is_failed_and_others_are_left(tmp_path, storage):
    """fail_dead_trials looks the trial's worker up on this host, on any storage: the journal has no
    heartbeat, and an RDB's would wait out its grace period (90 s) after a kill -9. Another host's
    trial is failed only by the heartbeat, once stale. Gone: an exited process, and a live pid whose
    start time differs (a reused pid). Left alone: a running process, this worker's own trial,
    another host's trial."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    from pipeline.core import process

    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process.started(running.pid)
        workers = {"exited": f"{process.HOST}:{exited.pid}:{start:.2f}",
                   "reused pid": f"{process.HOST}:{running.pid}:{start - 3600:.2f}",
                   "running": f"{process.HOST}:{running.pid}:{start:.2f}",
                   "running, old format": f"{process.HOST}:{running.pid}",
                   "this worker": studies.WORKER,
                   "other host": f"not-{process.HOST}:{exited.pid}:{start:.2f}"}
        study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
                                    if storage == "journal" else RDBStorage(f"sqlite:///{tmp_path / 'o.db'}",
                                                                            heartbeat_interval=60, grace_period=120))
        numbers = {}
        for label, worker in workers.items():
            trial = study.ask()
            trial.set_user_attr("worker", worker)
            numbers[label] = trial.number
        failed = studies.fail_dead_trials(study)
    finally:
        running.kill()
        running.wait()
    assert sorted(failed) == sorted([numbers["exited"], numbers["reused pid"]])
    states = {label: study.trials[n].state.name for label, n in numbers.items()}
    assert states == {"exited": "FAIL", "reused pid": "FAIL", "running": "RUNNING", "running, old format": "RUNNING",
                      "this worker": "RUNNING", "other host": "RUNNING"}


def test_another_hosts_trial_is_failed_by_the_heartbeat_once_stale(tmp_path):
    """A tune worker on another machine killed mid-trial: its process cannot be looked up, and the main
    run waiting for it would wait for ever without Optuna's heartbeat (which this check once skipped)."""
    from optuna.storages import RDBStorage

    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = RDBStorage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="s", storage=storage)
    worker = subprocess.Popen([sys.executable, "-c", (
        "import optuna, time; from optuna.storages import RDBStorage\n"
        f"s = optuna.load_study(study_name='s', storage=RDBStorage({url!r}, heartbeat_interval=1, grace_period=2))\n"
        "def objective(t):\n"
        "    t.set_user_attr('worker', 'elsewhere:1:0'); print('in', flush=True); time.sleep(600)\n"
        "s.optimize(objective, n_trials=1)")], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline() == "in\n"
        time.sleep(1.2)
        assert studies.fail_dead_trials(study) == []   # beating
    finally:
        worker.kill()
        worker.wait()
    time.sleep(3)
    assert studies.fail_dead_trials(study) == [0]
    assert study.trials[0].state.name == "FAIL"
