"""Cluster mode for real, no mocks: `deploy/cluster/up.sh` starts PostgreSQL and a basic-auth MLflow
server on 127.0.0.1; the tiny project runs `deploy/cluster/repro.sh` (dvc repro) with 2 tune workers and
2 MultiWorkerMirroredStrategy training workers against them; its outputs go to the DVC remote and come
back into a fresh clone; a tune worker is killed mid-trial; `down.sh` leaves no process behind.

The tests share one cluster (a module fixture) and run in file order, on one xdist worker.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from helpers.project import GIT, Project, make_project, stage_env
from helpers.tinydata import TINY_MODEL

pytestmark = pytest.mark.xdist_group("cluster")

TRIALS = 4
STAGES = ("download", "tokenize", "prepare", "tune", "train", "evaluate")


@dataclass
class Cluster:
    project: Project
    dir: Path

    @property
    def settings(self) -> dict[str, str]:
        from pipeline.cluster.services import read_env

        return read_env(self.dir / "cluster.env")

    @property
    def env(self) -> dict[str, str]:
        """The project's environment with cluster.env sourced, as repro.sh runs the stages."""
        return {**self.project.env, **self.settings}

    def secrets(self) -> list[str]:
        """Every password the cluster made (databases, MLflow admin and user, the Flask key)."""
        return list(json.loads((self.dir / "state.json").read_text())["passwords"].values())

    def script(self, name: str, timeout: int = 300, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.project.root / "deploy" / "cluster" / f"{name}.sh")], cwd=self.project.root,
                              env={**self.project.env, **extra}, capture_output=True, text=True, timeout=timeout)

    def processes(self) -> list[int]:
        """The pids of the cluster: the postmaster and its children, the MLflow server's process group."""
        import psutil

        from pipeline.cluster import services

        lay = services.Layout(self.dir)
        pids = []
        pg = services.postgres_pid(lay)
        if pg:
            try:
                pids += [pg, *(c.pid for c in psutil.Process(pg).children(recursive=True))]
            except psutil.NoSuchProcess:   # it stopped meanwhile
                pass
        ml = services.mlflow_running(services.load_state(lay))
        if ml:
            pids += services.group_members(ml)
        return pids


def surplus_or_duplicate(trial) -> bool:
    """A FAIL two workers may leave without anything wrong (see check_shared_study in test_tune.py):
    the last trial started in two places, or the baseline enqueued by both at the same instant."""
    reason = trial.user_attrs.get("fail_reason", "")
    return trial.state.name == "FAIL" and ("already has its" in reason or "not run twice" in reason)


