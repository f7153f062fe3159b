"""A PostgreSQL server of the tests' own on 127.0.0.1, started by the local cluster's code
(pipeline/cluster/services.py: initdb, pg_ctl, the users and databases) without the MLflow server."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from helpers.httpsite import free_port


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of the `optuna` database (its user's password in it); the server is removed on exit.

    Skips the test where PostgreSQL is not installed (.ci/run installs Debian's package).
    """
    from pipeline.cluster import services

    try:
        bindir = services.pg_bindir()
    except services.ClusterError as exc:
        pytest.skip(f"{exc} (.ci/run installs it)")
    # Not under pytest's folders (mode 0700): as root, PostgreSQL runs as the user postgres.
    folder = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    os.chmod(folder, 0o755)
    lay = services.Layout(folder)
    try:
        passwords = services.passwords({})
        services.init_postgres(lay, bindir, passwords["postgres"])
        port = free_port()
        services.start_postgres(lay, bindir, "127.0.0.1", port)
        services.ensure_databases("127.0.0.1", port, passwords)
        yield f"postgresql://optuna:{passwords['optuna']}@127.0.0.1:{port}/optuna"
    finally:
        services.stop_postgres(lay)
        shutil.rmtree(folder, ignore_errors=True)
