"""`dvc repro` for real, in a temporary git + DVC copy of the repo, on a small table dataset.

The first `dvc repro` is the session's `repro_project` (conftest.py), shared with test_serving.py;
what changes the project runs on a clone of it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from helpers.project import Project

pytestmark = pytest.mark.integration


def test_dvc_repro_end_to_end(repro_project: Project):
    root = repro_project.root
    prepared = root / "data" / "prepared"
    train = np.load(prepared / "train.npz")
    assert train["x"].shape[1] == 12 and train["x"].dtype == np.int32
    sizes = {s: len(np.load(prepared / f"{s}.npz")["y"]) for s in ("train", "val", "test")}
    assert sizes == {"train": 36, "val": 12, "test": 12}
    assert (root / "dvc.lock").is_file()
    assert (root / "data" / "raw" / "manifest.json").is_file()
    for name in ("model.keras", "vocab.json", "labels.json", "params.json", "preprocess.json", "history.json",
                 "learning_curve.png", "run.json", "linear.skops", "linear.json", "champion.json", "champion.png"):
        assert (root / "models" / name).is_file(), name
    metrics = repro_project.read_json("metrics.json")
    assert metrics["test/rows"] == 12 and 0 <= metrics["test/accuracy"] <= 1
    assert set(metrics["test/per_class"]) == {"행정", "경제", "복지"}
    assert (root / "plots" / "evaluate" / "confusion.csv").read_text(encoding="utf-8").count("\n") == 13
    # Every candidate on the same 12 test rows, the served one (the blend: the project names it) by
    # its figures on the 12 validation rows; the served model's mistakes with their raw text.
    choice = repro_project.read_json("models/champion.json")
    assert (choice["kind"], choice["selected_on"], choice["rows"]) == ("blend", "validation", 12)
    assert metrics["champion"] == "blend" and list(metrics["candidates"]) == ["rnn", "linear", "blend"]
    for kind in ("linear", "blend"):
        assert metrics[f"{kind}/test/rows"] == 12 and 0 <= metrics[f"{kind}/test/accuracy"] <= 1
        assert 0 <= metrics[f"{kind}/test/macro_f1"] <= 1 and metrics[f"{kind}/test/loss"] > 0
        assert metrics["candidates"][kind]["val/accuracy"] == choice["candidates"][kind]["val/accuracy"]
    assert metrics["champion/test/accuracy"] == metrics["blend/test/accuracy"]
    import pandas as pd

    mistakes = pd.read_csv(root / "plots" / "evaluate" / "mistakes.csv", dtype={"id": str})
    assert list(mistakes.columns) == ["id", "text", "actual", "predicted", "probability"]
    assert len(mistakes) == round((1 - metrics["champion/test/accuracy"]) * 12)   # every wrong one (fewer than 50)
    assert (mistakes["actual"] != mistakes["predicted"]).all() and mistakes["probability"].is_monotonic_decreasing
    assert all("관련 질문입니다" in text for text in mistakes["text"])   # the raw 제목 + 내용 (Okt: 질문, 이다)
    assert (root / "plots" / "evaluate" / "per_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = repro_project.runs()
    assert {r.info.run_name: r.info.status for r in runs} == {
        stage: "FINISHED" for stage in ("download", "tokenize", "prepare", "tune", "trial 0", "trial 1",
                                        "train", "evaluate")}
    # The study's first trial is params.yaml's own values; train used the best trial's, and says so.
    first = next(r for r in runs if r.info.run_name == "trial 0")
    assert (first.data.params["train.model.units"], first.data.params["train.maxlen"]) == ("8", "12")
    best = repro_project.read_json("tune/best_params.json")
    train_run = next(r for r in runs if r.info.run_name == "train")
    assert train_run.data.params["train.model.units"] == str(best["params"]["model.units"])
    assert train_run.data.params["train.maxlen"] == str(best["params"]["maxlen"])
    assert train_run.data.tags["tune.study"] == best["study"]
    assert train_run.data.tags["train.fused_kernel"] == "true"   # GRU, post padding with a mask
    assert repro_project.read_json("models/params.json")["train"]["maxlen"] == best["params"]["maxlen"]
    assert "val/accuracy" in train_run.data.metrics and "test/accuracy" in train_run.data.metrics
    assert train_run.data.metrics["linear/test/accuracy"] == metrics["linear/test/accuracy"]
    assert train_run.data.metrics["blend/val/accuracy"] == choice["candidates"]["blend"]["val/accuracy"]
    assert train_run.data.tags["champion"] == "blend"
    evaluate_run = next(r for r in runs if r.info.run_name == "evaluate")
    assert {"linear/test/accuracy", "blend/test/accuracy", "champion/test/accuracy"} <= set(evaluate_run.data.metrics)
    assert evaluate_run.data.params["dataset.table.id_column"] == ""
    artifacts = {a.path for a in repro_project.client().list_artifacts(evaluate_run.info.run_id, "evaluate")}
    assert {"evaluate/mistakes.csv", "evaluate/per_class.png"} <= artifacts
    run_info = repro_project.read_json("models/run.json")
    assert run_info["run_id"] == train_run.info.run_id and run_info["tuned_from"]["trial"] == best["trial"]
    import mlflow
    from mlflow.models import get_model_info

    versions = repro_project.client().search_model_versions("name='textclf-table'")
    assert sorted(int(v.version) for v in versions) == [1, 2]   # the challenger, then the champion
    version = max(versions, key=lambda v: int(v.version))
    assert {v.run_id for v in versions} == {train_run.info.run_id}
    mlflow.set_tracking_uri(repro_project.tracking_uri)   # conftest resets it after the test
    signature = get_model_info(f"models:/textclf-table/{version.version}").signature
    # No input schema (serve/pyfunc.py checks the input itself); the outputs: label, 3 classes, flag.
    assert signature.inputs is None and len(signature.outputs.to_dict()) == 5


def test_repro_skips_what_did_not_change_and_a_failure_keeps_the_outputs(repro_project: Project, tmp_path):
    project = repro_project.clone(tmp_path / "project")
    root = project.root

    # Nothing changed: download runs (always_changed) and finds the same bytes; the rest is skipped.
    second = project.dvc("repro")
    assert second.returncode == 0, second.stderr
    assert "Stage 'tokenize' didn't change, skipping" in second.stdout
    assert "Stage 'prepare' didn't change, skipping" in second.stdout
    assert "Stage 'tune' didn't change, skipping" in second.stdout

    # Only a POS filter changed: tokenize re-runs from the analysis cache (the stages after it would
    # re-run too; `dvc repro tokenize` stops there).
    project.set_param("tokenize", "pos_drop", ["Josa", "Punctuation", "Number"])
    third = project.dvc("repro", "tokenize")
    assert third.returncode == 0, third.stderr
    stats = yaml.safe_load((root / "data" / "tokenize_stats.json").read_text(encoding="utf-8"))
    assert stats["analysed"] == 0 and stats["cache_hits"] > 0
    assert stats["params"]["tokenize"]["pos_drop"] == ["Josa", "Punctuation", "Number"]

    # A bad parameter: the stage fails naming it, and every previous output is intact.
    before = {p: p.read_bytes() for p in (root / "data").rglob("*") if p.is_file()}
    project.set_param("tokenize", "pos_drop", ["Josa"])
    (root / "questions.csv").write_text("title,body,label\na,b,c\n", encoding="utf-8")
    failed = project.dvc("repro")
    assert failed.returncode != 0
    assert "no column '제목'; the columns present are: title, body, label" in failed.stderr
    after = {p: p.read_bytes() for p in (root / "data").rglob("*") if p.is_file()
             if not p.is_relative_to(root / "data" / "raw")}
    assert {p: b for p, b in before.items() if p in after} == after
    assert set(after) == {p for p in before if not p.is_relative_to(root / "data" / "raw")}
    failed_runs = [r for r in project.runs() if r.info.status == "FAILED"]
    assert [r.info.run_name for r in failed_runs] == ["tokenize"]


def test_changing_the_ensemble_leaves_tune_up_to_date(repro_project: Project, tmp_path):
    """Trials are one fit each: train.ensemble (and refit, use_tuned) is no key the tune stage depends
    on, so changing it re-runs train only, and tune's study keeps its name."""
    project = repro_project.clone(tmp_path / "project")
    project.set_param("train", "ensemble", 2)
    project.set_param("train", "refit", True)
    status = project.dvc("status", "--json")
    assert status.returncode == 0, status.stderr
    changed = json.loads(status.stdout)
    assert "tune" not in changed and "train" in changed, changed
    project.set_param("train", "learning_rate", 0.002)   # a key trials read: tune is out of date
    assert "tune" in json.loads(project.dvc("status", "--json").stdout)
