"""The seed "RNN 계층과 셀": a recurrent layer is its cell applied once per time step.

`unroll(cell, x)` runs a Keras SimpleRNNCell / LSTMCell / GRUCell over the time axis in a plain
Python loop, from zero states, and returns every step's output, as the layer would with
`return_sequences=True` (tests/test_reference.py holds it to the layer's outputs).
"""
from __future__ import annotations

from typing import Any

import keras


def unroll(cell: Any, x: Any) -> Any:
    """Outputs [batch, time, units] of `cell` stepped over x [batch, time, features]."""
    batch = keras.ops.shape(x)[0]
    sizes = cell.state_size if isinstance(cell.state_size, (list, tuple)) else [cell.state_size]
    states = [keras.ops.zeros((batch, size), dtype=x.dtype) for size in sizes]
    outputs = []
    for t in range(keras.ops.shape(x)[1]):
        output, states = cell(x[:, t], states)
        states = states if isinstance(states, (list, tuple)) else [states]
        outputs.append(output)
    return keras.ops.stack(outputs, axis=1)
