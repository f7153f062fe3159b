"""`mlflow models serve` of a project's registered model, started for real on 127.0.0.1."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from helpers.httpsite import free_port
from helpers.project import Project


@contextmanager
def model_server(project: Project, model_uri: str, log_path: Path, wait: float = 240) -> Iterator[str]:
    """The server's /invocations URL once /ping answers; stopped (its process group) on exit."""
    port = free_port()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=project.root, env={**project.env, "MLFLOW_TRACKING_URI": project.tracking_uri},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + wait
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as answer:
                        if answer.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, f"the server did not answer /ping within {wait:.0f} s"
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}/invocations"
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
