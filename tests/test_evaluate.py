"""evaluate: metrics, plots, and length-sorted batched prediction equal to plain prediction."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.tinydata import tiny_model
from pipeline.model.evaluation import roc_points, scores, write_plots
from pipeline.model.inference import predict_proba


def test_scores_per_class_and_macro_f1():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.9 + 0.1 / 3
    s = scores(y, proba, ["a", "b", "c"])
    assert s["test/accuracy"] == pytest.approx(4 / 6)
    assert s["test/per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0,
                                        "f1": pytest.approx(0.8), "support": 2}
    f1s = [s["test/per_class"][k]["f1"] for k in "abc"]
    assert s["test/macro_f1"] == pytest.approx(np.mean(f1s))
    assert s["test/loss"] > 0 and s["test/rows"] == 6


def test_roc_binary_and_micro_average():
    y = np.array([0, 0, 1, 1])
    fpr, tpr, area = roc_points(y, np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]))
    assert area == 1.0 and fpr[0] == 0 and tpr[-1] == 1
    _, _, area3 = roc_points(np.array([0, 1, 2]), np.eye(3) * 0.8 + 0.2 / 3)
    assert area3 == 1.0


def test_batched_prediction_matches_whole_rows():
    import keras

    from pipeline.model.architecture import build_model

    keras.utils.set_random_seed(0)
    model = build_model(tiny_model(units=4, embedding_dim=4), vocab_size=20, num_classes=3)
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 10, 40)
    x = np.zeros((40, 10), np.int32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.integers(2, 20, n)
    ours = predict_proba(model, x, lengths, "post", batch_size=7)
    plain = np.asarray(model(x, training=False))
    np.testing.assert_allclose(ours, plain, atol=1e-5)
    binary = build_model(tiny_model(units=4, embedding_dim=4), vocab_size=20, num_classes=2)
    two = predict_proba(binary, x, lengths, "post", batch_size=16)
    assert two.shape == (40, 2) and np.allclose(two.sum(1), 1)


def test_plots_are_written_for_dvc_and_people(tmp_path):
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]])
    area = write_plots(y, proba, ["부정", "긍정"], tmp_path)
    assert 0 <= area <= 1
    rows = (tmp_path / "confusion.csv").read_text(encoding="utf-8").splitlines()
    assert rows == ["actual,predicted", "부정,부정", "긍정,긍정", "긍정,부정", "부정,긍정"]
    assert (tmp_path / "roc.csv").read_text().startswith("fpr,tpr\n")
    for png in ("confusion.png", "roc.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_track_records_nothing_not_even_on_the_train_run(tmp_path, monkeypatch, mlflow_store):
    import json

    import keras
    import mlflow

    from pipeline.model.architecture import build_model
    from pipeline.stages.evaluate import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    client = mlflow.MlflowClient(tracking_uri=mlflow_store)
    train_run = client.create_run(client.create_experiment("textclf-seoul120")).info.run_id
    models, prepared = tmp_path / "models", tmp_path / "data" / "prepared"
    models.mkdir()
    prepared.mkdir(parents=True)
    build_model(tiny_model(units=4, embedding_dim=4), 20, 2).save(models / "model.keras")
    (models / "labels.json").write_text(json.dumps(["neg", "pos"]))
    (models / "run.json").write_text(json.dumps({"run_id": train_run}))
    (prepared / "params.json").write_text(json.dumps({"prepare": {"padding": "post"}}))
    x = np.array([[2, 3, 0], [4, 0, 0], [5, 6, 7], [8, 0, 0]], np.int32)
    np.savez(prepared / "test.npz", x=x, y=np.array([0, 1, 1, 0]), length=np.array([2, 1, 3, 1]))
    (tmp_path / "params.yaml").write_text("")
    keras.utils.set_random_seed(0)

    assert main(["--no-track"]) == 0
    assert (tmp_path / "metrics.json").is_file()
    assert "test/accuracy" not in client.get_run(train_run).data.metrics
    assert main([]) == 0
    assert "test/accuracy" in client.get_run(train_run).data.metrics
