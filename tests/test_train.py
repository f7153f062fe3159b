"""Training: bucketing, learning, resuming, and the same loop under every tf.distribute strategy."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO
from helpers.httpsite import free_port
from helpers.tinydata import tiny_data, tiny_train
from pipeline.data.sequences import bucket_boundaries
from pipeline.model.strategies import make_strategy
from pipeline.model.training import class_weights, fit, make_dataset

WORKER = Path(__file__).parent / "helpers" / "train_worker.py"
SMALL = tiny_train(epochs=3, batch_size=16, seed=3, early_stopping_patience=0)


def run_worker(mode: str, out: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), mode, str(out)], cwd=REPO,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: int = 300) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]


def load(out: Path) -> tuple[list[np.ndarray], dict]:
    with np.load(out) as f:
        weights = [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]
    return weights, json.loads(out.with_suffix(".json").read_text())


def test_buckets_pad_each_batch_only_to_its_longest_row():
    data = tiny_data()
    batches = list(make_dataset(data.train, 16, seed=0, epoch=0, bucket=True, padding="post").as_numpy_iterator())
    assert sum(len(y) for _, y in batches) == len(data.train["y"])
    widths = [x.shape[1] for x, _ in batches]
    assert len(set(widths)) > 1 and max(widths) <= 12
    for x, _ in batches:
        assert (x[:, -1] != 0).any()          # trimmed: the last column is someone's last token
    assert bucket_boundaries(np.arange(1, 101), buckets=4) == [26, 51, 76]


def test_pre_padding_is_trimmed_from_the_left():
    data = tiny_data()
    split = dict(data.train)
    split["x"] = np.stack([np.roll(r, 12 - n) for r, n in zip(split["x"], split["length"])])  # pre-pad
    for x, _ in make_dataset(split, 16, seed=0, epoch=0, bucket=True, padding="pre").as_numpy_iterator():
        assert (x[:, 0] != 0).any() and x.shape[1] <= 12


def test_balanced_class_weights():
    assert class_weights(np.array([0, 0, 0, 1]), 2, "balanced").tolist() == pytest.approx([2 / 3, 2.0])
    assert class_weights(np.array([0, 1]), 2, "none").tolist() == [1.0, 1.0]


SEED_PROBE = """
import sys
from pipeline.core.seed import set_seed

set_seed(5, tensorflow=False)
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "a data seed imported TensorFlow"

def draw():
    import keras
    layer = keras.layers.Dense(4)
    layer.build((None, 3))
    return layer.get_weights()[0].tolist()

set_seed(5, tensorflow=True)   # before anything imported TensorFlow: the case that once went unseeded
first, second = draw(), draw()
set_seed(5, tensorflow=True)
print(first == draw(), first != second)
"""


def test_a_training_seed_seeds_keras_even_before_tensorflow_is_loaded():
    """In a fresh interpreter: seeding for data leaves TensorFlow unloaded; seeding for training,
    first thing, makes the next initial weights the same every time (and not the same twice)."""
    done = subprocess.run([sys.executable, "-c", SEED_PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]


def test_learns_a_separable_task_and_keeps_the_best_epoch():
    result = fit(tiny_data(), tiny_train(epochs=8, batch_size=16, seed=3, learning_rate=0.01,
                                         early_stopping_patience=3), make_strategy("none"), progress=False)
    assert result.history[-1]["val/accuracy"] > 0.9
    assert result.best_epoch == 1 + int(np.argmin([r["val/loss"] for r in result.history]))


def test_monitoring_val_accuracy_keeps_the_epoch_of_highest_accuracy():
    """With train.monitor val/accuracy, the kept weights are those of the first epoch of highest
    val accuracy, whatever its loss: the model returned scores exactly that epoch's figures."""
    import keras

    from pipeline.model.inference import predict_proba

    data = tiny_data()
    # A high learning rate makes the loss and the accuracy peak at different epochs.
    cfg = tiny_train(epochs=6, batch_size=16, seed=3, learning_rate=0.05, early_stopping_patience=0,
                     monitor="val/accuracy", bucket_by_length=False)
    keras.utils.set_random_seed(3)
    result = fit(data, cfg, make_strategy("none"), progress=False)
    accuracies = [r["val/accuracy"] for r in result.history]
    assert result.best_epoch == 1 + int(np.argmax(accuracies))
    proba = predict_proba(result.model, data.val["x"], data.val["length"], data.padding, 64)
    assert float((proba.argmax(1) == data.val["y"]).mean()) == pytest.approx(max(accuracies))
    # the case this test is for: under val/loss another epoch would have been kept
    assert result.best_epoch != 1 + int(np.argmin([r["val/loss"] for r in result.history]))


