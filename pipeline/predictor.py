"""Raw text in, a label and class probabilities out, through exactly the preprocessing of training.

A model bundle is a folder (models/ after `dvc repro`) holding:
  model.keras      the trained network
  vocab.json       token -> id (0 = padding, 1 = out of vocabulary)
  labels.json      class id -> label name
  params.json      the train params (train.maxlen) and the prepared data's (maxlen, padding, truncating)
  preprocess.json  the tokenize params (normaliser, analyzer, POS filters) and the resolved stopwords
The same code serves the predict CLI, the MLflow pyfunc model and `mlflow models serve`: the text
goes through tokenize_texts and encode_pad, the functions the tokenize and prepare stages ran.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from pipeline.analyzers import shared
from pipeline.cli import StageError
from pipeline.config import ParamsError, TokenizeParams, parse_params
from pipeline.prepare import encode_pad
from pipeline.tokenize import MemoryCache, analyzer_spec, tokenize_texts

BUNDLE_FILES = ("model.keras", "vocab.json", "labels.json", "params.json", "preprocess.json")
PREDICTED = "predicted"       # the label name
EMPTY = "empty_text"          # no tokens after normalisation and filters: predicted from an empty sequence
PROBA_PREFIX = "proba_"


def proba_column(label: str) -> str:
    return f"{PROBA_PREFIX}{label}"


def output_columns(labels: Sequence[str]) -> list[str]:
    return [PREDICTED, *map(proba_column, labels), EMPTY]


def as_text(value: Any) -> str:
    """A document as a string: None and NaN (a missing cell) become ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Encoder:
    """Raw texts -> padded token ids, as tokenize + prepare (+ train.maxlen) made them."""
    tokenize: TokenizeParams
    stopwords: frozenset[str]
    vocab: dict[str, int]
    maxlen: int
    padding: str
    truncating: str
    # Analyses reused across batches: repeated texts and (Okt) repeated words are analysed once.
    memory: MemoryCache = dataclasses.field(default_factory=MemoryCache, compare=False)

    def tokens(self, texts: Sequence[Any]) -> list[list[str]]:
        found, _ = tokenize_texts([as_text(t) for t in texts], self.tokenize, None, self.stopwords,
                                  progress=False, memory=self.memory)
        return [t or [] for t in found]

    def encode(self, texts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Ids [n, maxlen] and token counts (0: nothing left of the text)."""
        x, kept, _, _ = encode_pad(self.tokens(texts), self.vocab, self.maxlen, self.padding, self.truncating)
        return x, kept

    def warm_up(self) -> None:
        """Start the analyzer (the JVM, its dictionaries, their lazy first call) now rather than
        on the first request."""
        shared(analyzer_spec(self.tokenize))(["가나다 warm up"])


def _read_json(folder: Path, name: str) -> Any:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StageError(f"{folder / name}: not valid JSON ({exc})") from None


def check_bundle(folder: Path) -> None:
    if not folder.is_dir():
        raise StageError(f"{folder}: no such model folder")
    missing = [name for name in BUNDLE_FILES if not (folder / name).is_file()]
    if missing:
        raise StageError(f"{folder}: not a model bundle, {', '.join(missing)} missing (a bundle is what "
                         "the train stage writes to models/)")


def load_encoder(folder: Path) -> Encoder:
    spec = _read_json(folder, "preprocess.json")
    params = _read_json(folder, "params.json")
    try:
        cfg = parse_params({"tokenize": spec["tokenize"]}, str(folder / "preprocess.json")).tokenize
        prep = params["prepared"]["prepare"]
        maxlen = int(params.get("train", {}).get("maxlen") or 0) or int(prep["maxlen"])
        padding, truncating = prep["padding"], prep.get("truncating", "pre")
    except (KeyError, TypeError) as exc:
        raise StageError(f"{folder}: params.json / preprocess.json lack {exc}; train the model again") from None
    except ParamsError as exc:
        raise StageError(str(exc)) from None
    analyzer = analyzer_spec(cfg)
    signature = analyzer.signature()
    if spec.get("analyzer_signature") not in (None, signature):
        print(f"predict: warning: the model's tokens came from {spec['analyzer_signature']}, this machine "
              f"has {signature}; tokens may differ from training", file=sys.stderr)
    # One analyzer process at most: a pool of JVM processes per batch would cost more than it saves.
    # Okt runs in threads of one JVM, as in the tokenize stage.
    kind = "thread" if analyzer.thread_safe else "process"
    cfg = dataclasses.replace(cfg, stopwords_file="", worker_kind=kind,
                              workers=cfg.workers if kind == "thread" else 1)
    return Encoder(cfg, frozenset(spec.get("stopwords", ())), _read_json(folder, "vocab.json"), maxlen,
                   padding, truncating)


class Classifier:
    """A model bundle, loaded: `predict(texts)` gives a DataFrame of label, probabilities, flag."""

    def __init__(self, model: Any, labels: list[str], encoder: Encoder, batch_size: int = 512,
                 folder: Path | None = None) -> None:
        from pipeline.evaluate import compiled_forward

        self.model, self.labels, self.encoder, self.batch_size = model, labels, encoder, batch_size
        self.forward = compiled_forward(model)
        self.folder = folder   # where it was loaded from

    @classmethod
    def load(cls, folder: str | Path, batch_size: int = 512) -> Classifier:
        import keras

        import pipeline.models  # noqa: F401  (registers the custom layers for loading)

        folder = Path(folder)
        check_bundle(folder)
        encoder = load_encoder(folder)
        model = keras.models.load_model(folder / "model.keras", compile=False)
        # TensorFlow leaves millions of long-lived Python objects that every full garbage collection
        # walks again, while tokenizing allocates fast: measured, Okt ran 2x slower after
        # `import tensorflow` (20,000 NSMC reviews: 19.0 s, 7.6 s with the objects frozen).
        gc.freeze()
        return cls(model, _read_json(folder, "labels.json"), encoder, batch_size, folder)

    def warm_up(self) -> None:
        """The analyzer started and the forward pass traced, so the first request is not slower."""
        self.encoder.warm_up()
        self.forward(np.zeros((1, 1), np.int32))

    def predict_proba(self, texts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities [n, classes] and token counts per text."""
        from pipeline.evaluate import predict_proba

        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros(0, np.int32)
        x, lengths = self.encoder.encode(texts)
        return predict_proba(self.model, x, lengths, self.encoder.padding, self.batch_size, self.forward), lengths

    def predict(self, texts: Sequence[Any]) -> pd.DataFrame:
        proba, lengths = self.predict_proba(texts)
        out = pd.DataFrame({PREDICTED: np.asarray(self.labels, dtype=object)[proba.argmax(1)]})
        for i, label in enumerate(self.labels):
            out[proba_column(label)] = proba[:, i].astype(np.float64)
        out[EMPTY] = lengths == 0
        return out
