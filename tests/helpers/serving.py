"""`mlflow models serve` of a project's registered model, started for real on 127.0.0.1."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from helpers.httpsite import free_port, server_process
from helpers.project import Project


@contextmanager
def model_server(project: Project, model_uri: str, log_path: Path, wait: float = 240,
                 host: str | None = "127.0.0.1") -> Iterator[str]:
    """The server's /invocations URL once /ping answers; stopped (its process group) on exit.
    host None: no --host, MLflow's default."""
    port = free_port()
    with server_process([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager",
                         "local", *(["--host", host] if host else []), "--port", str(port), "--workers", "1"],
                        port, "/ping", log_path, wait, cwd=project.root,
                        # Served as docs/serving.md says: a model that is a pickle is refused.
                        env={**project.env, "MLFLOW_TRACKING_URI": project.tracking_uri,
                             "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}) as base:
        yield base + "/invocations"