def test_patience_counts_epochs_without_a_better_monitored_figure():
    cfg = tiny_train(epochs=30, batch_size=16, seed=3, learning_rate=0.01, early_stopping_patience=2,
                     monitor="val/accuracy")
    result = fit(tiny_data(), cfg, make_strategy("none"), progress=False)
    accuracies = [r["val/accuracy"] for r in result.history]
    assert len(accuracies) < 30, "stopped early"
    # it stopped exactly two epochs after the last strict improvement of the accuracy
    assert len(accuracies) == result.best_epoch + 2
    assert max(accuracies[result.best_epoch:]) <= accuracies[result.best_epoch - 1]


def test_an_interrupted_fit_resumes_where_it_stopped(tmp_path):
    import keras

    def stop_after_first_epoch(epoch, row):
        if epoch == 0:
            raise KeyboardInterrupt

    keras.utils.set_random_seed(3)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_data(), SMALL, make_strategy("none"), backup_dir=tmp_path, on_epoch_end=stop_after_first_epoch,
            progress=False)
    keras.utils.set_random_seed(99)              # a different init: the checkpoint must win
    resumed = fit(tiny_data(), SMALL, make_strategy("none"), backup_dir=tmp_path, progress=False)
    assert resumed.resumed_from_epoch == 1 and [r["epoch"] for r in resumed.history] == [1, 2, 3]
    keras.utils.set_random_seed(3)
    straight = fit(tiny_data(), SMALL, make_strategy("none"), progress=False)
    for a, b in zip(resumed.model.weights, straight.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_a_fit_killed_between_its_backup_files_and_checkpoint_resumes_from_the_last_checkpoint(
        tmp_path, monkeypatch):
    """Each epoch's history and best weights are written whole before its checkpoint, the commit
    point: killed in between (here: epoch 2's checkpoint never lands), the next run reads them, resumes
    after epoch 1 and keeps one row per epoch."""
    import tensorflow as tf

    real_save, saves = tf.train.CheckpointManager.save, []

    def killed_at_the_second(manager, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt
        return real_save(manager, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_data(), SMALL, make_strategy("none"), backup_dir=tmp_path, progress=False)
    assert [r["epoch"] for r in json.loads((tmp_path / "history.json").read_text())] == [1, 2]
    assert not list(tmp_path.glob(".*.tmp")), "no half-written file left beside the checkpoint"
    monkeypatch.undo()
    resumed = fit(tiny_data(), SMALL, make_strategy("none"), backup_dir=tmp_path, progress=False)
    assert resumed.resumed_from_epoch == 1 and [r["epoch"] for r in resumed.history] == [1, 2, 3]


@pytest.mark.integration
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    from helpers.train_worker import config, weights
    from pipeline.core.seed import set_seed

    mirrored = run_worker("mirrored", tmp_path / "m.npz")
    # The single-device run it must follow, here while the worker trains: the same script's config
    # and seed (two logical CPUs need a process of their own; one device does not).
    strategy = make_strategy("none")
    set_seed(7, tensorflow=True)
    single = fit(tiny_data(), config("none"), strategy, progress=False)
    finish(mirrored)
    m_weights, m_info = load(tmp_path / "m.npz")
    s_weights = [copies[0] for copies in weights(single.model)]
    assert m_info["replicas"] == 2 and m_info["copies_per_variable"] == 2
    assert m_info["replicas_identical"]
    assert m_info["history"][-1]["train/loss"] < m_info["history"][0]["train/loss"]
    # Same seed and global batch (2 x 8 = 16): the mirrored run follows the single-device one.
    assert len(m_weights) == len(s_weights)
    for a, b in zip(m_weights, s_weights):
        np.testing.assert_allclose(a, b, atol=2e-3)
    assert m_info["history"][-1]["val/accuracy"] == pytest.approx(single.history[-1]["val/accuracy"], abs=0.05)


@pytest.mark.integration
def test_multi_worker_strategy_with_two_local_processes(tmp_path):
    ports = [free_port(), free_port()]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        procs.append(run_worker("multi_worker", tmp_path / f"w{index}.npz",
                                {"TF_CONFIG": json.dumps(tf_config)}))
    for proc in procs:
        finish(proc, timeout=400)
    (w0, i0), (w1, i1) = load(tmp_path / "w0.npz"), load(tmp_path / "w1.npz")
    assert i0["replicas"] == i1["replicas"] == 2
    assert i0["chief"] and not i1["chief"]
    assert i0["history"][-1]["train/loss"] < i0["history"][0]["train/loss"]
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_shorten_equals_preparing_with_the_shorter_maxlen(padding, truncating):
    """Re-cutting prepared rows to a tuned maxlen keeps exactly the tokens prepare would have kept."""
    from pipeline.data.sequences import encode_pad, shorten

    rng = np.random.default_rng(0)
    docs = [[f"w{t}" for t in rng.integers(0, 9, n)] for n in (0, 1, 3, 5, 8, 11, 14)]
    vocab = {f"w{i}": i + 2 for i in range(9)}
    x, kept, _, _ = encode_pad(docs, vocab, 10, padding, truncating)
    want_x, want_kept, _, _ = encode_pad(docs, vocab, 4, padding, truncating)
    got = shorten({"x": x, "length": kept, "y": np.arange(len(docs))}, 4, padding, truncating)
    assert np.array_equal(got["x"], want_x) and np.array_equal(got["length"], want_kept)
    assert got["x"].dtype == x.dtype and np.array_equal(got["y"], np.arange(len(docs)))


def test_the_val_loss_reported_is_the_kept_weights_cross_entropy():
    """history's val/loss is the plain cross-entropy of the weights kept, as early stopping and the
    reports need."""
    import keras

    from pipeline.model.inference import predict_proba

    data = tiny_data()
    cfg = tiny_train(epochs=4, batch_size=16, seed=3, learning_rate=0.01, early_stopping_patience=0,
                     bucket_by_length=False)
    keras.utils.set_random_seed(3)
    result = fit(data, cfg, make_strategy("none"), progress=False)
    proba = predict_proba(result.model, data.val["x"], data.val["length"], data.padding, 64)
    y = data.val["y"]
    plain = -np.mean(np.log(np.clip(np.where(y == 1, proba[:, 1], proba[:, 0]), 1e-7, 1)))
    assert result.best["val/loss"] == pytest.approx(plain, rel=1e-3)
    assert result.best["val/accuracy"] > 0.8


# Ensembles and refits.

def test_fit_ensemble_averages_members_trained_with_their_own_seeds(tmp_path):
    from pipeline.model.inference import predict_proba
    from pipeline.model.training import fit_ensemble

    data = tiny_data()
    logged = []
    result = fit_ensemble(data, tiny_train(epochs=2, batch_size=16, seed=3, ensemble=2, learning_rate=0.01),
                          make_strategy("none"), backup_dir=tmp_path, on_epoch_end=lambda e, row: logged.append(row),
                          progress=False)
    assert len(result.members) == 2 and {r["member"] for r in result.history} == {0, 1}
    a, b = (m.model.get_layer("embedding").get_weights()[0] for m in result.members)
    assert not np.allclose(a, b), "each member starts from its own seed"
    x, lengths = data.val["x"], data.val["length"]
    mean = np.mean([predict_proba(m.model, x, lengths, data.padding, 64) for m in result.members], axis=0)
    np.testing.assert_allclose(predict_proba(result.model, x, lengths, data.padding, 64), mean, atol=1e-5)
    accuracy = float((mean.argmax(1) == data.val["y"]).mean())
    assert result.best["val/accuracy"] == pytest.approx(accuracy)
    assert {k.split("/")[0] for row in logged for k in row if "/" in k} == {"member_0", "member_1"}


def test_a_fit_resumed_after_it_stopped_early_trains_no_more(tmp_path):
    cfg = tiny_train(epochs=30, batch_size=16, seed=3, learning_rate=0.01, early_stopping_patience=2,
                     monitor="val/accuracy")   # the accuracy reaches 1.0 and stops improving; the loss would not
    first = fit(tiny_data(), cfg, make_strategy("none"), backup_dir=tmp_path, progress=False)
    assert len(first.history) < 30
    again = fit(tiny_data(), cfg, make_strategy("none"), backup_dir=tmp_path, progress=False)
    assert again.resumed_from_epoch == len(first.history) and again.history == first.history
    assert again.best_epoch == first.best_epoch


def test_refit_trains_from_the_seed_on_train_and_val_for_the_kept_epochs():
    """train.refit: the model returned is the seed's model trained on train + val for the epoch count
    early stopping kept, its last weights; the validation figures stay the first fit's."""
    from pipeline.core.seed import set_seed
    from pipeline.model.training import fit_ensemble

    data = tiny_data()
    cfg = tiny_train(epochs=8, batch_size=16, seed=3, learning_rate=0.01, early_stopping_patience=1, refit=True,
                     bucket_by_length=False)
    set_seed(3, tensorflow=True)
    result = fit_ensemble(data, cfg, make_strategy("none"), progress=False)
    assert result.refit_epochs == [result.best_epoch] and result.best == result.history[result.best_epoch - 1]
    whole = data.with_val_in_train()
    assert len(whole.train["y"]) == len(data.train["y"]) + len(data.val["y"])
    np.testing.assert_array_equal(whole.train["x"][-len(data.val["y"]):], data.val["x"])
    set_seed(3, tensorflow=True)
    direct = fit(whole, cfg.model_copy(update={"epochs": result.best_epoch, "early_stopping_patience": 0}),
                 make_strategy("none"), progress=False, keep_last=True)
    for a, b in zip(result.model.weights, direct.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)   # (a model of train alone would differ)


def test_a_refit_ensemble_reports_the_first_fits_val_and_averages_the_refits(tmp_path):
    from pipeline.model.inference import predict_proba
    from pipeline.model.training import fit_ensemble

    data = tiny_data()
    cfg = tiny_train(epochs=3, batch_size=16, seed=3, learning_rate=0.01, ensemble=2, refit=True)
    result = fit_ensemble(data, cfg, make_strategy("none"), backup_dir=tmp_path, progress=False)
    assert result.refit_epochs == [m.best_epoch for m in result.members]
    x, lengths, y = data.val["x"], data.val["length"], data.val["y"]
    first = np.mean([predict_proba(m.model, x, lengths, data.padding, 64) for m in result.members], axis=0)
    assert result.best["val/accuracy"] == pytest.approx(float((first.argmax(1) == y).mean()))
    final = predict_proba(result.model, x, lengths, data.padding, 64)
    assert not np.allclose(final, first, atol=1e-4), "the model returned is the refits' average"
