"""One seed for python, numpy and (when it is loaded) TensorFlow/Keras."""
from __future__ import annotations

import os
import random
import sys

import numpy as np


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)  # inherited by worker processes started after this
    # Seed TF only where a stage already imported it: the data stages stay free of its 3 s import.
    if "keras" in sys.modules or "tensorflow" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)
