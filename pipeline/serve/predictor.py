"""A loaded model bundle: `Classifier.predict(texts)` gives label, class probabilities and a flag
for texts that left no tokens. The same code serves the predict CLI, the MLflow pyfunc model and
`mlflow models serve`.
"""
from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from pipeline.data.readers import without_surrogates
from pipeline.model.champion import RNN_WEIGHT, blend
from pipeline.model.files import load_model_file
from pipeline.model.inference import compiled_forward, predict_proba
from pipeline.model.linear import LinearModel, load_linear
from pipeline.serve.bundle import Encoder, _read_json, check_bundle, load_encoder, rebuild_hint, served

PREDICTED = "predicted"       # the label name
EMPTY = "empty_text"          # no tokens after normalisation and filters: predicted from an empty sequence
PROBA_PREFIX = "proba_"


def proba_column(label: str) -> str:
    return f"{PROBA_PREFIX}{label}"


def output_columns(labels: Sequence[str]) -> list[str]:
    return [PREDICTED, *map(proba_column, labels), EMPTY]


class Classifier:
    """A model bundle, loaded: `predict(texts)` gives a DataFrame of label, probabilities, flag.

    It serves what the bundle's champion.json names: the RNN (`model`), the linear model (`linear`),
    or their blend, `weight * rnn + (1 - weight) * linear` (pipeline/model/champion.py).
    """

    def __init__(self, model: Any, labels: list[str], encoder: Encoder, batch_size: int = 512,
                 folder: Path | None = None, linear: LinearModel | None = None, weight: float = 1.0) -> None:
        self.model, self.labels, self.encoder, self.batch_size = model, labels, encoder, batch_size
        self.linear, self.weight = linear, weight
        self.forward = compiled_forward(model) if model is not None else None
        self.folder = folder   # where it was loaded from
        self.kind = "blend" if model is not None and linear is not None else "rnn" if model is not None else "linear"

    @classmethod
    def load(cls, folder: str | Path, batch_size: int = 512, kind: str | None = None) -> Classifier:
        """A bundle folder, loaded; a missing or damaged file is one StageError naming it.

        `kind` (rnn | linear) loads one candidate of models/ instead of its champion (the evaluate stage)."""
        folder = Path(folder)
        if not folder.is_dir():
            check_bundle(folder)   # a file, or nothing there: one line saying which
        champion = served(folder)
        kind = kind or champion.kind
        check_bundle(folder, kind)
        weight = champion.weight if kind == champion.kind else RNN_WEIGHT[kind]
        model = load_model_file(folder / "model.keras", rebuild_hint(folder)) if kind != "linear" else None
        linear = load_linear(folder, rebuild_hint(folder)) if kind != "rnn" else None
        encoder = load_encoder(folder, ids=model is not None)
        # TensorFlow leaves millions of long-lived Python objects that every full garbage collection
        # walks again, while tokenizing allocates fast: measured, Okt ran 2x slower after
        # `import tensorflow` (20,000 NSMC reviews: 19.0 s, 7.6 s with the objects frozen).
        gc.freeze()
        return cls(model, _read_json(folder, "labels.json"), encoder, batch_size, folder, linear, weight)

    def warm_up(self) -> None:
        """The analyzer started and the forward pass traced, so the first request is not slower."""
        self.encoder.warm_up()
        if self.forward is not None:
            self.forward(np.zeros((1, 1), np.int32))

    def parts(self, texts: Sequence[Any]) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """The RNN's and the linear model's probabilities [n, classes] (None for a part not served) and
        the token counts per text (the RNN's ids when it serves, else the analyzer's tokens)."""
        tokens = self.encoder.analyze(texts)
        rnn = linear = None
        lengths = np.array([len(t) for t in tokens], dtype=np.int32)
        if self.model is not None:
            x, lengths = self.encoder.encode_tokens(tokens)
            rnn = predict_proba(self.model, x, lengths, self.encoder.padding, self.batch_size, self.forward)
        if self.linear is not None:
            linear = self.linear.predict_proba(tokens)
        return rnn, linear, lengths

    def predict_proba(self, texts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities [n, classes] and token counts per text (a lone surrogate read as U+FFFD)."""

        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros(0, np.int32)
        rnn, linear, lengths = self.parts([without_surrogates(t) for t in texts])
        if rnn is None:
            return linear, lengths
        if linear is None:
            return rnn, lengths
        return blend(rnn, linear, self.weight), lengths

    def predict(self, texts: Sequence[Any]) -> pd.DataFrame:
        proba, lengths = self.predict_proba(texts)
        # Written as float64, each row summing to 1 in float64: the RNN's float32 softmax is off by up to
        # ~1e-7, beyond the sqrt(eps) that sklearn's log_loss allows float64 before it warns.
        proba = proba.astype(np.float64)
        proba /= proba.sum(1, keepdims=True)
        out = pd.DataFrame({PREDICTED: np.asarray(self.labels, dtype=object)[proba.argmax(1)]})
        for i, label in enumerate(self.labels):
            out[proba_column(label)] = proba[:, i]
        out[EMPTY] = lengths == 0
        return out
