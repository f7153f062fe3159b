"""The recurrent text classifier: token ids -> Embedding or one-hot -> stacked RNN -> pooling -> Dense.

`build_model` returns an uncompiled functional model, so `train` can pick the optimizer, the
distribution strategy and the loss (`output_spec`) itself. Layer names are fixed (`embedding` or
`one_hot`, `embedding_dropout`, `rnn_1`..`rnn_n`, `pooling`, `hidden`, `output`) so callbacks, tests
and reports can find them.

Pooling turns the last recurrent layer into one vector: its final state (`last`, what the tutorials
do), the max or mean over the steps, ULMFiT's concat of last + max + mean (Howard & Ruder, 2018), or
additive attention (Bahdanau et al., 2015; Yang et al., 2016). Every one skips padded steps.
"""
from __future__ import annotations

from typing import Any

import keras

from pipeline.core.config import ModelParams

_CELLS: dict[str, type[keras.layers.Layer]] = {
    "simple_rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}


@keras.saving.register_keras_serializable(package="pipeline")
class OneHot(keras.layers.Layer):
    """Token ids [batch, time] -> float32 one-hot vectors [batch, time, depth]; no weights.

    The tutorials' "SimpleRNN on one-hot input". Keras has no layer for it (CategoryEncoding
    collapses the time axis), and a Lambda would not load back without `safe_mode=False`.
    """

    def __init__(self, depth: int, mask_zero: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.depth = int(depth)
        self.mask_zero = bool(mask_zero)

    def call(self, inputs: Any) -> Any:
        return keras.ops.one_hot(inputs, self.depth, dtype="float32")

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        # Same contract as Embedding(mask_zero=True), so both input paths skip padding alike.
        if not self.mask_zero:
            return None
        return keras.ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, self.depth)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth": self.depth, "mask_zero": self.mask_zero}


@keras.saving.register_keras_serializable(package="pipeline")
class MaskedPooling(keras.layers.Layer):
    """[batch, time, features] -> [batch, features]: max or mean over the unmasked steps.

    A row with no unmasked step (an empty text) pools to zeros, not to -inf or 0/0.
    """

    def __init__(self, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be max or mean, got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        ops = keras.ops
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        keep = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        any_step = ops.cast(ops.any(mask, axis=1, keepdims=True), inputs.dtype)
        if self.mode == "mean":
            return ops.sum(inputs * keep, axis=1) / ops.maximum(ops.sum(keep, axis=1), 1.0)
        lowest = ops.where(keep > 0, inputs, ops.full_like(inputs, -1e9))
        return ops.max(lowest, axis=1) * any_step

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None   # time is gone

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="pipeline")
class AttentionPooling(keras.layers.Layer):
    """Additive attention over time: score_t = v . tanh(W h_t + b), softmax over the unmasked steps,
    the weighted sum of h_t. An empty text pools to zeros."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        features = int(input_shape[-1])
        self.w = self.add_weight(name="w", shape=(features, self.units), initializer="glorot_uniform")
        self.b = self.add_weight(name="b", shape=(self.units,), initializer="zeros")
        self.v = self.add_weight(name="v", shape=(self.units,), initializer="glorot_uniform")

    def call(self, inputs: Any, mask: Any = None) -> Any:
        ops = keras.ops
        scores = ops.tensordot(ops.tanh(ops.tensordot(inputs, self.w, 1) + self.b), self.v, 1)   # [batch, time]
        if mask is None:
            mask = ops.ones(ops.shape(scores), dtype="bool")
        scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=1) * ops.cast(mask, scores.dtype)
        pooled = ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)
        return pooled * ops.cast(ops.any(mask, axis=1, keepdims=True), pooled.dtype)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


def output_spec(num_classes: int) -> tuple[int, str, str]:
    """(units, activation, loss name) of the output layer for `num_classes` labels."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if num_classes == 2:
        return 1, "sigmoid", "binary_crossentropy"
    return num_classes, "softmax", "sparse_categorical_crossentropy"


def fused_kernel_blockers(hp: ModelParams, padding: str) -> list[str]:
    """What keeps Keras 3 from running the recurrent layers on the fused cuDNN kernel on a GPU.

    It matters for speed only: on a GPU the fused LSTM/GRU kernel is several times faster than
    the step-by-step loop, which Keras silently falls back to otherwise. On CPU there is no fused
    kernel, so the answer changes nothing there. The conditions mirror Keras: LSTM or GRU with
    the default activations (always the case here) and no recurrent dropout; with a mask, cuDNN
    only accepts right-padded sequences, so pre-padding forces the slow path.
    """
    blockers = []
    if hp.cell not in ("lstm", "gru"):
        blockers.append(f"train.model.cell is {hp.cell} (only lstm and gru have one)")
    if hp.recurrent_dropout != 0:
        blockers.append(f"train.model.recurrent_dropout is {hp.recurrent_dropout:g} (must be 0)")
    if hp.mask and padding != "post":
        blockers.append(f"prepare.padding is {padding} with train.model.mask (masks need post padding)")
    return blockers


def uses_fused_kernel(hp: ModelParams, padding: str) -> bool:
    """Whether a GPU would run these layers on the fused cuDNN kernel (see fused_kernel_blockers)."""
    return not fused_kernel_blockers(hp, padding)


def build_model(hp: ModelParams, vocab_size: int, num_classes: int) -> keras.Model:
    """Uncompiled classifier for int32 token ids of any length (0 = padding, 1 = OOV)."""
    if vocab_size < 3:
        raise ValueError(f"vocab_size must be >= 3 (padding, OOV, one word), got {vocab_size}")
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = input_features(hp, vocab_size)(tokens)
    if hp.embedding_dropout and not hp.one_hot:
        # Drops whole embedding channels for the whole text, not single numbers (Gal & Ghahramani, 2016).
        x = keras.layers.SpatialDropout1D(hp.embedding_dropout, name="embedding_dropout")(x)
    for i in range(1, hp.layers):
        x = recurrent_layer(hp, index=i, sequences=True)(x)
    x = _pooled(hp, x)
    if hp.dense_units:
        x = keras.layers.Dense(hp.dense_units, activation="relu", name="hidden")(x)
    units, activation, _ = output_spec(num_classes)
    outputs = keras.layers.Dense(units, activation=activation, name="output")(x)
    return keras.Model(tokens, outputs, name=f"{hp.cell}_classifier")


def input_features(hp: ModelParams, vocab_size: int) -> keras.layers.Layer:
    if hp.one_hot:
        return OneHot(vocab_size, mask_zero=hp.mask, name="one_hot")
    return keras.layers.Embedding(vocab_size, hp.embedding_dim, mask_zero=hp.mask, name="embedding")


def _pooled(hp: ModelParams, x: Any) -> Any:
    """The last recurrent layer, and the pooling that makes one vector of it."""
    last = recurrent_layer(hp, index=hp.layers, sequences=hp.pooling != "last",
                            states=hp.pooling == "concat")
    if hp.pooling == "last":
        return last(x)    # the final state, at each row's last unmasked step
    if hp.pooling in ("max", "mean"):
        return MaskedPooling(hp.pooling, name="pooling")(last(x))
    if hp.pooling == "attention":
        return AttentionPooling(hp.units, name="pooling")(last(x))
    # concat: final state(s) + max + mean. The final states come with the sequence (return_state):
    # [seq, h] (gru, simple_rnn), [seq, h, c] (lstm), both directions' when bidirectional.
    sequence, *states = last(x)
    per_direction = 2 if hp.cell == "lstm" else 1
    finals = states[::per_direction]   # h of each direction, not the LSTM's cell state c
    parts = [*finals, MaskedPooling("max", name="pooling_max")(sequence),
             MaskedPooling("mean", name="pooling_mean")(sequence)]
    return keras.layers.Concatenate(name="pooling")(parts)


def recurrent_layer(hp: ModelParams, index: int, sequences: bool, states: bool = False) -> keras.layers.Layer:
    name = f"rnn_{index}"
    # Every layer below the last feeds the next a full sequence; the last one does when pooled.
    layer = _CELLS[hp.cell](
        hp.units,
        dropout=hp.dropout,
        recurrent_dropout=hp.recurrent_dropout,
        return_sequences=sequences,
        return_state=states,
        name=name if not hp.bidirectional else f"{name}_{hp.cell}",
    )
    if hp.bidirectional:
        return keras.layers.Bidirectional(layer, name=name)
    return layer
