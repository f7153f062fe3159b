"""The recurrent classifier: textbook parameter counts, outputs, masking, cuDNN rule, save/load."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.core.config import ModelParams
from pipeline.model.architecture import OneHot, build_model, fused_kernel_blockers, output_spec, uses_fused_kernel

CELLS = ("simple_rnn", "lstm", "gru")

# Keras' own save path calls np.array on TF variables, which numpy 2 flags; nothing to fix here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


# The model the formulas below are worked out for unless a test says otherwise: one one-way layer,
# no dropout, no hidden Dense (the code's defaults are params.yaml's BiGRU(64) with both).
BASE = {"cell": "gru", "bidirectional": False, "layers": 1, "units": 64, "embedding_dim": 128, "one_hot": False,
        "dropout": 0.0, "recurrent_dropout": 0.0, "dense_units": 0, "mask": True, "pooling": "last"}


def hp(**overrides) -> ModelParams:
    return ModelParams(**{**BASE, **overrides})


def predict(model: keras.Model, *rows: list[int]) -> np.ndarray:
    return np.asarray(model(np.array(rows, dtype="int32"), training=False))


def recurrent(model: keras.Model, name: str) -> keras.layers.Layer:
    """The RNN itself, unwrapped from Bidirectional when there is one."""
    layer = model.get_layer(name)
    return layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer


# 1. Parameter counts: the textbook formulas, pinned.

def test_lstm_parameter_counts_match_the_formula():
    model = build_model(hp(cell="lstm", units=8, embedding_dim=128, layers=2), vocab_size=500,
                        num_classes=2)
    assert model.get_layer("embedding").count_params() == 500 * 128
    assert model.get_layer("rnn_1").count_params() == 4_384     # 4 * (8 * (128 + 8) + 8)
    assert model.get_layer("rnn_2").count_params() == 544       # 4 * (8 * (8 + 8) + 8)
    assert model.get_layer("output").count_params() == 8 + 1


def test_gru_parameter_count_matches_the_formula():
    model = build_model(hp(cell="gru", units=8, embedding_dim=128), vocab_size=500, num_classes=46)
    assert model.get_layer("rnn_1").count_params() == 3_312     # 3 * (8 * (128 + 8) + 2 * 8), reset_after
    assert model.get_layer("output").count_params() == 8 * 46 + 46


def test_simple_rnn_on_one_hot_input_parameter_counts():
    model = build_model(hp(cell="simple_rnn", units=32, one_hot=True), vocab_size=100, num_classes=2)
    assert model.get_layer("one_hot").count_params() == 0
    assert model.get_layer("rnn_1").count_params() == 4_256     # 32 * 100 + 32 * 32 + 32
    assert not any(isinstance(layer, keras.layers.Embedding) for layer in model.layers)


def test_hidden_dense_layer_is_optional():
    with_hidden = build_model(hp(units=8, dense_units=16), vocab_size=50, num_classes=3)
    assert with_hidden.get_layer("hidden").count_params() == 8 * 16 + 16
    assert with_hidden.get_layer("output").count_params() == 16 * 3 + 3
    without = build_model(hp(units=8), vocab_size=50, num_classes=3)
    assert "hidden" not in [layer.name for layer in without.layers]


# 2. Output shape and activation.

def test_output_spec():
    assert output_spec(2) == (1, "sigmoid", "binary_crossentropy")
    assert output_spec(3) == (3, "softmax", "sparse_categorical_crossentropy")
    assert output_spec(46) == (46, "softmax", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="num_classes"):
        output_spec(1)


def test_two_classes_give_one_sigmoid_probability():
    model = build_model(hp(units=8, embedding_dim=8), vocab_size=50, num_classes=2)
    out = predict(model, [5, 6, 7, 0], [9, 8, 0, 0], [2, 3, 4, 5])
    assert out.shape == (3, 1)
    assert np.all((out > 0) & (out < 1))


def test_three_classes_give_softmax_rows():
    model = build_model(hp(units=8, embedding_dim=8), vocab_size=50, num_classes=3)
    out = predict(model, [5, 6, 7, 0], [9, 8, 0, 0])
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(out > 0)


def test_model_is_uncompiled_and_takes_variable_length_int_ids():
    model = build_model(hp(units=8, embedding_dim=8), vocab_size=50, num_classes=2)
    assert not model.compiled
    (tokens,) = model.inputs
    assert tokens.name == "tokens" and tokens.dtype == "int32" and tuple(tokens.shape) == (None, None)
    assert predict(model, [5] * 3).shape == predict(model, [5] * 11).shape == (1, 1)


# 3. Bidirectional and stacking.

@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_doubles_params_and_width(cell):
    one_way = build_model(hp(cell=cell, units=8, embedding_dim=16), vocab_size=50, num_classes=2)
    both = build_model(hp(cell=cell, units=8, embedding_dim=16, bidirectional=True), vocab_size=50,
                       num_classes=2)
    assert isinstance(both.get_layer("rnn_1"), keras.layers.Bidirectional)
    assert both.get_layer("rnn_1").count_params() == 2 * one_way.get_layer("rnn_1").count_params()
    assert both.get_layer("rnn_1").output.shape[-1] == 2 * 8
    assert both.get_layer("output").count_params() == 2 * 8 + 1


@pytest.mark.parametrize("bidirectional", [False, True])
def test_stacked_layers_return_sequences_except_the_last(bidirectional):
    model = build_model(hp(cell="lstm", units=8, embedding_dim=8, layers=3,
                           bidirectional=bidirectional), vocab_size=50, num_classes=2)
    width = 16 if bidirectional else 8
    for name in ("rnn_1", "rnn_2"):
        assert recurrent(model, name).return_sequences
        assert tuple(model.get_layer(name).output.shape) == (None, None, width)
    assert not recurrent(model, "rnn_3").return_sequences
    assert tuple(model.get_layer("rnn_3").output.shape) == (None, width)


# 4. Masking: post-padding must not change the prediction.

def _padding_gap(one_hot: bool, cell: str, mask: bool, bidirectional: bool = False) -> float:
    keras.utils.set_random_seed(0)
    model = build_model(hp(cell=cell, units=8, embedding_dim=8, one_hot=one_hot, mask=mask,
                           bidirectional=bidirectional), vocab_size=20, num_classes=3)
    short, padded = predict(model, [5, 6, 7]), predict(model, [5, 6, 7, 0, 0, 0, 0])
    return float(np.abs(short - padded).max())


@pytest.mark.parametrize("one_hot", [False, True], ids=["embedding", "one_hot"])
@pytest.mark.parametrize("cell", CELLS)
def test_mask_makes_post_padding_invisible(cell, one_hot):
    assert _padding_gap(one_hot, cell, mask=True) <= 1e-6
    # Without the mask the padded steps do reach the state: the check above can fail.
    assert _padding_gap(one_hot, cell, mask=False) > 1e-4


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_mask_covers_the_backward_direction(cell):
    assert _padding_gap(False, cell, mask=True, bidirectional=True) <= 1e-6


def test_one_hot_layer_encodes_and_masks():
    ids = np.array([[0, 1, 3]], dtype="int32")
    layer = OneHot(4, mask_zero=True)
    np.testing.assert_array_equal(np.asarray(layer(ids)),
                                  [[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]])
    assert np.asarray(layer.compute_mask(ids)).tolist() == [[False, True, True]]
    assert OneHot(4, mask_zero=False).compute_mask(ids) is None


# 5. Fused cuDNN kernel rule.

@pytest.mark.parametrize("overrides, padding, expected", [
    ({"cell": "lstm"}, "post", True),
    ({"cell": "gru"}, "post", True),
    ({"cell": "lstm"}, "pre", False),
    ({"cell": "gru"}, "pre", False),
    ({"cell": "lstm", "mask": False}, "pre", True),
    ({"cell": "gru", "mask": False}, "pre", True),
    ({"cell": "lstm", "recurrent_dropout": 0.2}, "post", False),
    ({"cell": "gru", "recurrent_dropout": 0.2, "mask": False}, "post", False),
    ({"cell": "lstm", "dropout": 0.5}, "post", True),   # input dropout is applied before the kernel
    ({"cell": "simple_rnn"}, "post", False),
    ({"cell": "simple_rnn", "mask": False}, "pre", False),
])
def test_uses_fused_kernel(overrides, padding, expected):
    assert uses_fused_kernel(hp(**overrides), padding) is expected


def test_fused_kernel_blockers_name_each_key_that_rules_it_out():
    assert fused_kernel_blockers(hp(cell="gru"), "post") == []
    blockers = fused_kernel_blockers(hp(cell="simple_rnn", recurrent_dropout=0.2), "pre")
    assert [b.split(" ")[0] for b in blockers] == ["train.model.cell", "train.model.recurrent_dropout",
                                                   "prepare.padding"]


# 6. Save / load.

@pytest.mark.parametrize("overrides", [
    {"cell": "gru", "layers": 2, "dense_units": 4},
    {"cell": "simple_rnn", "one_hot": True},
    {"cell": "lstm", "bidirectional": True, "one_hot": True, "mask": False},
], ids=["embedding", "one_hot", "bidirectional_one_hot"])
def test_save_load_round_trip(tmp_path, overrides):
    model = build_model(hp(units=8, embedding_dim=8, **overrides), vocab_size=30, num_classes=3)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    rows = ([5, 6, 7, 0, 0], [29, 1, 2, 3, 4])
    np.testing.assert_array_equal(predict(loaded, *rows), predict(model, *rows))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    if overrides.get("one_hot"):
        restored = loaded.get_layer("one_hot")
        assert isinstance(restored, OneHot)
        assert (restored.depth, restored.mask_zero) == (30, overrides.get("mask", True))


# 7. Dropout only in training.

@pytest.mark.parametrize("cell", CELLS)
def test_dropout_is_off_at_inference(cell):
    model = build_model(hp(cell=cell, units=8, embedding_dim=8, dropout=0.5, recurrent_dropout=0.5),
                        vocab_size=30, num_classes=3)
    x = np.array([[5, 6, 7, 8, 9, 10]], dtype="int32")
    first, second = (np.asarray(model(x, training=False)) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    # And dropout is really there: training mode perturbs the output.
    trained = [np.asarray(model(x, training=True)) for _ in range(3)]
    assert any(not np.allclose(t, first) for t in trained)


# Pooling, embedding dropout and ensembles (issue 15): shapes, counts, masks, save/load.

POOLINGS = ("last", "max", "mean", "concat", "attention")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_pooling_skips_padding(cell, pooling):
    """More padding, or other ids under it, must not move any pooled output (post and pre padding)."""
    model = build_model(hp(cell=cell, units=4, embedding_dim=6, bidirectional=True, layers=2, pooling=pooling),
                        vocab_size=20, num_classes=3)
    post = predict(model, [3, 4, 5, 0, 0], [6, 0, 0, 0, 0])
    np.testing.assert_allclose(predict(model, [3, 4, 5, 0, 0, 0, 0, 0], [6, 0, 0, 0, 0, 0, 0, 0]), post, atol=1e-5)
    pre = predict(model, [0, 0, 3, 4, 5], [0, 0, 0, 0, 6])
    np.testing.assert_allclose(predict(model, [0, 0, 0, 0, 3, 4, 5], [0, 0, 0, 0, 0, 0, 6]), pre, atol=1e-5)
    # The padding is really skipped, not merely stable: a real token in its place changes the answer.
    assert not np.allclose(predict(model, [3, 4, 5, 7, 0], [6, 0, 0, 0, 0])[0], post[0], atol=1e-6)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_an_empty_text_pools_to_a_finite_answer(pooling):
    model = build_model(hp(units=4, embedding_dim=6, pooling=pooling), vocab_size=20, num_classes=3)
    out = predict(model, [0, 0, 0], [3, 0, 0])
    assert np.isfinite(out).all() and np.allclose(out.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("pooling", "width", "extra"), [
    ("last", 16, 0), ("max", 16, 0), ("mean", 16, 0),
    ("concat", 48, 0),                      # the final states of both directions + max + mean
    ("attention", 16, 16 * 8 + 8 + 8),      # W [2u, u], b [u], v [u]
])
def test_pooled_width_and_parameter_counts(pooling, width, extra):
    base = build_model(hp(units=8, embedding_dim=8, bidirectional=True), vocab_size=50, num_classes=3)
    model = build_model(hp(units=8, embedding_dim=8, bidirectional=True, pooling=pooling), vocab_size=50,
                        num_classes=3)
    assert model.get_layer("output").input.shape[-1] == width
    # The output layer grows with the pooled width: (width + 1) x 3 weights instead of (16 + 1) x 3.
    assert model.count_params() == base.count_params() + extra + (width - 16) * 3


@pytest.mark.parametrize("pooling", ["concat", "attention"])
def test_pooled_models_load_back_and_answer_the_same(pooling, tmp_path):
    model = build_model(hp(cell="lstm", units=4, embedding_dim=6, bidirectional=True, pooling=pooling,
                           embedding_dropout=0.3), vocab_size=20, num_classes=2)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    rows = ([3, 4, 5, 0], [6, 7, 0, 0])
    np.testing.assert_allclose(predict(loaded, *rows), predict(model, *rows), atol=1e-6)


def test_embedding_dropout_drops_whole_channels_in_training_only():
    model = build_model(hp(units=4, embedding_dim=32, embedding_dropout=0.5), vocab_size=20, num_classes=2)
    layer = model.get_layer("embedding_dropout")
    assert isinstance(layer, keras.layers.SpatialDropout1D) and layer.rate == 0.5
    x = np.ones((1, 6, 32), "float32")
    dropped = np.asarray(layer(x, training=True))[0]
    assert ((dropped == 0).all(axis=0) | (dropped != 0).all(axis=0)).all(), "a channel is dropped at every step"
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    rows = ([3, 4, 0, 0], [5, 0, 0, 0])   # and the mask still reaches the RNN
    np.testing.assert_allclose(predict(model, *rows), predict(model, [3, 4, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0]),
                               atol=1e-5)


def test_an_ensemble_is_the_mean_of_its_members(tmp_path):
    from pipeline.model.training import average_members

    keras.utils.set_random_seed(1)
    members = [build_model(hp(units=4, embedding_dim=6, pooling=p), vocab_size=20, num_classes=3)
               for p in ("last", "max", "attention")]
    ensemble = average_members(members)
    rows = ([3, 4, 5, 0], [6, 0, 0, 0], [0, 0, 0, 0])
    mean = np.mean([predict(m, *rows) for m in members], axis=0)
    np.testing.assert_allclose(predict(ensemble, *rows), mean, atol=1e-6)
    assert ensemble.count_params() == sum(m.count_params() for m in members)
    ensemble.save(tmp_path / "e.keras")
    np.testing.assert_allclose(predict(keras.models.load_model(tmp_path / "e.keras"), *rows), mean, atol=1e-6)
