"""data/prepared/: the arrays, vocabulary and labels the prepare stage writes and training reads.

{train,val,test}.npz (x: int32 [n, maxlen], y: int32, length: tokens kept after truncation,
raw_length: tokens before it, id), vocab.json (token -> id; PAD=0, OOV=1), labels.json (class id ->
label), params.json (the dataset, tokenize and prepare params), preprocess.json (how raw text
becomes tokens: what a model needs to label new text; with prepare.subword, its `subword` entry
holds the sentencepiece model that cuts the tokens into the pieces the vocabulary holds).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from pipeline.core import paths
from pipeline.core.atomic import atomic_dir
from pipeline.core.errors import StageError, reading
from pipeline.core.records import ModelRecord, PrepareCut, PreparedRecord, read_prepared_record
from pipeline.data.sequences import shorten
from pipeline.data.subword import SUBWORD_KEY, Subword


@dataclass(frozen=True)
class Cut:
    """How a model's token ids are cut and padded, resolved once from the records that say it: the
    prepared length, or train.maxlen's shorter one; the side padded; the side cut (data prepared
    before truncation was a setting was cut at the front)."""
    maxlen: int
    padding: str
    truncating: str = "pre"

    @classmethod
    def of(cls, prepare: PrepareCut | Mapping[str, Any], train_maxlen: int | None = 0) -> Cut:
        """From the `prepare` record of a prepared params.json (PreparedRecord.prepare; a mapping is
        read as one); train.maxlen > 0 replaces its maxlen."""
        prepare = PrepareCut.model_validate(prepare)
        return cls(int(train_maxlen or 0) or prepare.maxlen, prepare.padding, prepare.truncating)

    @classmethod
    def of_model(cls, record: ModelRecord | Mapping[str, Any]) -> Cut:
        """From a model bundle's params.json (ModelRecord; a mapping is read as one)."""
        record = ModelRecord.model_validate(record)
        return cls.of(record.prepared.prepare, record.train.maxlen)


@dataclass(frozen=True)
class Prepared:
    train: dict
    val: dict
    vocab_size: int
    labels: list[str]
    padding: str
    maxlen: int
    truncating: str = "pre"

    def cut(self, maxlen: int) -> Prepared:
        """The splits as if prepare had used a shorter maxlen (train.maxlen; 0 keeps them)."""
        if not maxlen or maxlen == self.maxlen:
            return self
        if maxlen > self.maxlen:
            raise StageError(f"train.maxlen: {maxlen} is above the prepared length (prepare.maxlen "
                             f"{self.maxlen}): raise prepare.maxlen or lower train.maxlen")
        return dataclasses.replace(
            self, maxlen=maxlen, train=shorten(self.train, maxlen, self.padding, self.truncating),
            val=shorten(self.val, maxlen, self.padding, self.truncating))

    def with_val_in_train(self) -> Prepared:
        """train + val as the training split (train.refit); val stays as it was, now seen in training."""
        both = {k: np.concatenate([self.train[k], self.val[k]]) for k in self.train if k in self.val}
        return dataclasses.replace(self, train=both)


def read_cut(folder: Path = paths.PREPARED_DIR) -> Cut:
    """The prepared data's cut, from its params.json (one DataError if missing, damaged or invalid)."""
    return Cut.of(read_prepared_record(folder).prepare)


def load_prepared(folder: Path = paths.PREPARED_DIR) -> Prepared:
    """The train and val splits with what training needs to know of them; a file missing, truncated or
    not what prepare writes is one DataError naming it."""
    if not (folder / "train.npz").is_file():
        raise StageError(f"{folder}/train.npz: missing; run the prepare stage first (dvc repro prepare)")

    def read(name: str, load):
        with reading(folder / name, "prepare", folder):
            return load(folder / name)

    def arrays(path: Path) -> dict:
        with np.load(path) as npz:
            return dict(npz)   # every array read whole: a truncated one fails here

    def text(path: Path):
        return json.loads(path.read_text(encoding="utf-8"))

    splits = {s: read(f"{s}.npz", arrays) for s in ("train", "val")}
    vocab = read("vocab.json", text)
    labels = read("labels.json", text)
    cut = read_cut(folder)
    return Prepared(splits["train"], splits["val"], len(vocab), labels, cut.padding, cut.maxlen, cut.truncating)


def data_fingerprint(prepared_dir: Path) -> str:
    """A digest of what training reads from the prepared data."""
    h = hashlib.sha256()
    for name in ("train.npz", "val.npz", "vocab.json"):
        h.update((prepared_dir / name).read_bytes())
    return h.hexdigest()


def write_prepared(folder: Path, arrays: dict, vocab: dict, labels: list[str], record: PreparedRecord | Mapping,
                   preprocess: dict, subword: Subword | None = None) -> None:
    """The whole folder, atomically: `record` is the params that made it (params.json, a PreparedRecord
    as read_prepared_record reads it); a subword model goes into preprocess.json, so it travels
    wherever the preprocessing does."""
    record = PreparedRecord.model_validate(record)
    if subword is not None:
        preprocess = {**preprocess, SUBWORD_KEY: subword.spec()}
    def dump(target: Path, data, indent: int | None = None) -> None:
        target.write_text(json.dumps(data, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")

    with atomic_dir(folder) as tmp:
        dump(tmp / "preprocess.json", preprocess, indent=2)
        for split, arr in arrays.items():
            np.savez(tmp / f"{split}.npz", **arr)
        dump(tmp / "vocab.json", vocab)
        dump(tmp / "labels.json", labels)
        dump(tmp / "params.json", record.as_json(), indent=2)
