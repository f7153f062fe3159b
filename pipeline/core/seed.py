"""One seed for python, numpy and, when the caller trains, TensorFlow/Keras."""
from __future__ import annotations

import os
import random

import numpy as np


def set_seed(seed: int, *, tensorflow: bool) -> None:
    """Seed python's and numpy's generators, and TensorFlow/Keras's when `tensorflow` is true.

    Each caller says which it needs (no default): the data stages stay free of TensorFlow's 3 s
    import, and code about to build or fit a model cannot end up with unseeded weights because
    nothing had imported TensorFlow yet (seeding "if it is loaded" did exactly that once)."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)  # inherited by worker processes started after this
    if tensorflow:
        import keras

        keras.utils.set_random_seed(seed)
