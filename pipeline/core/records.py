"""The JSON records one stage writes and others read, as typed models with one loader each.

  data/prepared/params.json  PreparedRecord, read_prepared_record: the dataset, tokenize and prepare
                             params that made the prepared data (the prepare stage writes it)
  models/params.json         ModelRecord, read_model_record: the train params and the prepared
                             data's record (save_bundle, pipeline/serve/bundle.py)
  models/champion.json       ChampionRecord, read_champion: which candidate serves and the RNN's
                             weight, with every candidate's validation figures (the train stage:
                             Choice.as_json, pipeline/model/champion.py)

A record keeps every key it was read with, typed or not, in the order written: `as_json()` is the
record as its writer wrote it, nothing added (a prepared record copied into a bundle stays as prepare
wrote it). Older records still read: prepared params without prepare.truncating were cut at the front
("pre"); a bundle without champion.json serves the RNN. A file missing, damaged or not what its
writer writes is one error naming it and how to get it back (read_record).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_serializer, model_validator

from pipeline.core import paths
from pipeline.core.atomic import write_json
from pipeline.core.errors import DataError, PipelineError, StageError, reading

PARAMS_FILE = "params.json"
CHAMPION_FILE = "champion.json"

Side = Literal["pre", "post"]
Length = Annotated[int, Field(strict=True, ge=0)]


class Record(BaseModel):
    """A record as written: frozen, every key kept (the untyped ones too), dumped in the order read."""
    model_config = ConfigDict(frozen=True, extra="allow", ser_json_inf_nan="constants")
    _keys: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_key_order(cls, data: Any, handler):
        record = handler(data)
        if isinstance(data, dict):
            record._keys = tuple(data)
        return record

    @model_serializer(mode="wrap")
    def _in_written_order(self, handler) -> dict:
        out = handler(self)
        return {**{key: out[key] for key in self._keys if key in out}, **out}

    def __eq__(self, other: object) -> bool:   # the same record, whatever order its keys were read in
        return type(other) is type(self) and self.model_dump() == other.model_dump()

    def as_json(self) -> dict:
        """The record as JSON data: the keys it was read or made with, in that order (no defaults added)."""
        return self.model_dump(mode="json", exclude_unset=True)


class PrepareCut(Record):
    """The prepare params a model's ids are cut by (the prepare stage writes all its params here)."""
    maxlen: Annotated[int, Field(strict=True, gt=0)]
    padding: Side
    truncating: Side = "pre"   # data prepared before truncation was a setting was cut at the front


class PreparedRecord(Record):
    """data/prepared/params.json: the params that made the prepared data."""
    dataset: dict[str, Any] = {}
    tokenize: dict[str, Any] = {}
    prepare: PrepareCut


class TrainCut(Record):
    """The train params a model's ids are cut by (save_bundle writes all of them here)."""
    maxlen: Length = 0   # 0: the prepared length


class ModelRecord(Record):
    """A model bundle's params.json: {"train": <train params>, "prepared": <prepared params.json>}."""
    train: TrainCut = TrainCut()
    prepared: PreparedRecord


class ChampionRecord(Record):
    """champion.json: the served candidate (rnn, linear or blend), the RNN's weight in the served
    probabilities (rnn 1, linear 0, blend between), and how it was chosen (Choice's fields)."""
    kind: Literal["rnn", "linear", "blend"]
    weight: float
    runner_up: str | None = None
    select_by: str = ""
    selected_on: str = ""
    rows: int = 0
    candidates: dict[str, dict[str, float]] = {}   # kind -> val/accuracy, val/loss (blend: and weight)
    grid: list[dict[str, float]] = []
    best: str | None = None
    lead_se: dict[str, float] = {}
    named: bool = False

    @model_validator(mode="before")
    @classmethod
    def _a_champion(cls, data: Any) -> Any:
        kind = data.get("kind") if isinstance(data, dict) else None
        weight = data.get("weight") if isinstance(data, dict) else None
        if kind not in ("rnn", "linear", "blend") or isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not 0 <= weight <= 1 or (kind != "blend" and weight != (kind == "rnn")):
            raise ValueError(f"kind {kind!r} with weight {weight!r} is not a champion (rnn with 1, linear with 0, "
                             "or blend with 0 < weight < 1)")
        return data

    @model_validator(mode="after")
    def _among_candidates(self) -> ChampionRecord:
        if self.candidates and self.kind not in self.candidates:
            raise ValueError(f"kind {self.kind!r} is not among its candidates ({', '.join(self.candidates)})")
        if "weight" not in self.candidates.get("blend", {"weight": 0}):
            raise ValueError("candidates.blend: no weight")
        return self


THE_RNN = ChampionRecord(kind="rnn", weight=1.0)   # what a bundle without champion.json serves

R = TypeVar("R", bound=Record)


def read_record(model: type[R], path: Path, writer: str, hint: str, error: type[PipelineError] = DataError) -> R:
    """The `model` record in `path`, which the `writer` stage writes. A missing file, one cut short or
    not JSON, and one whose content is not the record are each one `error` naming the file and (the
    last) the key; `hint` says how to get a sound copy."""
    with reading(path, writer, hint=hint, error=error):   # UnicodeDecodeError, JSONDecodeError, a folder
        data = json.loads(path.read_text(encoding="utf-8"))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{path}: {_problem(exc)}; {hint}") from None


def _problem(exc: ValidationError) -> str:
    """The first thing wrong, as `key: what` (a validator's own message as it is)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        said = f"{where}: missing"
    elif first["type"] == "value_error":
        said = f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"
    elif not where:
        said = f"not a JSON object (got {_short(first['input'])})"
    else:
        said = f"{where}: {first['msg'][0].lower()}{first['msg'][1:]} (got {_short(first['input'])})"
    return said + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list, str, int, float, type(None))) \
        else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bundle_hint(folder: Path) -> str:
    """How to get a sound copy of a bundle's files: from DVC, or (a bundle inside an MLflow model,
    as MLflow downloads it) by logging the model again."""
    if (folder.parent.parent / "MLmodel").is_file():   # <model>/artifacts/bundle
        return "log the model again (the train stage logs and registers it)"
    return "rebuild it with `dvc repro train` or `dvc checkout models`"


def read_prepared_record(folder: Path = paths.PREPARED_DIR) -> PreparedRecord:
    """data/prepared/params.json; a missing, damaged or invalid one is one DataError naming it."""
    return read_record(PreparedRecord, folder / PARAMS_FILE, "prepare",
                       f"rebuild it with `dvc repro prepare` or `dvc checkout {folder}`")


def read_model_record(folder: Path = paths.MODELS_DIR) -> ModelRecord:
    """A model bundle's params.json; a missing, damaged or invalid one is one StageError naming it."""
    return read_record(ModelRecord, folder / PARAMS_FILE, "train", bundle_hint(folder), StageError)


def read_champion(folder: Path = paths.MODELS_DIR, required: bool = False) -> ChampionRecord:
    """A model bundle's champion.json; without one (a bundle from before the champion) the RNN, or with
    `required` one StageError. A damaged or invalid one is one StageError naming it."""
    path = folder / CHAMPION_FILE
    if not path.exists():
        if required:
            raise StageError(f"{path}: missing ({folder}/ was trained before the champion existed); run the "
                             "train stage again (dvc repro train)")
        return THE_RNN
    return read_record(ChampionRecord, path, "train", bundle_hint(folder), StageError)


def write_record(path: Path, record: Record) -> None:
    """The record as its file holds it, written as every JSON output is (write_json)."""
    write_json(path, record.as_json())