def cluster_params(root: Path) -> None:
    """The tiny project, with a study of TRIALS trials, the whitespace analyzer (no JVM to start), and
    the champion chosen out-of-fold: every train worker fits the fold RNNs under the strategy."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["tokenize"].update(analyzer="whitespace", pos_drop=[])
    params["tune"].update(n_trials=TRIALS, epochs=1, pruner="none")
    params["champion"]["folds"] = 2
    path.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


def open_folder() -> Path:
    """A folder outside pytest's (mode 0700): as root, PostgreSQL runs as the user postgres, who must
    reach its data. The caller removes it."""
    folder = Path(tempfile.mkdtemp(prefix="pipeline-cluster-"))
    os.chmod(folder, 0o755)
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from pipeline.cluster.services import ClusterError, pg_bindir

    try:
        pg_bindir()
    except ClusterError as exc:
        pytest.skip(str(exc))
    project = make_project(tmp_path_factory.mktemp("cluster") / "project")
    shutil.copytree(REPO / "deploy" / "cluster", project.root / "deploy" / "cluster")
    cluster_params(project.root)
    project.commit("cluster mode")
    folder = project.root / ".cache" / "cluster"
    if os.geteuid() == 0:
        folder = open_folder()
        project.env["CLUSTER_DIR"] = str(folder)
    found = Cluster(project, folder)
    started = time.monotonic()
    up = found.script("up")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"cluster up in {time.monotonic() - started:.0f} s")
    try:
        yield found
    finally:
        pids = found.processes()
        try:
            found.script("down", CLUSTER_PURGE="1")
        finally:   # even when down fails or times out: nothing of the cluster outlives the tests
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.integration
def test_up_twice_is_one_cluster_on_127_0_0_1_with_private_settings(cluster):
    import psutil
    import requests

    before, pids = cluster.settings, set(cluster.processes())
    again = cluster.script("up")
    assert again.returncode == 0, again.stderr
    assert "PostgreSQL already up" in again.stderr and "MLflow server already up" in again.stderr
    assert cluster.settings == before and set(cluster.processes()) == pids

    settings = cluster.settings
    assert set(settings) == {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                             "OPTUNA_STORAGE", "CLUSTER_DIR", "CLUSTER_POSTGRES_PID", "CLUSTER_MLFLOW_PID"}
    assert settings["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
    assert settings["OPTUNA_STORAGE"].startswith("postgresql+psycopg://optuna:")
    for name in ("cluster.env", "state.json", "basic_auth.ini", "pgpass"):
        assert stat.S_IMODE((cluster.dir / name).stat().st_mode) == 0o600, name
    ignored = cluster.project.run(*GIT, "check-ignore", "-q", ".cache/cluster/cluster.env")
    assert ignored.returncode == 0, "cluster.env must be git-ignored"
    # No password on any command line (`ps` shows those to every user of the machine).
    for pid in pids:
        assert not any(s in " ".join(psutil.Process(pid).cmdline()) for s in cluster.secrets())
    listening = {c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in pids}
    assert listening == {"127.0.0.1"}

    api = f"{settings['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(api, timeout=30).status_code == 401
    assert requests.get(api, auth=("pipeline", "wrong"), timeout=30).status_code == 401
    me = (settings["MLFLOW_TRACKING_USERNAME"], settings["MLFLOW_TRACKING_PASSWORD"])
    assert requests.get(api, auth=me, timeout=30).status_code == 200


@pytest.mark.integration
def test_up_says_in_one_line_what_stops_it(cluster, tmp_path):
    other = open_folder()
    try:
        taken = cluster.settings["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1]
        busy = cluster.script("up", CLUSTER_DIR=str(other), CLUSTER_PG_PORT=taken)
        assert busy.returncode == 2
        assert busy.stderr.strip().splitlines() == [
            f"cluster: error: port {taken} on 127.0.0.1 is taken ($CLUSTER_PG_PORT): stop what uses it, or "
            "choose another port (CLUSTER_PG_PORT=...)"]
        missing = cluster.script("up", CLUSTER_DIR=str(other), CLUSTER_PG_BINDIR=str(tmp_path / "nothing"))
        assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
        assert "cluster: error: PostgreSQL is not installed" in missing.stderr
        assert not (other / "postgres").exists()
    finally:
        shutil.rmtree(other, ignore_errors=True)


# ~90 s (the whole pipeline under the cluster's services): the slow tier; the cluster's start, stop,
# worker faults and settings are checked in `make test` by the tests around it.
@pytest.mark.slow
@pytest.mark.integration
def test_the_pipeline_on_the_cluster_with_tune_and_train_workers(cluster, monkeypatch, tmp_path):
    import mlflow
    import optuna
    import pandas as pd

    started = time.monotonic()
    done = cluster.script("repro", timeout=1200, TUNE_WORKERS="2", TRAIN_WORKERS="2")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    print(f"dvc repro on the cluster in {time.monotonic() - started:.0f} s")
    assert "tune: started 1 worker(s)" in log and "train: started 1 worker(s)" in log

    settings = cluster.settings
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", settings["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", settings["MLFLOW_TRACKING_PASSWORD"])
    mlflow.set_tracking_uri(settings["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("textclf-table")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)

    # Every stage run and every trial is on the server, ended, trials nested under their process's run.
    assert {r.info.status for r in runs} == {"FINISHED"}
    top = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    print("stage runs:", ", ".join(f"{r.info.run_name} {(r.info.end_time - r.info.start_time) / 1000:.0f} s"
                                   for r in sorted(top, key=lambda r: r.info.start_time)))
    assert sorted(r.info.run_name for r in top) == sorted([*STAGES, "tune"])   # the stage and its worker
    tune_runs = {r.info.run_id: r for r in top if r.info.run_name == "tune"}
    assert sorted(r.data.tags["optuna.role"] for r in tune_runs.values()) == ["main", "worker"]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == TRIALS
    for trial in trials:
        parent = tune_runs[trial.data.tags["mlflow.parentRunId"]]
        assert trial.data.tags["optuna.worker"] == parent.data.tags["optuna.worker"]
    assert len({t.data.tags["mlflow.parentRunId"] for t in trials}) == 2, "both tune workers ran trials"
    summary = cluster.project.read_json("tune/study.json")
    study = optuna.load_study(study_name=summary["study"], storage=settings["OPTUNA_STORAGE"])
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(finished) == TRIALS and len({t.user_attrs["worker"] for t in finished}) == 2
    assert all(surplus_or_duplicate(t) for t in study.trials if t.state.name != "COMPLETE")
    # Both processes found the study empty at once: still one baseline trial (params.yaml's values).
    assert [t.number for t in finished if t.user_attrs.get("baseline")] == [0]
    assert summary["storage"].startswith("postgresql+psycopg://optuna:***@127.0.0.1:")

    # Training ran as 2 MultiWorkerMirroredStrategy processes; only the chief made a run.
    (train,) = [r for r in top if r.info.run_name == "train"]
    assert train.data.params["train.replicas"] == "2"
    assert train.data.params["train.strategy"] == "CollectiveAllReduceStrategy"   # MultiWorkerMirroredStrategy's class
    # Both workers trained the champion's fold RNNs (a worker that skipped them would hang the other's
    # collectives), and the chief chose on their out-of-fold figures.
    choice = cluster.project.read_json("models/champion.json")
    assert (choice["selected_on"], choice["kind"]) == ("2-fold out-of-fold", "blend")

    # Artifacts go through the server's proxy into the cluster's folder, and come back the same way.
    (evaluate,) = [r for r in top if r.info.run_name == "evaluate"]
    assert train.info.artifact_uri.startswith("mlflow-artifacts:/")
    for run, path in ((train, "train/learning_curve.png"), (evaluate, "evaluate/confusion.png")):
        local = Path(client.download_artifacts(run.info.run_id, path, str(tmp_path)))
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert list((cluster.dir / "artifacts").rglob(Path(path).name)), path
    # The registered model loads through the server and labels raw text.
    model = mlflow.pyfunc.load_model("models:/textclf-table/latest")
    labels = model.predict(pd.DataFrame({"text": ["여권 재발급 신청 절차 문의", "기초 연금 신청 대상 질문입니다"]}))
    assert set(labels["predicted"]) <= {"행정", "경제", "복지"} and len(labels) == 2
    assert cluster.project.read_json("models/run.json")["model_version"] == "2"   # after the challenger

    # No password in any run's params or tags, artifacts, the stages' output, the servers' logs or the outputs.
    secrets = cluster.secrets()
    for run in runs:
        for value in (*run.data.params.values(), *run.data.tags.values()):
            assert not any(s in value for s in secrets), (run.info.run_name, value)
    texts = [log, *(p.read_text(errors="replace") for p in cluster.dir.glob("*.log"))]
    texts += [(cluster.project.root / rel).read_text() for rel in
              ("dvc.lock", "tune/study.json", "tune/best_params.json", "models/run.json", "tune/trials.csv")]
    texts += [json.dumps([t.user_attrs, t.system_attrs]) for t in study.trials]
    artifacts = [p for p in (cluster.dir / "artifacts").rglob("*") if p.is_file()]
    assert len(artifacts) > 10   # every stage's, the models' included
    texts += [p.read_bytes().decode("utf-8", "replace") for p in artifacts]
    assert not any(s in text for s in secrets for text in texts)

    # The DVC remote: push here, pull into a fresh clone, nothing left to run there.
    cluster.project.commit("dvc repro on the cluster")
    pushed = cluster.project.dvc("push")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    clone = cluster.project.root.parent / "clone"
    subprocess.run(["git", "clone", "-q", str(cluster.project.root), str(clone)], check=True)
    second = Project(clone, stage_env(clone, clone.parent / "clone-dvc-site"))
    pulled = second.dvc("pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    status = second.dvc("status", "--json")
    # download is `always_changed` (it re-verifies its files); every other stage is up to date.
    assert json.loads(status.stdout) == {"download": ["always changed"]}, status.stdout + status.stderr
    model_file = Path("models") / "model.keras"
    assert (clone / model_file).read_bytes() == (cluster.project.root / model_file).read_bytes()
    assert (clone / "data" / "prepared" / "train.npz").is_file()


@pytest.mark.integration
def test_a_tune_worker_killed_mid_trial_leaves_a_failed_trial_and_a_full_study(cluster, tiny_prepared, tmp_path):
    """SIGKILL: the worker cannot end its trial; the heartbeat (shortened here) fails it, and the stage
    runs one more trial so the study still has all its trials."""
    import optuna
    import psutil

    from pipeline.core import process
    from pipeline.tuning import study as studies

    shutil.copytree(tiny_prepared, tmp_path / "data" / "prepared")
    name = f"killed-{os.getpid()}-{time.time_ns()}"
    space = {"model.units": {"type": "int", "low": 4, "high": 16, "log": True},
             "learning_rate": {"type": "float", "low": 0.001, "high": 0.05, "log": True}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "dataset": {"name": "seoul120"},
        "train": {"model": TINY_MODEL, "epochs": 5, "batch_size": 16, "early_stopping_patience": 0, "seed": 3},
        "tune": {"n_trials": TRIALS, "epochs": 5, "startup_trials": 1, "pruner": "none", "study_name": name,
                 "space": space}}))
    env = {**cluster.env, "PIPELINE_CACHE_DIR": str(tmp_path / ".cache"), "TUNE_WORKERS": "2",
           "PIPELINE_TUNE_HEARTBEAT_SECONDS": "1", "PIPELINE_TUNE_GRACE_SECONDS": "6"}
    storage = studies.open_storage(env["OPTUNA_STORAGE"])   # the tables may be new: open_storage waits out the race
    with (tmp_path / "tune.log").open("w") as log:
        stage = subprocess.Popen([sys.executable, "-m", "pipeline.tune", "--no-track"], cwd=tmp_path, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        worker = killed = None
        while killed is None:
            assert stage.poll() is None and time.monotonic() < deadline, (tmp_path / "tune.log").read_text()
            if worker is None:
                worker = next((p for p in psutil.Process(stage.pid).children()
                               if "--worker" in p.cmdline()), None)
            else:
                try:
                    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
                except KeyError:   # not created yet
                    trials = []
                mine = [t for t in trials if t.state.name == "RUNNING"
                        and t.user_attrs.get("worker", "").startswith(f"{process.HOST}:{worker.pid}:")]
                if mine:
                    worker.send_signal(signal.SIGKILL)
                    killed = mine[0].number
            time.sleep(0.2)
        assert stage.wait(timeout=600) == 0, (tmp_path / "tune.log").read_text()
    finally:
        if stage.poll() is None:
            stage.kill()
    output = (tmp_path / "tune.log").read_text()
    assert f"worker 1 (pid {worker.pid}) ended with signal 9" in output
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert trials[killed].state.name == "FAIL" and "fail_reason" not in trials[killed].user_attrs
    assert sum(t.state.name == "COMPLETE" for t in trials) == TRIALS
    others = [t for t in trials if t.state.name != "COMPLETE" and t.number != killed]
    assert all(surplus_or_duplicate(t) for t in others), [(t.state.name, t.user_attrs) for t in others]
    assert json.loads((tmp_path / "tune" / "study.json").read_text())["trials"]["running"] == 0


@pytest.mark.integration
def test_down_leaves_no_process_and_keeps_the_data(cluster):
    from pipeline.core import process

    # Something in the artifact store whichever tests ran before: one file logged through the proxy.
    # (in an experiment of its own: the pipeline's user may not write to MLflow's Default one)
    logged = subprocess.run([sys.executable, "-c", "import mlflow\nmlflow.set_experiment('kept')\n"
                             "with mlflow.start_run():\n    mlflow.log_text('kept', 'kept.txt')"],
                            env=cluster.env, capture_output=True, text=True, timeout=120)
    assert logged.returncode == 0, logged.stderr[-2000:]
    pids = cluster.processes()
    assert len(pids) >= 3   # the postmaster, its workers, the MLflow server and uvicorn
    down = cluster.script("down")
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if process.alive(pid)] == []
    assert not (cluster.dir / "cluster.env").exists()
    assert (cluster.dir / "postgres" / "PG_VERSION").is_file() and any((cluster.dir / "artifacts").iterdir())
    again = cluster.script("down")
    assert again.returncode == 0 and cluster.processes() == []
    repro = cluster.script("repro")
    assert repro.returncode == 1 and "the local cluster is not up (make cluster-up)" in repro.stderr


# --- the pieces, without servers -----------------------------------------------------------------

def sleeper(seconds: float = 60, code: int = 0) -> tuple[list[str], dict[str, str]]:
    from pipeline.core import workers

    return ([sys.executable, "-c", f"import sys, time; time.sleep({seconds}); sys.exit({code})"],
            workers.worker_env())


def test_workers_are_stopped_when_the_stage_fails():
    from pipeline.core import workers

    with pytest.raises(RuntimeError, match="trial budget"):
        with workers.spawned([sleeper(), sleeper()], "t", fatal=False) as procs:
            raise RuntimeError("trial budget")
    assert [p.poll() for p in procs] == [-signal.SIGTERM] * 2


def test_a_failed_worker_stops_the_chief_but_not_the_tune_stage(capsys):
    from pipeline.core import workers
    from pipeline.core.process import sigterm_as_interrupt

    with workers.spawned([sleeper(0.1, code=3)], "tune", fatal=False):
        time.sleep(1.5)   # goes on
    assert "tune: worker 1 (pid" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        with workers.spawned([sleeper(0.1, code=3)], "train", fatal=True):
            time.sleep(30)
    assert "ended with exit code 3; stopping" in capsys.readouterr().err


def test_a_worker_dies_with_the_stage_that_started_it(tmp_path):
    """kill -9 of the stage: the kernel sends its workers SIGTERM (bind_to_parent's PR_SET_PDEATHSIG)."""
    from pipeline.core import process

    stage = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from pipeline.core import workers\n"
        "child = subprocess.Popen([sys.executable, '-c', 'from pipeline.core import workers; "
        "workers.bind_to_parent(); import time; time.sleep(60)'], env=workers.worker_env())\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True, cwd=REPO)
    worker = int(stage.stdout.readline())
    time.sleep(2)   # the worker has called bind_to_parent
    assert process.alive(worker)
    stage.kill()
    stage.wait()
    deadline = time.monotonic() + 10
    while process.alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process.alive(worker)


def test_worker_counts_and_url_passwords():
    from pipeline.core import workers
    from pipeline.core.errors import StageError, mask_credentials

    assert workers.count("TUNE_WORKERS") == 1
    os.environ["TUNE_WORKERS"] = "many"
    try:
        with pytest.raises(StageError, match=r"\$TUNE_WORKERS: 'many' is not a number of processes"):
            workers.count("TUNE_WORKERS")
        assert "TUNE_WORKERS" not in workers.worker_env()
    finally:
        del os.environ["TUNE_WORKERS"]
    assert mask_credentials("storage postgresql+psycopg://optuna:s3cr-t_@127.0.0.1:5432/optuna, http://h:5000/x") == \
        "storage postgresql+psycopg://optuna:***@127.0.0.1:5432/optuna, http://h:5000/x"
    # A "/" in the password, a URL without "://", a scheme that is not a user: each masked once, as it should be.
    assert mask_credentials("http://analyst:p/w@h:5000 or analyst:pw@h/db; sqlite:///x.db") == \
        "http://analyst:***@h:5000 or analyst:***@h/db; sqlite:///x.db"
