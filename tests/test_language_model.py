"""train.model.pretrain lm: the encoder starts from a language model of the rows the fit trains on.

An experimental option (docs/models.md: it made every measured classifier worse), so its tests run
in the slow tier (`make test-slow`, and .ci/run when it fits), not in every `make test`.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.tinydata import tiny_data, tiny_model, tiny_train
from pipeline.model.strategies import make_strategy

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")]


def _neighbour_states(x: np.ndarray, units: int, forward: bool, backward: bool) -> np.ndarray:
    """States that name a step's neighbour: one-hot (x 50) of x[t+1] in the forward half, of x[t-1]
    in the backward half; an identity head turns them into near-certain predictions."""
    n, t = x.shape
    states = np.zeros((n, t, 2 * units), np.float32)
    for i in range(n):
        for j in range(t):
            if forward and j + 1 < t:
                states[i, j, x[i, j + 1]] = 50
            if backward and j >= 1:
                states[i, j, units + x[i, j - 1]] = 50
    return states


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional", "forward"])
def test_each_direction_predicts_its_neighbour_and_only_text_in_the_softmax_is_scored(bidirectional):
    import keras

    from pipeline.model.language_model import language_model_sums

    x = np.array([[5, 6, 7, 1, 3, 0, 0]], np.int32)   # 1 is <oov>, 0 padding
    hp = tiny_model(bidirectional=bidirectional, units=10)
    head = keras.layers.Dense(10, use_bias=False, kernel_initializer="identity")
    right = _neighbour_states(x, 10, True, True)
    states = right if bidirectional else right[..., :10]
    total, count = language_model_sums(x, states, head, hp, words=10)
    # forward (source -> target): 5->6, 6->7, 1->3 (7-><oov> and 3->padding are not scored);
    # backward: 6->5, 7->6, 1->7 (3-><oov> is not scored)
    assert float(count[0]) == (6 if bidirectional else 3)
    assert float(total[0]) < 1e-6, "the right neighbour, near-certain: no loss"
    if bidirectional:   # the halves swapped: each direction now names the wrong neighbour
        swapped = np.concatenate([right[..., 10:], right[..., :10]], axis=-1)
        assert float(language_model_sums(x, swapped, head, hp, words=10)[0][0]) > 6 * 20
    # A 6-word softmax scores only targets 2..5: forward 1->3, backward 6->5.
    assert float(language_model_sums(x, states, head, hp, words=6)[1][0]) == (2 if bidirectional else 1)


def test_output_words_caps_the_softmax_at_the_vocabulary():
    from pipeline.model.language_model import output_words

    assert output_words(tiny_model(pretrain_words=100), 30) == 30
    assert output_words(tiny_model(pretrain_words=12), 30) == 12
    assert output_words(tiny_model(pretrain_words=0), 30) == 30


def _batches(x: np.ndarray, batch: int, seed: int = 0):
    from pipeline.model.training import epoch_batches

    split = {"x": x, "y": np.zeros(len(x), np.int32), "length": (x != 0).sum(axis=1).astype(np.int32)}
    return epoch_batches(split, batch, make_strategy("none"), seed=seed, bucket=True, padding="post")


def test_the_language_model_learns_the_order_of_the_training_rows():
    """Rows count up (k, k+1, k+2, ...): both neighbours of a token follow from it, so both
    directions must learn for the mean loss to fall this far."""
    from pipeline.model.language_model import train_language_model

    rng = np.random.default_rng(0)
    x = np.zeros((160, 10), np.int32)
    for row in x:
        start, n = rng.integers(2, 20), rng.integers(3, 11)
        row[:n] = np.arange(start, start + n)
    hp = tiny_model(bidirectional=True, units=16, pretrain="lm", pretrain_epochs=25, pretrain_words=0)
    lm = train_language_model(x, hp, [f"w{i}" for i in range(30)], make_strategy("none"), _batches(x, 16),
                              steps=10, learning_rate=0.02, seed=1, progress=False)
    assert [r["epoch"] for r in lm.history] == list(range(1, 26))
    assert lm.history[0]["loss"] > 0.8 * math.log(30)   # starts near a uniform guess over 30 words
    assert lm.history[-1]["loss"] < 0.25 * math.log(30)
    assert set(lm.weights) == {"embedding", "rnn_1"}
    assert lm.weights["embedding"][0].shape == (30, 8)


def test_no_direction_sees_the_token_it_predicts():
    """Tokens drawn at random: nothing to learn but a leak. A forward state that had read x[t+1], or a
    backward one that had read x[t-1], would drive the loss towards 0; without one it stays at the
    entropy of a uniform draw."""
    from pipeline.model.language_model import train_language_model

    x = np.zeros((1600, 10), np.int32)   # too many rows for the tiny model to learn by heart in 3 epochs
    rng = np.random.default_rng(1)
    for row in x:
        n = rng.integers(3, 11)
        row[:n] = rng.integers(2, 30, n)
    hp = tiny_model(bidirectional=True, units=16, pretrain="lm", pretrain_epochs=3, pretrain_words=0)
    lm = train_language_model(x, hp, [f"w{i}" for i in range(30)], make_strategy("none"), _batches(x, 32),
                              steps=50, learning_rate=0.02, seed=1, progress=False)
    assert lm.history[-1]["loss"] > 0.95 * math.log(28)


def test_the_classifier_takes_the_encoder_from_the_language_model_and_keeps_its_head():
    from pipeline.model.architecture import build_model
    from pipeline.model.language_model import _trained, start_from_language_model

    data = tiny_data()
    hp = tiny_model(pretrain="lm", pretrain_epochs=2)
    model = build_model(hp, data.vocab_size, 2, data.tokens)
    before = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    _trained.clear()
    start_from_language_model(model, data.train["x"], hp, data.tokens, make_strategy("none"),
                              _batches(data.train["x"], 16), steps=12, learning_rate=0.01, seed=5)
    (lm,) = _trained.values()
    assert set(lm.weights) == {"embedding", "rnn_1"}
    for name, weights in lm.weights.items():
        for got, want, old in zip(model.get_layer(name).get_weights(), weights, before[name]):
            np.testing.assert_array_equal(got, want)
            assert not np.allclose(got, old), f"{name}: trained, not its start"
    for got, old in zip(model.get_layer("output").get_weights(), before["output"]):
        np.testing.assert_array_equal(got, old)


def test_a_fit_from_the_language_model_learns_the_task():
    from pipeline.model.training import fit

    hp = tiny_model(pretrain="lm", pretrain_epochs=2)
    trained = fit(tiny_data(), tiny_train(epochs=6, learning_rate=0.01, model=hp), make_strategy("none"),
                  progress=False)
    assert trained.best["val/accuracy"] > 0.9
    assert [row["epoch"] for row in trained.language_model] == [1, 2]
    assert trained.language_model[-1]["loss"] < trained.language_model[0]["loss"]


def test_members_share_one_language_model_per_set_of_rows_and_a_refit_reads_train_and_val(monkeypatch):
    import pipeline.model.language_model as language_model
    from pipeline.model.training import fit_ensemble

    rows = []
    real = language_model.train_language_model
    monkeypatch.setattr(language_model, "train_language_model",
                        lambda x, *a, **k: rows.append(len(x)) or real(x, *a, **k))
    language_model._trained.clear()
    data = tiny_data()
    cfg = tiny_train(epochs=1, ensemble=2, refit=True, model=tiny_model(pretrain="lm"))
    result = fit_ensemble(data, cfg, make_strategy("none"), progress=False)
    assert result.language_model == result.members[0].language_model == result.members[1].language_model != []
    n_train, n_val = len(data.train["y"]), len(data.val["y"])
    assert rows == [n_train, n_train + n_val], "one for the first fits, one for the refits; never the test rows"


def test_a_resumed_fit_keeps_its_checkpoint_instead_of_a_new_language_model(tmp_path, monkeypatch):
    import pipeline.model.language_model as language_model
    from pipeline.core.seed import set_seed
    from pipeline.model.training import fit

    calls = []
    real = language_model.train_language_model
    monkeypatch.setattr(language_model, "train_language_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = tiny_train(epochs=3, model=tiny_model(pretrain="lm", pretrain_epochs=2))

    def stop_after_first_epoch(epoch, row):
        if epoch == 0:
            raise KeyboardInterrupt

    language_model._trained.clear()
    set_seed(3, tensorflow=True)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_data(), cfg, make_strategy("none"), backup_dir=tmp_path, on_epoch_end=stop_after_first_epoch,
            progress=False)
    language_model._trained.clear()
    set_seed(99, tensorflow=True)   # another init and no language model in memory: the checkpoint must win
    resumed = fit(tiny_data(), cfg, make_strategy("none"), backup_dir=tmp_path, progress=False)
    assert len(calls) == 1 and resumed.resumed_from_epoch == 1
    set_seed(3, tensorflow=True)
    straight = fit(tiny_data(), cfg, make_strategy("none"), progress=False)
    assert len(calls) == 2
    # It still reports the epochs its encoder came from (the interrupted run's, kept with the checkpoint).
    assert [row["epoch"] for row in resumed.language_model] == [1, 2]
    assert [row["loss"] for row in resumed.language_model] == pytest.approx(
        [row["loss"] for row in straight.language_model], abs=1e-5)
    for a, b in zip(resumed.model.weights, straight.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
