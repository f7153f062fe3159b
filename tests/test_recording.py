"""The rank-aware logger (pipeline/core/log.py) prints on the chief only, and the stages' MLflow adapters
(pipeline/core/recording.py) record nothing without an active run (`--no-track`) or off the chief."""
from __future__ import annotations

import inspect

import pytest

from pipeline.core import log, recording

ADAPTERS = sorted((name, f) for name, f in vars(recording).items()
                  if name.startswith(("record_", "claim_")) and callable(f))


def test_only_the_chief_prints(capsys):
    assert log.is_chief()   # a process outside a strategy's workers is its own chief
    with log.ranked(False):
        assert not log.is_chief()
        log.info("train: a result line")
        log.note("train: a note")
    assert capsys.readouterr() == ("", "")
    log.info("train: a result line")
    log.note("train: a note")
    assert capsys.readouterr() == ("train: a result line\n", "train: a note\n")


def test_the_rank_comes_back_after_the_block_even_when_it_raises():
    with pytest.raises(RuntimeError), log.ranked(False):
        raise RuntimeError("a worker's failure")
    assert log.is_chief()
    with log.ranked(True):
        assert log.is_chief()


def test_every_adapter_is_a_no_op_without_an_active_run():
    """Given anything at all (None would fail in each of them): nothing runs, nothing is returned."""
    assert len(ADAPTERS) >= 12
    assert not recording.recording() and recording.current_run_id() is None
    for name, adapter in ADAPTERS:
        assert adapter(*[None] * len(inspect.signature(adapter).parameters)) is None, name


def test_adapters_record_on_the_chief_only(mlflow_store, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(mlflow_store)
    # An experiment of this store: MLflow keeps the active experiment id of an earlier test's store.
    mlflow.set_experiment("recording")
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "mlflow_run_id").write_text("an-interrupted-run", encoding="utf-8")
    with mlflow.start_run() as run:
        with log.ranked(False):   # a worker that is not the chief, in a run of its own
            assert not recording.recording() and recording.current_run_id() is None
            recording.record_epoch(0, {"val/loss": 9.0, "epoch": 1})
            assert recording.claim_backup(backup) is None
            for name, adapter in ADAPTERS:
                assert adapter(*[None] * len(inspect.signature(adapter).parameters)) is None, name
        assert (backup / "mlflow_run_id").read_text(encoding="utf-8") == "an-interrupted-run"
        assert recording.recording() and recording.current_run_id() == run.info.run_id
        recording.record_epoch(0, {"val/loss": 0.5, "epoch": 1})
        assert recording.claim_backup(backup) == "an-interrupted-run"
    assert (backup / "mlflow_run_id").read_text(encoding="utf-8") == run.info.run_id
    logged = mlflow.MlflowClient().get_run(run.info.run_id).data
    assert logged.metrics == {"val/loss": 0.5} and logged.tags.keys() <= {"mlflow.runName", "mlflow.user",
                                                                         "mlflow.source.name", "mlflow.source.type"}
