"""params.yaml, read once into typed, frozen objects.

Every section is a frozen dataclass. `load_params` checks the whole file at start-up: an unknown
key, a wrong type or an out-of-range value raises `ParamsError` with one line naming the key and
what is allowed, before any stage does work.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

DATASETS = ("seoul120", "nsmc", "imdb", "reuters", "table")
ANALYZERS = ("okt", "komoran", "kkma", "hannanum", "mecab", "char", "whitespace", "english")
TAGGED_ANALYZERS = ("okt", "komoran", "kkma", "hannanum", "mecab")


class ParamsError(ValueError):
    """A bad params.yaml: the message is one line naming the key."""


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False) -> dict:
    return {"range": (lo, hi, lo_open, hi_open)}


@dataclass(frozen=True)
class TableSource:
    """The user's own file, used when dataset.name is `table`."""
    source: str = ""                 # local path or http(s) URL of a CSV / TSV / JSONL / Parquet file
    sha256: str = ""                 # optional pin of the file's sha256
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = "auto"
    text_columns: tuple[str, ...] = ()   # joined with a space, like the tutorials' 제목 + 내용
    label_column: str = ""
    id_column: str = ""              # empty: row numbers
    encoding: str = "utf-8"


@dataclass(frozen=True)
class DatasetParams:
    name: Literal["seoul120", "nsmc", "imdb", "reuters", "table"] = "seoul120"
    classes: tuple[str, ...] = ()    # keep only these labels (empty: all)
    table: TableSource = field(default_factory=TableSource)


@dataclass(frozen=True)
class DownloadParams:
    retries: int = field(default=3, metadata=_range(0, 20))
    timeout: float = field(default=60.0, metadata=_range(0, None, lo_open=True))
    backoff: float = field(default=2.0, metadata=_range(0, 600))


@dataclass(frozen=True)
class TokenizeParams:
    unicode: Literal["NFC", "NFKC", "none"] = "NFKC"
    lowercase: bool = False
    strip_html: bool = False         # <br /> and other tags become spaces (IMDB)
    clean_pattern: str = ""          # regex; each match becomes a space, e.g. "[^ㄱ-ㅎㅏ-ㅣ가-힣 ]"
    max_chars: int = field(default=5000, metadata=_range(1, None))
    analyzer: Literal["okt", "komoran", "kkma", "hannanum", "mecab", "char", "whitespace",
                      "english"] = "okt"
    norm: bool = False               # okt only: normalise slang/typos
    stem: bool = True                # okt only: verbs and adjectives to their dictionary form
    pos_keep: tuple[str, ...] = ()   # keep only tokens whose tag matches (fnmatch: "N*", "Noun")
    pos_drop: tuple[str, ...] = ()   # drop tokens whose tag matches
    stopwords: tuple[str, ...] = ()
    stopwords_file: str = ""         # one word a line, beside params.yaml
    workers: int = field(default=0, metadata=_range(0, 256))   # 0: one per CPU core
    # auto: threads in one JVM for Okt (one JIT warm-up, shared dictionaries), processes otherwise
    worker_kind: Literal["auto", "process", "thread"] = "auto"
    java_heap_mb: int = field(default=2048, metadata=_range(256, 65536))


@dataclass(frozen=True)
class VocabParams:
    max_size: int = field(default=20000, metadata=_range(3, None))   # including PAD and OOV
    min_freq: int = field(default=1, metadata=_range(1, None))


@dataclass(frozen=True)
class PrepareParams:
    seed: int = 42
    val_size: float = field(default=0.1, metadata=_range(0, 1, lo_open=True, hi_open=True))
    test_size: float = field(default=0.1, metadata=_range(0, 1, lo_open=True, hi_open=True))
    keep_official_test: bool = True  # nsmc / imdb / reuters ship a test file: use it as the test split
    vocab: VocabParams = field(default_factory=VocabParams)
    maxlen: int = field(default=100, metadata=_range(1, 100000))
    padding: Literal["pre", "post"] = "post"   # post + masking keeps the fused cuDNN kernels usable
    truncating: Literal["pre", "post"] = "pre"


