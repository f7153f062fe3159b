"""Fault catalogue (issue 27), security: the servers this repo starts listen on 127.0.0.1 only.

The local cluster's (PostgreSQL, the MLflow tracking server) is checked by tests/test_cluster.py,
the table sources of system files by tests/test_catalogue_data.py, secrets in runs, artifacts, logs
and dvc.lock by the cluster's whole-pipeline test and, for a tracking URI with user:password@ on a
plain machine, below. The k8s manifests bind 0.0.0.0 inside their pods, as a pod must.
"""
from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys

import pytest

from helpers import REPO
from helpers.browser import mlflow_ui
from helpers.project import Project
from helpers.serving import model_server


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_every_server_the_makefile_starts_listens_on_127_0_0_1():
    dry = subprocess.run(["make", "-n", "ui", "dashboard", "STAMP=Makefile"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    commands = dry.stdout.replace("\\\n", " ").splitlines()   # a recipe's continued lines as one
    servers = [line for line in commands if re.search(r"/(mlflow ui|optuna-dashboard) ", line)]
    assert len(servers) == 2, dry.stdout   # the MLflow UI and the Optuna dashboard
    for line in servers:
        assert re.findall(r"--host\s+(\S+)", line) == ["127.0.0.1"], line


@pytest.mark.integration
def test_mlflow_models_serve_as_the_readme_runs_it_listens_on_127_0_0_1_only(repro_project: Project, tmp_path):
    """The README's command has no --host: MLflow's default must keep the model off the network."""
    import psutil

    with model_server(repro_project, "models:/textclf-table/latest", tmp_path / "serve.log", host=None) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        listening = {c.laddr.ip for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    assert listening == {"127.0.0.1"}


@pytest.mark.slow
@pytest.mark.integration
def test_a_tracking_password_is_nowhere_the_pipeline_writes(repro_project: Project, tmp_path):
    """$MLFLOW_TRACKING_URI with user:password@ (and $MLFLOW_TRACKING_PASSWORD) on a plain machine,
    not the cluster: after a whole `dvc repro --force` through a real tracking server, and the
    errors once the server is gone, the passwords are in no run's params or tags, no registered
    model version, no file of the project or of the server's store and artifacts, no output."""
    from mlflow import MlflowClient

    in_url, in_env = f"pw-{secrets.token_hex(8)}", f"pw-{secrets.token_hex(8)}"
    server = tmp_path / "server"
    server.mkdir()
    project = repro_project.clone(tmp_path / "project")
    with mlflow_ui(f"sqlite:///{server / 'mlflow.db'}", server / "server.log",
                   artifacts=server / "artifacts") as base:
        uri = base.replace("http://", f"http://analyst:{in_url}@")
        env = {**project.env, "MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": "analyst",
               "MLFLOW_TRACKING_PASSWORD": in_env}
        project = Project(project.root, env)
        done = project.dvc("repro", "--force")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        said = [done.stdout + done.stderr]
        # Each run's link is still printed, without the credentials (the browser asks for them).
        assert len(re.findall(rf"View run \w+ at: {re.escape(base)}/#/experiments/\d+/runs/\w+", said[0])) >= 6
        client = MlflowClient(tracking_uri=base)
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        versions = client.search_model_versions()
    assert {r.data.tags.get("pipeline.stage") for r in runs} >= {"download", "tokenize", "prepare", "tune",
                                                                  "train", "evaluate"}
    assert versions, "train registers its model on the server"
    inputs = tmp_path / "texts.txt"
    inputs.write_text("여권 재발급 신청 절차 문의\n", encoding="utf-8")
    # The server is gone: each command that meets the store says so in one line, without the password.
    for cmd in (["-m", "pipeline.stages.evaluate"],
                ["-m", "pipeline.experiments", "--dir", str(REPO / "experiments"), "results", "--fresh",
                 "-o", str(tmp_path / "RESULTS.md")],
                ["-m", "pipeline.predict", "--model", "models:/textclf-table/latest", str(inputs),
                 "--output", str(tmp_path / "predicted.csv")]):
        failed = project.run(sys.executable, *cmd)
        # in seconds: MLflow alone retries a refused connection for minutes
        assert failed.returncode == 2 and "analyst:***@127.0.0.1" in failed.stderr and "no answer" in failed.stderr, \
            (cmd, failed.stderr[-2000:])
        said.append(failed.stdout + failed.stderr)

    texts = said + [json.dumps([r.data.params, r.data.tags, r.info.artifact_uri]) for r in runs]
    texts += [json.dumps([v.source, v.run_link, v.tags, v.description]) for v in versions]
    files = [p for folder in (project.root, server) for p in folder.rglob("*")
             if p.is_file() and ".git" not in p.relative_to(folder).parts]
    assert len([p for p in files if p.is_relative_to(server / "artifacts")]) > 10   # every stage's, models' included
    texts += [p.read_bytes().decode("utf-8", "replace") for p in files]
    leaks = [text[max(0, text.find(s) - 80):text.find(s) + 40] for s in (in_url, in_env) for text in texts if s in text]
    assert leaks == []
