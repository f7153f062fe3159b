"""A SimpleRNN binary classifier in NumPy alone: the seed notebook "6. 순환 신경망 이해", made testable.

Same equations and weight layout as Keras's SimpleRNN + Dense(1, sigmoid), so the two can share
weights and be compared:
    h_t = tanh(x_t W + h_{t-1} U + b),   h_0 = 0
    p   = sigmoid(h_T w + c)             (only the last state is read)
    L   = mean binary cross-entropy over the batch
W [input_dim, hidden] and w [hidden, 1] start Glorot-uniform, U [hidden, hidden] orthogonal, the
biases zero. Inputs are float arrays [batch, time, input_dim], or token ids [batch, time] read as
one-hot vectors (the seed's one-hot IMDB input) without building them.

Backpropagation through time walks back from the last step; with `truncate` it stops after that
many steps (truncated BPTT: cheaper, and blind to longer dependencies). truncate >= the sequence
length is full BPTT.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

PARAMS = ("W", "U", "b", "w", "c")


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out))


def orthogonal(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random orthogonal matrix (QR of a Gaussian one, signs fixed so it is uniformly drawn)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))   # no overflow for large |z|


@dataclass
class NumpyRNN:
    input_dim: int
    hidden: int = 32
    learning_rate: float = 0.01
    truncate: int | None = None       # BPTT steps; None: all of them
    clip_norm: float | None = None    # rescale each step's gradients to at most this global norm
    seed: int = 0
    params: dict = field(default_factory=dict)
    history: list = field(default_factory=list)   # per epoch: loss, accuracy, val_loss, val_accuracy

    def __post_init__(self) -> None:
        if not self.params:
            rng = np.random.default_rng(self.seed)
            self.params = {"W": glorot_uniform(rng, self.input_dim, self.hidden), "U": orthogonal(rng, self.hidden),
                           "b": np.zeros(self.hidden), "w": glorot_uniform(rng, self.hidden, 1), "c": np.zeros(1)}

    # --- forward ------------------------------------------------------------------------------
    def _input_term(self, x: np.ndarray) -> np.ndarray:
        """x_t W for every step: [batch, time, hidden]. Token ids pick rows of W (one-hot input)."""
        if x.ndim == 2:
            return self.params["W"][x]
        return x @ self.params["W"]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every hidden state [batch, time + 1, hidden] (h_0 included) and p [batch]."""
        xw = self._input_term(x)
        batch, steps, _ = xw.shape
        h = np.zeros((batch, steps + 1, self.hidden), dtype=xw.dtype)
        U, b = self.params["U"], self.params["b"]
        for t in range(steps):
            h[:, t + 1] = np.tanh(xw[:, t] + h[:, t] @ U + b)
        p = sigmoid(h[:, -1] @ self.params["w"] + self.params["c"])[:, 0]
        return h, p

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        _, p = self.forward(x)
        return bce(p, y)

    # --- backward -----------------------------------------------------------------------------
    def gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
        """The loss and its gradient for every parameter, by (truncated) BPTT."""
        h, p = self.forward(x)
        batch, steps = h.shape[0], h.shape[1] - 1
        grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        dz = (p - y)[:, None] / batch                 # d mean-BCE / d logit
        grads["w"] = h[:, -1].T @ dz
        grads["c"] = dz.sum(0)
        dh = dz @ self.params["w"].T                  # d L / d h_T
        first = 0 if self.truncate is None else max(0, steps - self.truncate)
        for t in range(steps - 1, first - 1, -1):
            da = dh * (1.0 - h[:, t + 1] ** 2)        # through tanh
            grads["U"] += h[:, t].T @ da
            grads["b"] += da.sum(0)
            if x.ndim == 2:
                np.add.at(grads["W"], x[:, t], da)   # one-hot rows
            else:
                grads["W"] += x[:, t].T @ da
            dh = da @ self.params["U"].T
        return bce(p, y), grads

    # --- training -----------------------------------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 10, batch_size: int = 32,
            validation: tuple[np.ndarray, np.ndarray] | None = None, verbose: bool = False,
            on_epoch_end: Callable[[dict], None] | None = None) -> NumpyRNN:
        """Mini-batch SGD, shuffled with the seed; one history row per epoch, also given to on_epoch_end."""
        rng = np.random.default_rng(self.seed + 1)
        y = np.asarray(y, dtype=np.float64)
        for epoch in range(epochs):
            order = rng.permutation(len(y))
            for start in range(0, len(y), batch_size):
                rows = order[start:start + batch_size]
                _, grads = self.gradients(x[rows], y[rows])
                scale = clip_scale(grads, self.clip_norm)
                for name in PARAMS:
                    self.params[name] -= self.learning_rate * scale * grads[name]
            row = {"epoch": epoch + 1, "loss": self.loss(x, y), "accuracy": self.score(x, y)}
            if validation is not None:
                row.update(val_loss=self.loss(*validation), val_accuracy=self.score(*validation))
            self.history.append(row)
            if on_epoch_end is not None:
                on_epoch_end(row)
            if verbose:
                print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (self.predict_proba(x) > 0.5).astype(np.int64)

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == np.asarray(y)).mean())


def global_norm(grads: dict) -> float:
    return float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))


def clip_scale(grads: dict, clip_norm: float | None) -> float:
    """The factor that brings the gradients' global norm down to clip_norm (Keras's global_clipnorm).

    Without it a SimpleRNN on long one-hot sequences sooner or later meets a batch whose gradient
    through 100 steps explodes: one SGD step then saturates tanh and the model never recovers.
    """
    if clip_norm is None:
        return 1.0
    norm = global_norm(grads)
    return 1.0 if norm <= clip_norm else clip_norm / norm


def bce(p: np.ndarray, y: np.ndarray, eps: float = 1e-12) -> float:
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
