"""Fixtures shared by the tests. Plain helpers (paths, params, the tiny data and project) are in helpers/.

Session-scoped fixtures are built once per test process: once for a plain `pytest` run, once per
xdist worker that needs them otherwise. The tests using the `dvc repro`'d project or the tiny bundle
are put in an xdist group each (below), so `--dist loadgroup` runs them on one worker and each is
built once.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from helpers import SHARED_DATA
from helpers.project import FOREIGN_ENV, Project, make_project


@pytest.fixture(scope="session", autouse=True)
def clean_environment():
    """No variable of the developer's shell sends the tests' stages to another store or mirror."""
    saved = {key: os.environ.pop(key) for key in FOREIGN_ENV if key in os.environ}
    yield
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def mlflow_state_is_reset():
    """MLflow keeps a tracking URI in the process (mlflow.set_tracking_uri, which the stages call):
    each test starts without one, so a test that names no store never lands in another test's."""
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        while mlflow.active_run() is not None:   # a test that failed half-way inside a run
            mlflow.end_run("KILLED")
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for key in FOREIGN_ENV:   # set_tracking_uri exports the URI for child processes
            os.environ.pop(key, None)


@pytest.fixture
def site():
    """A real HTTP server on 127.0.0.1 serving `site.files`."""
    from helpers import httpsite

    yield from httpsite.serve()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared datasets at {SHARED_DATA} (absent here; CI has them)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables and nothing else (creating them takes MLflow seconds)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_store(empty_mlflow_db, tmp_path) -> str:
    """An isolated, empty MLflow store where a stage run in tmp_path looks for one (mlruns/mlflow.db),
    as after any earlier stage; its URI. The tests of how the store comes to be don't use it."""
    store = tmp_path / "mlruns"
    store.mkdir(exist_ok=True)
    shutil.copyfile(empty_mlflow_db, store / "mlflow.db")
    return f"sqlite:///{store / 'mlflow.db'}"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run a stage function with tmp_path as the repo root (data/, .cache/ land there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / ".cache"))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A model bundle as the train stage writes it (maxlen 12, post padding), trained for real on the
    tiny separable task (w3 -> class "1", w4 -> "0") with the whitespace analyzer."""
    import tensorflow as tf

    from helpers import make_params
    from helpers.tinydata import TINY_MODEL, TINY_PREPROCESS, tiny_data
    from pipeline.model.training import fit

    folder = tmp_path_factory.mktemp("bundle")
    data = tiny_data()
    params = make_params(train={"epochs": 8, "batch_size": 16, "learning_rate": 0.01, "model": TINY_MODEL})
    result = fit(data, params.train, tf.distribute.get_strategy(), progress=False)
    result.model.save(folder / "model.keras")
    (folder / "vocab.json").write_text(json.dumps({f"w{i}": i for i in range(data.vocab_size)}))
    (folder / "labels.json").write_text(json.dumps(data.labels))
    (folder / "params.json").write_text(json.dumps({"train": {"maxlen": 0}, "prepared": {
        "prepare": {"maxlen": data.maxlen, "padding": "post", "truncating": "pre"}}}))
    (folder / "preprocess.json").write_text(json.dumps(TINY_PREPROCESS))
    return folder


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> Path:
    """data/prepared as the prepare stage writes it, for the tiny task (read it, or copy it to change it)."""
    from helpers.tinydata import write_prepared

    folder = tmp_path_factory.mktemp("prepared") / "prepared"
    write_prepared(folder)
    return folder


@pytest.fixture(scope="session")
def repro_project(tmp_path_factory) -> Project:
    """The tiny table project after one real `dvc repro`: download, tokenize (Okt), prepare, tune
    (2 trials), train (registered as textclf-table version 1), evaluate, each stage its own process
    as DVC runs it, tracked in the project's own MLflow store. Read it; change a `clone()`."""
    project = make_project(tmp_path_factory.mktemp("repro") / "project")
    done = project.dvc("repro")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    return project


# Under `--dist loadgroup` (make test) the tests of one expensive session fixture share a worker,
# which builds it once.
XDIST_GROUPS = {"repro_project": "repro", "tiny_bundle": "bundle"}
# Where the longest tests of the unit tier are (Optuna studies, training, JVM analyzers), longest
# first: scheduled before the other single tests. A hint for xdist only; a stale entry costs some
# seconds, nothing else.
LONG_MODULES = ("test_tune", "test_train", "test_analyzers", "test_tokenize")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    for item in items:   # before the other implementations: xdist's reads the groups
        for fixture, group in XDIST_GROUPS.items():
            if fixture in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group(group))
                break
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # The long tests first, so no worker starts one when the other has nothing left to do:
        # xdist hands out the groups (largest first), then single tests in this order.
        def rank(item) -> int:
            if item.get_closest_marker("integration"):
                return 0
            name = getattr(getattr(item, "module", None), "__name__", "")
            return 1 + (LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES))

        items.sort(key=rank)
    yield
    # pytest-xdist 3.8 tells the scheduler an item's group by appending "@group" to item._nodeid,
    # which pytest 9.2 no longer reads (its node ids are structured): the groups are silently lost
    # (pytest-dev/pytest-xdist#1386). Until xdist does it itself, give pytest the id xdist meant.
    for item in items:
        suffixed = getattr(item, "_nodeid", None)
        if isinstance(suffixed, str) and suffixed != item.nodeid and hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(suffixed)