@dataclass(frozen=True)
class ModelParams:
    """Hyperparameters of the recurrent classifier (pipeline/models.py builds it)."""
    cell: Literal["simple_rnn", "lstm", "gru"] = "gru"
    bidirectional: bool = False
    layers: int = field(default=1, metadata=_range(1, 8))      # stacked; return_sequences on all but the last
    units: int = field(default=64, metadata=_range(1, 4096))
    embedding_dim: int = field(default=128, metadata=_range(1, 4096))   # unused with one_hot
    one_hot: bool = False             # the seeds' one-hot SimpleRNN input instead of an Embedding
    dropout: float = field(default=0.0, metadata=_range(0, 1, hi_open=True))
    recurrent_dropout: float = field(default=0.0, metadata=_range(0, 1, hi_open=True))
    dense_units: int = field(default=0, metadata=_range(0, 4096))      # hidden Dense(relu); 0: none
    mask: bool = True                 # skip padded steps (mask_zero)


@dataclass(frozen=True)
class TrainParams:
    model: ModelParams = field(default_factory=ModelParams)
    epochs: int = field(default=10, metadata=_range(1, 10000))
    batch_size: int = field(default=64, metadata=_range(1, 65536))     # per replica
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: float = field(default=1e-3, metadata=_range(0, 10, lo_open=True))
    scale_learning_rate: bool = False  # multiply by the number of replicas
    class_weight: Literal["none", "balanced"] = "none"
    early_stopping_patience: int = field(default=3, metadata=_range(0, 1000))   # 0: off
    distribute: Literal["auto", "mirrored", "multi_worker", "none"] = "auto"
    devices: tuple[str, ...] = ()     # mirrored: e.g. [/gpu:0, /gpu:1]; empty: every GPU
    bucket_by_length: bool = True     # batch similar lengths, pad per batch instead of to maxlen
    maxlen: int = field(default=0, metadata=_range(0, 100000))   # re-cut to this many tokens; 0: prepare.maxlen
    seed: int = 42
    deterministic: bool = False       # TF op determinism (slower)
    use_tuned: bool = True            # merge tune/best_params.json (the tune stage's best trial) over these


# Keys of the train section a study may vary (tune.space); the rest define the experiment itself.
TUNABLE_TRAIN_KEYS = ("epochs", "batch_size", "optimizer", "learning_rate", "scale_learning_rate",
                      "class_weight", "early_stopping_patience", "bucket_by_length", "maxlen")


@dataclass(frozen=True)
class SearchDim:
    """One hyperparameter's range in tune.space, as Optuna's suggest_int / suggest_float / suggest_categorical."""
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False                 # sample on a log scale (learning rates, unit counts)
    step: float | None = None         # int / float: a grid step
    choices: tuple[Any, ...] = ()     # categorical: the values, of the key's type


@dataclass(frozen=True)
class TuneParams:
    n_trials: int = field(default=20, metadata=_range(0, 1000000))   # the study's total; 0: no tuning
    timeout: float = field(default=0.0, metadata=_range(0, None))     # seconds per invocation; 0: none
    epochs: int = field(default=0, metadata=_range(0, 10000))         # per trial; 0: train.epochs
    subsample: float = field(default=1.0, metadata=_range(0, 1, lo_open=True))   # of the training split
    metric: Literal["val/accuracy", "val/loss"] = "val/accuracy"
    sampler_seed: int = 42
    startup_trials: int = field(default=5, metadata=_range(0, 100000))   # random trials before TPE
    pruner: Literal["median", "hyperband", "none"] = "median"
    warmup_epochs: int = field(default=2, metadata=_range(0, 10000))    # median: never prune before
    storage: str = ""                 # "": sqlite tune/optuna.db; journal:<file>; an RDB URL ($OPTUNA_STORAGE wins)
    study_name: str = ""              # "": derived from the dataset, the space and the data
    space: Mapping[str, SearchDim] = field(default_factory=dict)   # train keys -> ranges


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = field(default=256, metadata=_range(1, 65536))


