"""Fault catalogue (issue 27), security: the servers this repo starts listen on 127.0.0.1 only.

The local cluster's (PostgreSQL, the MLflow tracking server) is checked by tests/test_cluster.py,
the table sources of system files by tests/test_catalogue_data.py, secrets in runs, artifacts, logs
and dvc.lock by the cluster's whole-pipeline test. The k8s manifests bind 0.0.0.0 inside their pods,
as a pod must.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from helpers import REPO
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
