"""A model bundle: a folder (models/ after `dvc repro`) with everything needed to label raw text.

  model.keras      the trained network
  vocab.json       token -> id (0 = padding, 1 = out of vocabulary)
  labels.json      class id -> label name
  params.json      the train params (train.maxlen) and the prepared data's (maxlen, padding, truncating):
                   pipeline/core/records.py's ModelRecord
  preprocess.json  the tokenize params (normaliser, analyzer, POS filters) and the resolved stopwords;
                   with prepare.subword, the sentencepiece model that cut the tokens into pieces
  linear.skops     the linear model (TF-IDF n-grams + logistic regression, pipeline/model/linear.py),
  linear.json      with the versions that wrote it
  champion.json    which of them serves (rnn, linear, or their blend and its weight), chosen on
                   validation by the train stage (pipeline/model/champion.py); absent: the RNN
                   (records.py's ChampionRecord)
The train stage writes it (`save_bundle`); serving reads it (`load_encoder`): the text goes through
tokenize_texts, Subword.pieces and encode_pad, the functions the tokenize and prepare stages ran;
the linear model reads the tokens before Subword.pieces, as it read data/tokens.parquet.
models/ holds every candidate's parts, so the evaluate stage can score each; a bundle logged to
MLflow holds only what its kind serves with (`kind_files`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.core.config import ParamsError, TokenizeParams, TrainParams, parse_params, to_dict
from pipeline.core.errors import StageError
from pipeline.core.records import (
    CHAMPION_FILE,
    PARAMS_FILE,
    ModelRecord,
    TrainCut,
    read_champion,
    read_model_record,
    read_prepared_record,
    write_record,
)
from pipeline.core.records import bundle_hint as rebuild_hint
from pipeline.data.prepared import Cut
from pipeline.data.sequences import encode_pad
from pipeline.data.subword import SUBWORD_KEY, Subword
from pipeline.model.linear import LINEAR_FILE, LINEAR_INFO
from pipeline.text.analyzers import shared
from pipeline.text.tokenizer import MemoryCache, analyzer_spec, tokenize_texts

BUNDLE_FILES = ("model.keras", "vocab.json", "labels.json", "params.json", "preprocess.json")   # the RNN's
COMMON_FILES = ("labels.json", "preprocess.json")
KIND_FILES = {"rnn": BUNDLE_FILES, "linear": (*COMMON_FILES, LINEAR_FILE, LINEAR_INFO),
              "blend": (*BUNDLE_FILES, LINEAR_FILE, LINEAR_INFO)}


@dataclass(frozen=True)
class Served:
    """What a bundle serves: its kind and the RNN's weight in the probabilities (1 rnn, 0 linear)."""
    kind: str = "rnn"
    weight: float = 1.0


def served(folder: Path) -> Served:
    """champion.json's kind and weight (read_champion); a bundle without it (written before the
    champion) is the RNN."""
    champion = read_champion(folder)
    return Served(champion.kind, champion.weight)


def kind_files(kind: str) -> tuple[str, ...]:
    """The files a bundle of this kind serves with, champion.json included."""
    return (*KIND_FILES[kind], CHAMPION_FILE)


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
    subword: Subword | None = None   # prepare.subword's model: tokens -> the pieces the vocabulary holds

    def analyze(self, texts: Sequence[Any]) -> list[list[str]]:
        """The analyzer's tokens after the filters, as data/tokens.parquet holds them (the linear model's input)."""
        found, _ = tokenize_texts([as_text(t) for t in texts], self.tokenize, None, self.stopwords,
                                  progress=False, memory=self.memory)
        return [t or [] for t in found]

    def tokens(self, texts: Sequence[Any]) -> list[list[str]]:
        """The units the vocabulary holds: the analyzer's tokens, or their subword pieces."""
        return self.units(self.analyze(texts))

    def units(self, tokens: list[list[str]]) -> list[list[str]]:
        return tokens if self.subword is None else self.subword.pieces(tokens)

    def encode(self, texts: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Ids [n, maxlen] and token counts (0: nothing left of the text)."""
        return self.encode_tokens(self.analyze(texts))

    def encode_tokens(self, tokens: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """encode() of texts already analyzed."""
        x, kept, _, _ = encode_pad(self.units(tokens), self.vocab, self.maxlen, self.padding, self.truncating)
        return x, kept

    def warm_up(self) -> None:
        """Start the analyzer (the JVM, its dictionaries, their lazy first call) now rather than
        on the first request."""
        shared(analyzer_spec(self.tokenize))(["가나다 warm up"])


def _read_json(folder: Path, name: str) -> Any:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except ValueError as exc:   # UnicodeDecodeError included
        raise StageError(f"{folder / name}: not valid JSON ({' '.join(str(exc).split())}); "
                         f"{rebuild_hint(folder)}") from None


def check_bundle(folder: Path, kind: str = "rnn") -> None:
    """A folder with every file its kind serves with (model.keras and linear.skops are checked as they
    are loaded: load_model_file, load_linear)."""
    if folder.is_file():
        raise StageError(f"{folder}: a file, not a model folder (a bundle is the folder the train stage "
                         "writes, models/)")
    if not folder.is_dir():
        raise StageError(f"{folder}: no such model folder")
    missing = [name for name in KIND_FILES[kind] if not (folder / name).is_file()]
    if missing:
        raise StageError(f"{folder}: not a model bundle, {', '.join(missing)} missing (a bundle is what "
                         "the train stage writes to models/)")


def load_encoder(folder: Path, ids: bool = True) -> Encoder:
    """The bundle's preprocessing. `ids=False`: only the tokens (a linear model's bundle has no
    vocabulary; `encode` is then not for use)."""
    spec = _read_json(folder, "preprocess.json")
    cut = Cut.of_model(read_model_record(folder)) if ids else Cut(0, "post")
    try:
        cfg = parse_params({"tokenize": spec["tokenize"]}, str(folder / "preprocess.json")).tokenize
    except (KeyError, TypeError) as exc:
        raise StageError(f"{folder}: preprocess.json lacks {exc}; train the model again") from None
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
    cfg = cfg.model_copy(update={"stopwords_file": "", "worker_kind": kind,
                                 "workers": cfg.workers if kind == "thread" else 1})
    subword = None
    if spec.get(SUBWORD_KEY) is not None:
        subword = Subword.from_spec(spec[SUBWORD_KEY], f"{folder / 'preprocess.json'}")
    vocab = _read_json(folder, "vocab.json") if ids else {}
    return Encoder(cfg, frozenset(spec.get("stopwords", ())), vocab, cut.maxlen, cut.padding, cut.truncating,
                   subword=subword)


def save_bundle(folder: Path, model, prepared_dir: Path, cfg: TrainParams) -> None:
    """What pipeline/predictor.py needs to label raw text: the model and how its input was made."""
    model.save(folder / "model.keras")
    for name in ("vocab.json", "labels.json", "preprocess.json"):
        shutil.copyfile(prepared_dir / name, folder / name)
    write_record(folder / PARAMS_FILE, ModelRecord(train=TrainCut.model_validate(to_dict(cfg)),
                                                   prepared=read_prepared_record(prepared_dir)))
