"""The recurrent text classifier: token ids -> Embedding or one-hot -> stacked RNN -> Dense.

`build_model` returns an uncompiled functional model, so `train` can pick the optimizer, the
distribution strategy and the loss (`output_spec`) itself. Layer names are fixed (`embedding` or
`one_hot`, `rnn_1`..`rnn_n`, `hidden`, `output`) so callbacks, tests and reports can find them.
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
    x = _input_features(hp, vocab_size)(tokens)
    for i in range(1, hp.layers + 1):
        x = _recurrent_layer(hp, index=i, last=i == hp.layers)(x)
    if hp.dense_units:
        x = keras.layers.Dense(hp.dense_units, activation="relu", name="hidden")(x)
    units, activation, _ = output_spec(num_classes)
    outputs = keras.layers.Dense(units, activation=activation, name="output")(x)
    return keras.Model(tokens, outputs, name=f"{hp.cell}_classifier")


def _input_features(hp: ModelParams, vocab_size: int) -> keras.layers.Layer:
    if hp.one_hot:
        return OneHot(vocab_size, mask_zero=hp.mask, name="one_hot")
    return keras.layers.Embedding(vocab_size, hp.embedding_dim, mask_zero=hp.mask, name="embedding")


def _recurrent_layer(hp: ModelParams, index: int, last: bool) -> keras.layers.Layer:
    name = f"rnn_{index}"
    # Only the last layer collapses time: every layer below must feed the next a full sequence.
    layer = _CELLS[hp.cell](
        hp.units,
        dropout=hp.dropout,
        recurrent_dropout=hp.recurrent_dropout,
        return_sequences=not last,
        name=name if not hp.bidirectional else f"{name}_{hp.cell}",
    )
    if hp.bidirectional:
        return keras.layers.Bidirectional(layer, name=name)
    return layer
