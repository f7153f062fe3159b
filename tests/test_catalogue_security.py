"""Fault catalogue (issue 27), security: the servers this repo starts listen on 127.0.0.1 only.

The local cluster's (PostgreSQL, the MLflow tracking server) is checked by tests/test_cluster.py,
the table sources of system files by tests/test_catalogue_data.py, secrets in runs, artifacts, logs
and dvc.lock by the cluster's whole-pipeline test. `mlflow models serve` (README) binds 127.0.0.1 by
MLflow's own default; the k8s manifests bind 0.0.0.0 inside their pods, as a pod must.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from helpers import REPO


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