@dataclass(frozen=True)
class Params:
    dataset: DatasetParams = field(default_factory=DatasetParams)
    download: DownloadParams = field(default_factory=DownloadParams)
    tokenize: TokenizeParams = field(default_factory=TokenizeParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    train: TrainParams = field(default_factory=TrainParams)
    tune: TuneParams = field(default_factory=TuneParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    return check_params(raw or {}, source=str(path))


def read_yaml(path: Path) -> Any:
    """A YAML file's data; bad YAML is a one-line ParamsError naming the file. A missing file
    raises FileNotFoundError, which each caller words for its own kind of file."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None


def check_params(raw: Any, source: str) -> Params:
    """Typed params from a raw mapping, with every check load_params makes; errors name `source`."""
    params = parse_params(raw, source=source)
    _check_cross_fields(params, source)
    return params


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    return _build(Params, raw, prefix="", source=source)


def to_dict(obj: Any) -> Any:
    """The resolved params as plain YAML/JSON-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


def override(train: TrainParams, values: Mapping[str, Any], source: str) -> TrainParams:
    """`train` with dotted keys ("model.units", "learning_rate") replaced, checked like params.yaml."""
    merged = to_dict(train)
    for key, value in values.items():
        _check_tunable(key, key, source)
        *parents, leaf = key.split(".")
        target = merged
        for part in parents:
            target = target[part]
        target[leaf] = value
    return _build(TrainParams, merged, prefix="train.", source=source)


def tunable_keys() -> tuple[str, ...]:
    model = tuple(f"model.{f.name}" for f in dataclasses.fields(ModelParams))
    return model + TUNABLE_TRAIN_KEYS


def _check_tunable(key: str, where: str, source: str) -> None:
    if key not in tunable_keys():
        raise ParamsError(f"{source}: {where}: not a tunable train key (allowed: {', '.join(tunable_keys())})")


def _train_field(key: str) -> tuple[Any, Any]:
    """(type, metadata) of a dotted train key."""
    cls, *parents = TrainParams, *key.split(".")[:-1]
    for part in parents:
        cls = typing.get_type_hints(cls)[part]
    f = {f.name: f for f in dataclasses.fields(cls)}[key.split(".")[-1]]
    return typing.get_type_hints(cls)[f.name], f.metadata


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: {where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, raw)) - set(fields))
    if unknown:
        raise ParamsError(f"{source}: {prefix}{unknown[0]}: unknown key "
                          f"(allowed in {where}: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _coerce(hints[name], raw[name], f"{prefix}{name}", f.metadata, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{source}: {prefix}{name}: required")
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str, meta: Any, source: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, prefix=f"{key}.", source=source)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(inner[0], value, key, meta, source)
    if origin is collections.abc.Mapping:
        if value is None:
            return types.MappingProxyType({})
        if not isinstance(value, dict):
            raise ParamsError(f"{source}: {key}: expected a mapping, got {value!r}")
        inner = typing.get_args(tp)[1]
        return types.MappingProxyType({str(k): _coerce(inner, v, f"{key}.{k}", {}, source)
                                       for k, v in value.items()})
    if origin is tuple and typing.get_args(tp)[0] is Any:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ParamsError(f"{source}: {key}: expected a list, got {value!r}")
        bad = [v for v in value if not isinstance(v, (str, int, float, bool))]
        if bad:
            raise ParamsError(f"{source}: {key}: expected plain values (text, numbers, true/false), "
                              f"got item {bad[0]!r}")
        return tuple(value)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ParamsError(f"{source}: {key}: got {value!r}, allowed: {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise ParamsError(f"{source}: {key}: expected a list of strings, got {value!r}")
        bad = [v for v in value if not isinstance(v, (str, int)) or isinstance(v, bool)]
        if bad:
            raise ParamsError(f"{source}: {key}: expected a list of strings, got item {bad[0]!r}")
        return tuple(str(v) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{source}: {key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{source}: {key}: expected an integer{_range_text(meta)}, got {value!r}")
        _check_range(value, key, meta, source, "an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{source}: {key}: expected a number{_range_text(meta)}, got {value!r}")
        _check_range(float(value), key, meta, source, "a number")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ParamsError(f"{source}: {key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation for {key}: {tp}")


def _range_text(meta: Any) -> str:
    if "range" not in meta:
        return ""
    lo, hi, lo_open, hi_open = meta["range"]
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    return " " + " and ".join(parts)


def _check_range(value: float, key: str, meta: Any, source: str, kind: str) -> None:
    if "range" not in meta:
        return
    lo, hi, lo_open, hi_open = meta["range"]
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and (value >= hi if hi_open else value > hi)
    if too_low or too_high:
        raise ParamsError(f"{source}: {key}: expected {kind}{_range_text(meta)}, got {value!r}")


def _check_cross_fields(p: Params, source: str) -> None:
    """Rules that involve more than one key."""
    t = p.tokenize
    if t.worker_kind == "thread" and t.analyzer in ("komoran", "kkma", "hannanum", "mecab"):
        raise ParamsError(f"{source}: tokenize.worker_kind: thread is only safe with okt; "
                          f"{t.analyzer} keeps state per instance: use process or auto")
    if (t.pos_keep or t.pos_drop) and t.analyzer not in TAGGED_ANALYZERS:
        key = "tokenize.pos_keep" if t.pos_keep else "tokenize.pos_drop"
        raise ParamsError(f"{source}: {key}: the {t.analyzer!r} analyzer has no part-of-speech tags "
                          f"(POS filters work with: {', '.join(TAGGED_ANALYZERS)})")
    if t.clean_pattern:
        import re
        try:
            re.compile(t.clean_pattern)
        except re.error as exc:
            raise ParamsError(f"{source}: tokenize.clean_pattern: not a valid regular expression: {exc}") from None
    _check_space(p.tune.space, source)
    if p.prepare.val_size + p.prepare.test_size >= 1:
        raise ParamsError(f"{source}: prepare.val_size + prepare.test_size must be < 1, got "
                          f"{p.prepare.val_size} + {p.prepare.test_size}")
    if p.dataset.name == "table":
        tb = p.dataset.table
        if not tb.source:
            raise ParamsError(f"{source}: dataset.table.source: required when dataset.name is table "
                              "(a local path or an http(s) URL)")
        if not tb.text_columns:
            raise ParamsError(f"{source}: dataset.table.text_columns: required when dataset.name is table")
        if not tb.label_column:
            raise ParamsError(f"{source}: dataset.table.label_column: required when dataset.name is table")
        if tb.sha256 and (len(tb.sha256) != 64 or any(c not in "0123456789abcdef" for c in tb.sha256.lower())):
            raise ParamsError(f"{source}: dataset.table.sha256: expected 64 hex digits, got {tb.sha256!r}")


def _check_space(space: Mapping[str, SearchDim], source: str) -> None:
    """Every range names a tunable train key and stays inside what that key accepts."""
    for key, dim in space.items():
        where = f"tune.space.{key}"
        _check_tunable(key, where, source)
        tp, meta = _train_field(key)
        if dim.type == "categorical":
            if not dim.choices:
                raise ParamsError(f"{source}: {where}.choices: required for a categorical range")
            for i, choice in enumerate(dim.choices):
                _coerce(tp, choice, f"{where}.choices[{i}]", meta, source)
            continue
        if tp not in (int, float):
            kind = ("one of " + ", ".join(map(str, typing.get_args(tp)))) if typing.get_origin(tp) is Literal \
                else "true or false" if tp is bool else getattr(tp, "__name__", str(tp))
            raise ParamsError(f"{source}: {where}.type: train.{key} takes {kind}, not a number range: "
                              "use type: categorical with choices")
        if dim.type == "float" and tp is int:
            raise ParamsError(f"{source}: {where}.type: train.{key} takes an integer: use type: int")
        if dim.choices:
            raise ParamsError(f"{source}: {where}.choices: only for type: categorical (use low/high)")
        for bound in ("low", "high"):
            value = getattr(dim, bound)
            if value is None:
                raise ParamsError(f"{source}: {where}.{bound}: required for type: {dim.type}")
            if dim.type == "int" and value != int(value):
                raise ParamsError(f"{source}: {where}.{bound}: expected an integer, got {value!r}")
            _coerce(tp, int(value) if dim.type == "int" else value, f"{where}.{bound}", meta, source)
        if dim.low > dim.high:
            raise ParamsError(f"{source}: {where}: low ({dim.low:g}) is above high ({dim.high:g})")
        if dim.log and dim.low <= 0:
            raise ParamsError(f"{source}: {where}.low: a log range needs low > 0, got {dim.low:g}")
        if dim.log and dim.step is not None:
            raise ParamsError(f"{source}: {where}.step: Optuna takes either log or step, not both")
        if dim.step is not None and dim.step <= 0:
            raise ParamsError(f"{source}: {where}.step: expected a number > 0, got {dim.step:g}")
