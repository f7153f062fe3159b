"""A tiny, learnable prepared dataset: in memory (Prepared) or as the prepare stage's files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# The tiny model the tests train: a one-way GRU(8) on 8-dim embeddings straight into the output layer.
# Spelled out in full because the code's defaults are params.yaml's (a bidirectional GRU(64), dropout
# 0.5, a hidden Dense(16)): a test says which model it trains.
TINY_MODEL = {"cell": "gru", "bidirectional": False, "layers": 1, "units": 8, "embedding_dim": 8,
              "one_hot": False, "dropout": 0.0, "recurrent_dropout": 0.0, "dense_units": 0, "mask": True,
              "pooling": "last", "embedding_dropout": 0.0}


def tiny_model(**overrides):
    """ModelParams of TINY_MODEL with some values changed."""
    from pipeline.core.config import ModelParams

    return ModelParams(**{**TINY_MODEL, **overrides})


def tiny_train(**overrides):
    """TrainParams for the tiny model: 3 epochs of batches of 16, Adam at 0.001, no early stopping."""
    from pipeline.core.config import TrainParams

    values = {"model": tiny_model(), "epochs": 3, "batch_size": 16, "optimizer": "adam",
              "learning_rate": 0.001, "early_stopping_patience": 0, "seed": 3, "ensemble": 1, **overrides}
    return TrainParams(**values)


def tiny_data(n: int = 192, maxlen: int = 12, vocab: int = 30, seed: int = 0):
    """Class 1 rows contain token 3, class 0 rows token 4; lengths vary (post-padded)."""
    from pipeline.data.prepared import Prepared

    rng = np.random.default_rng(seed)

    def split(n_rows: int) -> dict:
        y = rng.integers(0, 2, n_rows).astype(np.int32)
        lengths = rng.integers(2, maxlen + 1, n_rows).astype(np.int32)
        x = np.zeros((n_rows, maxlen), np.int32)
        for i, (label, n_tok) in enumerate(zip(y, lengths)):
            row = rng.integers(5, vocab, n_tok)
            row[rng.integers(0, n_tok)] = 3 if label else 4
            x[i, :n_tok] = row
        return {"x": x, "y": y, "length": lengths, "raw_length": lengths}

    return Prepared(split(n), split(64), vocab, ["0", "1"], "post", maxlen)


# The vocabulary is w0..w29, so the raw text "w3 w7" encodes to [3, 7] with this spec.
TINY_PREPROCESS = {"tokenize": {"analyzer": "whitespace"}, "stopwords": [], "examples": ["w3 w7 w9", "w4 w8"]}


def write_prepared(folder: Path, n: int = 192, maxlen: int = 12, vocab: int = 30, seed: int = 0) -> None:
    """data/prepared as the prepare stage writes it (train / val / test, vocab, labels, params)."""
    data = tiny_data(n, maxlen, vocab, seed)
    test = tiny_data(64, maxlen, vocab, seed + 1).val
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", data.train), ("val", data.val), ("test", test)):
        np.savez(folder / f"{name}.npz", **split)
    (folder / "vocab.json").write_text(json.dumps({f"w{i}": i for i in range(vocab)}))
    (folder / "labels.json").write_text(json.dumps(data.labels))
    (folder / "params.json").write_text(json.dumps(
        {"prepare": {"maxlen": maxlen, "padding": "post", "truncating": "pre"}}))
    (folder / "preprocess.json").write_text(json.dumps(TINY_PREPROCESS))


TABLE_CLASSES = ("경제", "복지", "행정")


def write_table_project(root: Path, extra_params: str = "") -> None:
    """questions.csv (8 questions per class) and a params.yaml that downloads, tokenizes (whitespace:
    no JVM) and prepares it as a `table` dataset; `extra_params` is appended (e.g. a train section)."""
    lines = ["text,label"] + [f"{label} 문의 {i} 관련 질문,{label}" for label in TABLE_CLASSES for i in range(8)]
    (root / "questions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "params.yaml").write_text(
        "dataset:\n  name: table\n  classes: []\n  table:\n    source: questions.csv\n"
        "    text_columns: [text]\n    label_column: label\n"
        "tokenize:\n  analyzer: whitespace\n  pos_drop: []\n  workers: 1\n"
        "prepare:\n  maxlen: 4\n  val_size: 0.25\n  test_size: 0.25\n" + extra_params, encoding="utf-8")
