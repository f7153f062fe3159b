"""The from-scratch NumPy RNN and the unrolled cells, checked against calculus and against Keras."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.reference.numpy_rnn import PARAMS, NumpyRNN, global_norm

B, T, D, H = 4, 6, 5, 3


def problem(seed: int = 0, ids: bool = False):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, D, (B, T)) if ids else rng.standard_normal((B, T, D))
    return x, rng.integers(0, 2, B).astype(np.float64)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-12))


def numeric_gradient(model: NumpyRNN, x, y, name: str, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(model.params[name])
    for i in np.ndindex(grad.shape):
        keep = model.params[name][i]
        model.params[name][i] = keep + eps
        plus = model.loss(x, y)
        model.params[name][i] = keep - eps
        minus = model.loss(x, y)
        model.params[name][i] = keep
        grad[i] = (plus - minus) / (2 * eps)
    return grad


@pytest.mark.parametrize("ids", [False, True], ids=["dense input", "one-hot ids"])
def test_bptt_matches_central_finite_differences(ids):
    x, y = problem(ids=ids)
    model = NumpyRNN(D, H, seed=3)
    _, grads = model.gradients(x, y)
    for name in PARAMS:
        assert relative_error(grads[name], numeric_gradient(model, x, y, name)) < 1e-6, name


def test_initialisation_is_orthogonal_and_glorot():
    model = NumpyRNN(200, 64, seed=0)
    U, W = model.params["U"], model.params["W"]
    np.testing.assert_allclose(U @ U.T, np.eye(64), atol=1e-12)
    assert np.abs(W).max() <= np.sqrt(6 / (200 + 64)) and not model.params["b"].any()


def test_bptt_matches_gradient_tape_on_a_keras_simple_rnn_with_the_same_weights():
    import keras
    import tensorflow as tf

    x, y = problem(seed=1)
    model = NumpyRNN(D, H, seed=5)
    rnn = keras.layers.SimpleRNN(H, dtype="float64")
    head = keras.layers.Dense(1, activation="sigmoid", dtype="float64")
    inputs = tf.constant(x)
    head(rnn(inputs))   # build
    rnn.cell.set_weights([model.params["W"], model.params["U"], model.params["b"]])
    head.set_weights([model.params["w"], model.params["c"]])
    with tf.GradientTape() as tape:
        p = head(rnn(inputs))[:, 0]
        loss = keras.losses.binary_crossentropy(tf.constant(y)[:, None], p[:, None], from_logits=False)
        loss = tf.reduce_mean(loss)
    variables = [*rnn.cell.trainable_variables, *head.trainable_variables]
    tape_grads = dict(zip(PARAMS, (g.numpy() for g in tape.gradient(loss, variables))))
    ours_loss, grads = model.gradients(x, y)
    np.testing.assert_allclose(model.predict_proba(x), p.numpy(), rtol=1e-12)
    # Keras clips probabilities at 1e-7 in its cross-entropy; far from 0 and 1 the losses agree.
    assert ours_loss == pytest.approx(float(loss), rel=1e-9)
    for name in PARAMS:
        assert relative_error(grads[name], tape_grads[name]) < 1e-6, name


def test_truncated_bptt_is_full_bptt_once_truncate_covers_the_sequence():
    x, y = problem(seed=2)
    full = NumpyRNN(D, H, seed=7).gradients(x, y)[1]
    for truncate in (T, T + 3):
        same = NumpyRNN(D, H, seed=7, truncate=truncate).gradients(x, y)[1]
        for name in PARAMS:
            np.testing.assert_array_equal(same[name], full[name])
    short = NumpyRNN(D, H, seed=7, truncate=2).gradients(x, y)[1]
    # The output layer sees only h_T: truncation leaves it alone and changes the recurrent part.
    np.testing.assert_array_equal(short["w"], full["w"])
    assert relative_error(short["U"], full["U"]) > 1e-3
    # Truncated at 1, the input gradient is that of the last step alone.
    one = NumpyRNN(D, H, seed=7, truncate=1)
    h, p = one.forward(x)
    da = ((p - y)[:, None] / B) @ one.params["w"].T * (1 - h[:, -1] ** 2)
    np.testing.assert_allclose(one.gradients(x, y)[1]["W"], x[:, -1].T @ da, rtol=1e-12)


def test_sgd_learns_which_token_came_first():
    """Label 1 when token 1 opens the sequence: the answer sits T steps back from the output."""
    rng = np.random.default_rng(0)
    x = rng.integers(2, 8, (256, 8))
    y = rng.integers(0, 2, 256)
    x[:, 0] = np.where(y == 1, 1, 0)
    model = NumpyRNN(8, 16, learning_rate=0.5, seed=0).fit(x, y, epochs=30, batch_size=16)
    assert model.history[-1]["loss"] < 0.5 * model.history[0]["loss"]
    assert model.score(x, y) >= 0.95
    # With BPTT cut to 2 steps, no error reaches step 0: the rows of W for tokens 0 and 1 (seen only
    # there) never move, while the rows of tokens seen late do.
    cut = NumpyRNN(8, 16, learning_rate=0.5, seed=0, truncate=2)
    start = cut.params["W"].copy()
    cut.fit(x, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(cut.params["W"][:2], start[:2])
    assert not np.allclose(cut.params["W"][2:], start[2:])


@pytest.mark.parametrize("clip", [1e-3, 1e3])
def test_clipping_bounds_the_global_norm_of_each_sgd_step(clip):
    x, y = problem(seed=3)
    model = NumpyRNN(D, H, learning_rate=0.1, seed=0, clip_norm=clip)
    plain = NumpyRNN(D, H, learning_rate=0.1, seed=0)
    _, grads = plain.gradients(x, y)
    norm = global_norm(grads)
    assert 1e-3 < norm < 1e3   # so one case clips and the other does not
    start = {k: v.copy() for k, v in model.params.items()}
    model.fit(x, y, epochs=1, batch_size=B)   # one batch: one step
    plain.fit(x, y, epochs=1, batch_size=B)
    step = global_norm({k: model.params[k] - start[k] for k in PARAMS})
    assert step == pytest.approx(0.1 * min(norm, clip), rel=1e-9)
    if clip > norm:   # not clipped: the very same step as without clipping
        for k in PARAMS:
            np.testing.assert_array_equal(model.params[k], plain.params[k])


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_a_cell_unrolled_in_python_equals_its_layer(kind):
    import keras

    from pipeline.reference.cells import unroll

    x = np.random.default_rng(0).standard_normal((3, 7, 5)).astype("float32")
    layer = getattr(keras.layers, kind)(4, return_sequences=True, seed=1)
    expected = np.asarray(layer(x))
    cell = getattr(keras.layers, f"{kind}Cell")(4)
    cell.build((None, 5))
    cell.set_weights(layer.cell.get_weights())
    np.testing.assert_allclose(np.asarray(unroll(cell, keras.ops.convert_to_tensor(x))), expected, atol=1e-6)


def test_reference_command_logs_a_finished_run_that_results_lists(tmp_path, tiny_prepared, mlflow_store, monkeypatch,
                                                                  capsys):
    """python -m pipeline.reference.imdb_onehot on prepare-stage files: summary, MLflow run, RESULTS.md."""
    import json
    import shutil

    from helpers import REPO
    from pipeline.experiments.cli import main as experiments
    from pipeline.reference.imdb_onehot import main

    prepared = tmp_path / "data" / "prepared"
    shutil.copytree(tiny_prepared, prepared)
    params = json.loads((prepared / "params.json").read_text())
    (prepared / "params.json").write_text(json.dumps({**params, "dataset": {"name": "table"}}))
    monkeypatch.chdir(tmp_path)
    args = ["--epochs", "3", "--hidden", "8", "--learning-rate", "0.5"]
    assert main(args) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "reference" / "numpy_rnn_imdb.json").read_text())
    assert [row["epoch"] for row in summary["history"]] == [1, 2, 3]
    best = max(summary["history"], key=lambda row: row["val_accuracy"])
    assert (summary["best_epoch"], summary["val_accuracy"]) == (best["epoch"], best["val_accuracy"])
    assert summary["rows"] == {"train": 192, "val": 64, "test": 64} and summary["vocab_size"] == 30

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_store)
    (run,) = client.search_runs([client.get_experiment_by_name("textclf-table").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["pipeline.experiment"] == "numpy-rnn-onehot"
    assert run.data.metrics["best/val_accuracy"] == summary["val_accuracy"]
    assert run.data.metrics["test/accuracy"] == summary["test_accuracy"]
    assert run.data.params["reference.hidden"] == "8"

    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    assert experiments(["results"]) == 0, capsys.readouterr().err
    text = (tmp_path / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    assert f"accuracy **{summary['val_accuracy']:.4f}** (best epoch {summary['best_epoch']})" in text
    assert run.info.run_id in text

    # A three-class folder is refused by name, and nothing is logged as finished.
    (prepared / "labels.json").write_text(json.dumps(["a", "b", "c"]))
    capsys.readouterr()
    assert main(args) == 2
    assert "labels.json: 3 classes" in capsys.readouterr().err
