"""params.yaml, read once into typed, frozen objects.

Every section is a frozen pydantic model whose defaults are params.yaml's own values (a test keeps
them equal), so a file that leaves a key out gets what the repo's params.yaml says. `load_params`
checks the whole file at start-up: an unknown key, a wrong type or an out-of-range value raises
`ParamsError` with one line, `<file>: <dotted.key>: <what is allowed>, got <value>`, before any stage
does work.
"""
from __future__ import annotations

import re
import reprlib
import types
import typing
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pipeline.core.errors import ParamsError

Dataset = Literal["seoul120", "nsmc", "imdb", "reuters", "table"]
Analyzer = Literal["okt", "komoran", "kkma", "hannanum", "mecab", "char", "whitespace", "english"]
DATASETS = typing.get_args(Dataset)
ANALYZERS = typing.get_args(Analyzer)
TAGGED_ANALYZERS = ("okt", "komoran", "kkma", "hannanum", "mecab")


def _strings(value: Any) -> Any:
    # YAML lists become tuples (immutable like the rest); numbers are kept as text (labels like 1, 2).
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, (str, int))
                                                   for v in value):
        raise ValueError("not a list of strings")
    return tuple(str(v) for v in value)


def _plain_values(value: Any) -> Any:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, int, float, bool)) for v in value):
        raise ValueError("not a list of plain values")
    return tuple(value)


def _space(value: Any) -> Any:
    # null: no search; keys as text, so a key YAML reads as a number is reported as not tunable.
    if value is None:
        return {}
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


Text = Annotated[str, BeforeValidator(lambda v: "" if v is None else v)]
Strings = Annotated[tuple[str, ...], BeforeValidator(_strings)]
def _ints(value: Any) -> Any:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(type(v) is int for v in value):
        raise ValueError("expected a list of integers")
    return tuple(value)


Ints = Annotated[tuple[int, ...], BeforeValidator(_ints)]


def _ngram_range(value: tuple[int, ...]) -> tuple[int, ...]:
    if value and (len(value) != 2 or not 1 <= value[0] <= value[1] <= 10):
        raise ValueError("expected [low, high] with 1 <= low <= high <= 10, or []")
    return value


NgramRange = Annotated[Ints, AfterValidator(_ngram_range)]   # [low, high] character n-gram lengths; []: none


class _Section(BaseModel):
    # strict: no "yes" for true, no 1.5 for an integer, no "3" for a number (an integer is a number).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_empty(cls, data: Any) -> Any:
        return {} if data is None else data     # `tokenize:` with nothing under it: all defaults


class TableSource(_Section):
    """The user's own file, used when dataset.name is `table`."""
    source: Text = ""                # local path or http(s) URL of a CSV / TSV / JSONL / Parquet file
    sha256: Text = ""                # optional pin of the file's sha256
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet"] = "auto"
    text_columns: Strings = ()       # joined with a space, like the tutorials' 제목 + 내용
    label_column: Text = ""
    id_column: Text = ""             # empty: row numbers
    encoding: Text = "utf-8"


def _class_names(value: Any) -> Any:
    """Compared with labels as the readers give them: NFC (macOS writes Hangul NFD), each run of
    whitespace one space, stripped."""
    return tuple(" ".join(unicodedata.normalize("NFC", v).split()) for v in _strings(value))


class DatasetParams(_Section):
    name: Dataset = "seoul120"
    # keep only these labels (empty: all)
    classes: Annotated[tuple[str, ...], BeforeValidator(_class_names)] = ("행정", "경제", "복지")
    table: TableSource = Field(default_factory=TableSource)


class DownloadParams(_Section):
    retries: int = Field(3, ge=0, le=20)
    timeout: float = Field(60.0, gt=0)
    backoff: float = Field(2.0, ge=0, le=600)


class TokenizeParams(_Section):
    unicode: Literal["NFC", "NFKC", "none"] = "NFKC"
    lowercase: bool = False
    strip_html: bool = False         # <br /> and other tags become spaces (IMDB)
    clean_pattern: Text = ""         # regex; each match becomes a space, e.g. "[^ㄱ-ㅎㅏ-ㅣ가-힣 ]"
    max_chars: int = Field(5000, ge=1)
    analyzer: Analyzer = "okt"
    norm: bool = False               # okt only: normalise slang/typos
    stem: bool = True                # okt only: verbs and adjectives to their dictionary form
    pos_keep: Strings = ()           # keep only tokens whose tag matches (fnmatch: "N*", "Noun")
    pos_drop: Strings = ("Josa", "Punctuation")   # drop tokens whose tag matches
    stopwords: Strings = ()
    stopwords_file: Text = ""        # one word a line, beside params.yaml
    workers: int = Field(0, ge=0, le=256)   # 0: one per CPU core
    # auto: threads in one JVM for Okt (one JIT warm-up, shared dictionaries), processes otherwise
    worker_kind: Literal["auto", "process", "thread"] = "auto"
    java_heap_mb: int = Field(1024, ge=256, le=65536)


class VocabParams(_Section):
    max_size: int = Field(20000, ge=3)   # including PAD and OOV
    min_freq: int = Field(2, ge=1)


class SubwordParams(_Section):
    """sentencepiece pieces of each token (pipeline/data/subword.py), trained on the training split only."""
    model: Literal["none", "unigram", "bpe"] = "none"   # none: the tokens themselves
    vocab_size: int = Field(8000, ge=16, le=1_000_000)   # pieces wanted (fewer when the data has fewer)
    character_coverage: float = Field(0.9995, gt=0, le=1)   # rarer characters become <unk>


class PrepareParams(_Section):
    seed: int = 42
    val_size: float = Field(0.1, gt=0, lt=1)
    test_size: float = Field(0.1, gt=0, lt=1)
    keep_official_test: bool = True  # nsmc / imdb / reuters ship a test file: use it as the test split
    vocab: VocabParams = Field(default_factory=VocabParams)
    maxlen: int = Field(300, ge=1, le=100000)
    # post: with masking, Keras runs LSTM/GRU on the fused cuDNN kernel only for right-padded
    # sequences; pre padding silently falls back to the step-by-step loop on GPUs.
    padding: Literal["pre", "post"] = "post"
    truncating: Literal["pre", "post"] = "pre"   # pre: keep a long text's end
    subword: SubwordParams = Field(default_factory=SubwordParams)


class ModelParams(_Section):
    """Hyperparameters of the recurrent classifier (pipeline/model/architecture.py builds it)."""
    cell: Literal["simple_rnn", "lstm", "gru"] = "gru"
    bidirectional: bool = True
    layers: int = Field(1, ge=1, le=8)        # stacked; return_sequences on all but the last
    units: int = Field(64, ge=1, le=4096)
    embedding_dim: int = Field(128, ge=1, le=4096)   # unused with one_hot
    one_hot: bool = False             # the seeds' one-hot SimpleRNN input instead of an Embedding
    dropout: float = Field(0.5, ge=0, lt=1)
    recurrent_dropout: float = Field(0.0, ge=0, lt=1)
    dense_units: int = Field(16, ge=0, le=4096)      # hidden Dense(relu); 0: none
    mask: bool = True                 # skip padded steps (mask_zero)
    # How the last recurrent layer's outputs become one vector: its final state (last), max or mean
    # over the steps, last+max+mean (ULMFiT's concat pooling), or additive attention; masks respected.
    pooling: Literal["last", "max", "mean", "concat", "attention"] = "attention"
    embedding_dropout: float = Field(0.0, ge=0, lt=1)   # SpatialDropout1D: whole embedding channels


class TrainParams(_Section):
    model: ModelParams = Field(default_factory=ModelParams)
    epochs: int = Field(20, ge=1, le=10000)
    batch_size: int = Field(32, ge=1, le=65536)    # per replica
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: float = Field(5e-4, gt=0, le=10)
    scale_learning_rate: bool = False  # multiply by the number of replicas
    class_weight: Literal["none", "balanced"] = "none"
    early_stopping_patience: int = Field(3, ge=0, le=1000)   # 0: off
    monitor: Literal["val/loss", "val/accuracy"] = "val/loss"   # early stopping and the epoch kept
    distribute: Literal["auto", "mirrored", "multi_worker", "none"] = "auto"
    devices: Strings = ()             # mirrored: e.g. [/gpu:0, /gpu:1]; empty: every GPU
    bucket_by_length: bool = True     # batch similar lengths, pad per batch instead of to maxlen
    maxlen: int = Field(0, ge=0, le=100000)   # re-cut to this many tokens; 0: prepare.maxlen
    seed: int = 42
    deterministic: bool = False       # TF op determinism (slower)
    use_tuned: bool = True            # merge tune/best_params.json (the tune stage's best trial) over these
    ensemble: int = Field(3, ge=1, le=32)        # members (seeds seed..seed+n-1), probabilities averaged in one model
    refit: bool = False   # train each member again on train+val for its kept epoch count (val figures: the first fit's)


# Keys of the train section a study may vary (tune.space); the rest define the experiment itself.
TUNABLE_TRAIN_KEYS = ("epochs", "batch_size", "optimizer", "learning_rate", "scale_learning_rate",
                      "class_weight", "early_stopping_patience", "monitor", "bucket_by_length", "maxlen")


# Options taken out because they measured no gain on any dataset (issue 37): a params.yaml, experiment or
# tune.space that still names one is refused with this instead of "unknown key".
REMOVED = {f"train.{key}": "removed (it measured no gain; see docs/history.md)" for key in (
    "model.char_ngrams", "model.embedding_init", "model.pretrain", "model.pretrain_epochs", "model.pretrain_words",
    "model.pretrain_learning_rate", "clip_norm", "lr_schedule", "warmup_epochs", "label_smoothing")}


class SearchDim(_Section):
    """One hyperparameter's range in tune.space, as Optuna's suggest_int / suggest_float / suggest_categorical."""
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False                 # sample on a log scale (learning rates, unit counts)
    step: float | None = None         # int / float: a grid step
    choices: Annotated[tuple[Any, ...], BeforeValidator(_plain_values)] = ()   # categorical: values of the key's type


class TuneParams(_Section):
    n_trials: int = Field(20, ge=0, le=1000000)   # the study's total; 0: no tuning
    timeout: float = Field(0.0, ge=0)             # seconds per invocation; 0: none
    epochs: int = Field(10, ge=0, le=10000)       # per trial; 0: train.epochs
    subsample: float = Field(1.0, gt=0, le=1)     # of the training split
    metric: Literal["val/accuracy", "val/loss"] = "val/accuracy"
    folds: int = Field(1, ge=1, le=20)            # 1: the validation split; k: stratified k-fold over train+val
    sampler_seed: int = 42
    startup_trials: int = Field(5, ge=0, le=100000)   # random trials before TPE
    pruner: Literal["median", "hyperband", "none"] = "median"
    warmup_epochs: int = Field(2, ge=0, le=10000)     # median: never prune before
    storage: Text = ""                # "": sqlite tune/optuna.db; journal:<file>; an RDB URL ($OPTUNA_STORAGE wins)
    study_name: Text = ""             # "": derived from the dataset, the space and the data
    # train keys -> ranges, read-only like the rest; the default is validated into SearchDims.
    space: Annotated[Mapping[str, SearchDim], BeforeValidator(_space), AfterValidator(types.MappingProxyType)] = \
        Field(validate_default=True, default_factory=lambda: {
            "model.cell": {"type": "categorical", "choices": ["lstm", "gru"]},
            "model.bidirectional": {"type": "categorical", "choices": [True, False]},
            "model.layers": {"type": "int", "low": 1, "high": 2},
            "model.units": {"type": "int", "low": 16, "high": 128, "log": True},
            "model.embedding_dim": {"type": "int", "low": 32, "high": 256, "log": True},
            "model.dropout": {"type": "float", "low": 0.0, "high": 0.6},
            "model.pooling": {"type": "categorical", "choices": ["last", "max", "mean", "concat", "attention"]},
            "model.embedding_dropout": {"type": "float", "low": 0.0, "high": 0.3},
            "model.dense_units": {"type": "categorical", "choices": [0, 16, 64]},
            "optimizer": {"type": "categorical", "choices": ["adam", "rmsprop"]},
            "learning_rate": {"type": "float", "low": 0.0001, "high": 0.003, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
            "maxlen": {"type": "int", "low": 100, "high": 300, "step": 50}})


class LinearParams(_Section):
    """The linear model, a candidate beside the RNN: TF-IDF n-grams of the same tokens + LogisticRegression."""
    enabled: bool = True
    word_ngrams: int = Field(2, ge=0, le=5)      # word 1..n-grams; 0: none
    char_ngrams: NgramRange = (2, 4)            # character n-gram range over the joined tokens; []: none
    c: float = Field(3.0, gt=0, le=1e6)          # LogisticRegression's inverse regularisation
    max_features: int = Field(500000, ge=0)      # per vectorizer; 0: no limit
    # Above this many fit rows: hashed n-grams + SGD over batches, out of core (pipeline/model/hashed_linear.py).
    out_of_core_above: int = Field(1000000, ge=0)
    hash_features: int = Field(1048576, ge=16, le=2**26)   # out of core: hashed columns per vectorizer (2**k)
    sgd_epochs: int = Field(5, ge=1, le=100)     # out of core: passes over the fit rows

    @field_validator("hash_features")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError(f"expected a power of two (2**20 = 1048576), got {value}")
        return value


def _weights(value: Any) -> Any:
    value = _plain_values(value)
    if not value or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1 for v in value):
        raise ValueError("expected a non-empty list of numbers strictly between 0 and 1 (0 is the linear "
                         "model, 1 the RNN: both are candidates already)")
    return tuple(sorted(set(float(v) for v in value)))


class ChampionParams(_Section):
    """Choosing and building the served model: the train stage owns this section (the evaluate stage
    scores every candidate on test with batch_size)."""
    serve: Literal["auto", "rnn", "linear", "blend"] = "auto"   # auto: the best on validation
    select_by: Literal["val/accuracy", "val/loss"] = "val/accuracy"
    # auto: a simpler candidate serves when the best one leads it by at most this many standard errors
    # of their paired per-row difference (the one-standard-error rule; 0: only exact ties).
    simpler_within: float = Field(1.0, ge=0, le=10)
    folds: int = Field(5, ge=0, le=20)   # 1: the val split; k >= 2: out-of-fold over train+val; 0: as tune.folds
    blend_weights: Annotated[tuple[float, ...], BeforeValidator(_weights)] = (
        0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)   # the RNN's weights w tried for w * rnn + (1 - w) * linear
    batch_size: int = Field(256, ge=1, le=65536)
    linear: LinearParams = Field(default_factory=LinearParams)


# evaluate's keys that moved to the champion section (issue 37): named with their new place, not "unknown key".
MOVED = {"champion": "champion.serve", "baseline": "champion.linear",
         **{key: f"champion.{key}" for key in ("select_by", "simpler_within", "folds", "blend_weights",
                                                "batch_size", "linear")}}


class EvaluateParams(_Section):
    """Scoring every candidate on the test split; the choice of the served model is champion's."""
    mistakes: int = Field(50, ge=0, le=100000)   # the most confident wrong test predictions to list

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        for key in data if isinstance(data, dict) else ():
            if key in MOVED:
                raise ValueError(f"evaluate.{key} moved to {MOVED[key]} (the train stage owns the champion's "
                                 "keys); move it there")
        return data


class Params(_Section):
    dataset: DatasetParams = Field(default_factory=DatasetParams)
    download: DownloadParams = Field(default_factory=DownloadParams)
    tokenize: TokenizeParams = Field(default_factory=TokenizeParams)
    prepare: PrepareParams = Field(default_factory=PrepareParams)
    train: TrainParams = Field(default_factory=TrainParams)
    tune: TuneParams = Field(default_factory=TuneParams)
    champion: ChampionParams = Field(default_factory=ChampionParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)


def load_params(path: str | Path = "params.yaml", overrides: Sequence[str] = ()) -> Params:
    """The params file, checked whole; `overrides`: `-S` assignments (core/overrides.py, the grammar of
    `dvc exp run -S`) applied to its data first, in memory. Errors then name the file with them."""
    return check_params(*read_params_data(path, overrides))


def read_params_data(path: str | Path = "params.yaml", overrides: Sequence[str] = ()) -> tuple[dict, str]:
    """The params file's data with `overrides` applied, not yet checked (textclf-params writes it), and
    the name its errors give it: the file, with its -S assignments."""
    path = Path(path)
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    if not isinstance(raw, dict):
        sections = ", ".join(f"{name}:" for name in Params.model_fields)
        got = "the file is empty" if raw is None else f"the file holds {_kind(raw)}, not a mapping"
        raise ParamsError(f"{path}: {got}; expected a mapping of sections ({sections}), as in the repo's params.yaml")
    if not overrides:
        return raw, str(path)
    from pipeline.core.overrides import apply_overrides, for_file

    overrides = for_file(overrides, path)
    return apply_overrides(raw, overrides, str(path)), f"{path} with {' '.join(f'-S {a}' for a in overrides)}"


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false"}.get(
        type(value), type(value).__name__)


def read_yaml(path: Path) -> Any:
    """A YAML file's data, read as DVC reads params.yaml (dvc.utils.serialize.parse_yaml: ruamel.yaml's
    safe loader, YAML 1.2), so a stage and `dvc exp run -S` / `dvc params diff` never see two values:
    `1e-3` is a number, `yes` / `no` / `on` are text, a key written twice in one mapping is an error.
    Plain dicts, lists and scalars; an empty file is None (parse_yaml makes it {}; load_params refuses it).

    Bad YAML is a one-line ParamsError naming the file. A missing file raises FileNotFoundError, which
    each caller words for its own kind of file."""
    text = ""
    try:
        text = path.read_text(encoding="utf-8")
        return YAML(typ="safe").load(text)
    except UnicodeDecodeError as exc:   # saved in another encoding (cp949 by a Korean Windows editor)
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ParamsError(f"{path}: line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save it "
                          "as UTF-8 (a Korean Windows editor may have saved it as cp949)") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a folder, not a file") from None
    except PermissionError as exc:
        raise ParamsError(f"{path}: cannot read it: {exc.strerror}") from None
    except DuplicateKeyError as exc:
        raise ParamsError(f"{path}: {_duplicate_key(text, exc)}") from None
    except YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None


def _duplicate_key(text: str, exc: DuplicateKeyError) -> str:
    """`key 'epochs' appears twice in one mapping (line 5 and line 9); keep one`. ruamel's error marks
    the mapping and the second key; the first is found in the mapping's node (the text composed again)."""
    second = exc.problem_mark
    try:
        yaml = YAML(typ="safe")
        mapping = _mapping_node_at(yaml.compose(text), exc.context_mark)
        keys = [key for key, _ in mapping.value]
        pos = (second.line, second.column)
        at = next(i for i, k in enumerate(keys) if (k.start_mark.line, k.start_mark.column) == pos)
        key = yaml.constructor.construct_object(keys[at], deep=True)   # `1` and `01` are one key
        first = next(k for k in keys[:at] if yaml.constructor.construct_object(k, deep=True) == key).start_mark
        lines = (f"line {first.line + 1} and line {second.line + 1}" if first.line != second.line else
                 f"line {first.line + 1}, columns {first.column + 1} and {second.column + 1}")
        return f"key {_short(key)} appears twice in one mapping ({lines}); keep one"
    except (StopIteration, LookupError, AttributeError, TypeError, YAMLError):   # a merge key (<<), say
        return f"{' '.join(str(exc.problem).split())} (line {second.line + 1}); keep one"


def _mapping_node_at(root: Any, mark: Any) -> Any:
    """The mapping node of the composed document that starts at `mark`."""
    todo, seen = [root], set()
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.id == "mapping":
            if (node.start_mark.line, node.start_mark.column) == (mark.line, mark.column):
                return node
            todo += [n for pair in node.value for n in pair]
        elif node.id == "sequence":
            todo += node.value
    raise LookupError(mark)


def _yaml_problem(exc: YAMLError) -> str:
    """ruamel's error in one line: where, what, and in what (its own text spans lines, quoting the file)."""
    if isinstance(exc, MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        context = exc.context or ""
        if context and exc.context_mark is not None:
            context += f" at line {exc.context_mark.line + 1}"
        return " ".join(f"{where}{exc.problem}{f' ({context})' if context else ''}".split())
    return " ".join(str(exc).split())


def check_params(raw: Any, source: str) -> Params:
    """Typed params from a raw mapping, with every check load_params makes; errors name `source`."""
    params = parse_params(raw, source=source)
    _check_cross_fields(params, source)
    return params


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Typed params, each key checked on its own. The rules across keys wait for check_params: a lone
    section (a bundle's stored tokenize section) is built with defaults they may not fit."""
    return _validate(Params, raw, source)


def to_dict(obj: Any) -> Any:
    """The resolved params as plain YAML/JSON-able data (tuples become lists, mappings dicts)."""
    if isinstance(obj, BaseModel):
        return {name: to_dict(getattr(obj, name)) for name in type(obj).model_fields}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj


def override(train: TrainParams, values: Mapping[str, Any], source: str) -> TrainParams:
    """`train` with dotted keys ("model.units", "learning_rate") replaced, each checked as in params.yaml's
    train section."""
    merged = to_dict(train)
    for key, value in values.items():
        _check_tunable(key, key, source)
        *parents, leaf = key.split(".")
        target = merged
        for part in parents:
            target = target[part]
        target[leaf] = value
    return _validate(TrainParams, merged, source, prefix=("train",))


def tunable_keys() -> tuple[str, ...]:
    return tuple(f"model.{name}" for name in ModelParams.model_fields) + TUNABLE_TRAIN_KEYS


def _check_tunable(key: str, where: str, source: str) -> None:
    if f"train.{key}" in REMOVED:
        raise ParamsError(f"{source}: {where}: {REMOVED[f'train.{key}']}")
    if key not in tunable_keys():
        raise ParamsError(f"{source}: {where}: not a tunable train key (allowed: {', '.join(tunable_keys())})")


def _validate(cls: type[_Section], raw: Any, source: str, prefix: tuple[str, ...] = (), key: str = "") -> Any:
    """cls from raw data; pydantic's first error becomes one line naming the dotted key (or `key`)."""
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = (*prefix, *map(str, error["loc"]))
        raise ParamsError(f"{source}: {key or '.'.join(loc) or 'top level'}: "
                          f"{_explain(cls, error, '.'.join(loc[:-1]) or 'top level')}") from None


def _explain(cls: type[_Section], error: Any, parent: str) -> str:
    """'<what the key accepts>, got <value>' for the key at the error's location."""
    owner, field, tp = _locate(cls, error["loc"])
    value = error["input"]
    if error["type"] == "extra_forbidden":
        if f"{parent}.{error['loc'][-1]}" in REMOVED:
            return REMOVED[f"{parent}.{error['loc'][-1]}"]
        return f"unknown key (allowed in {parent}: {', '.join(owner.model_fields)})"
    if error["type"] == "missing":
        return "required"
    if error["type"] == "value_error" and isinstance(tp, type) and issubclass(tp, _Section):   # a section's own rule
        return str(error.get("ctx", {}).get("error", ""))
    if typing.get_origin(tp) in (types.UnionType, typing.Union):      # float | None: a range's bound
        tp = next(arg for arg in typing.get_args(tp) if arg is not type(None))
    if typing.get_origin(tp) is Literal:
        return f"got {_short(value)}, allowed: {', '.join(map(str, typing.get_args(tp)))}"
    if tp is bool:
        allowed = "expected true or false"
    elif tp in (int, float):
        allowed = f"expected {'an integer' if tp is int else 'a number'}{_range_text(field)}"
    elif tp is str:
        allowed = "expected a string"
    elif typing.get_origin(tp) is tuple:
        allowed = {Any: "expected plain values (text, numbers, true/false)", int: "expected a list of integers",
                   str: "expected a list of strings", float: "expected a list of numbers"}[typing.get_args(tp)[0]]
        rule = str(error.get("ctx", {}).get("error", ""))
        if error["type"] == "value_error" and rule.startswith("expected"):   # a field's own rule
            allowed = rule
    else:
        allowed = "expected a mapping"
    return f"{allowed}, got {_short(value)}"


# Values in messages stay one short line: a YAML alias bomb's value would repr to gigabytes.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 60, 60


def _short(value: Any) -> str:
    text = _REPR.repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _locate(cls: type[_Section], loc: tuple) -> tuple[type[_Section], FieldInfo | None, Any]:
    """(model, field, field type) that a pydantic error location points at; no field for an unknown key."""
    owner, field, tp = cls, None, cls
    for part in loc:
        if typing.get_origin(tp) is Mapping:
            tp = typing.get_args(tp)[1]          # `part` is a key of tune.space
            continue
        owner = tp
        field = owner.model_fields.get(part)
        tp = field.annotation if field else None
    return owner, field, tp


def _range_text(field: FieldInfo | None) -> str:
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}    # pydantic lists lower bounds first
    parts = [f"{sign} {getattr(c, name):g}" for c in (field.metadata if field else ())
             for name, sign in signs.items() if hasattr(c, name)]
    return " " + " and ".join(parts) if parts else ""


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
        try:
            re.compile(t.clean_pattern)
        except re.error as exc:
            raise ParamsError(f"{source}: tokenize.clean_pattern: not a valid regular expression: {exc}") from None
    _check_space(p.tune.space, source)
    if p.champion.serve in ("linear", "blend") and not p.champion.linear.enabled:
        raise ParamsError(f"{source}: champion.serve: {p.champion.serve} needs the linear model, but "
                          "champion.linear.enabled is false (enable it, or choose rnn or auto)")
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
        if tb.sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", tb.sha256):
            raise ParamsError(f"{source}: dataset.table.sha256: expected 64 hex digits, got {tb.sha256!r}")


def _check_space(space: Mapping[str, SearchDim], source: str) -> None:
    """Every range names a tunable train key and stays inside what that key accepts."""
    for key, dim in space.items():
        where = f"tune.space.{key}"
        _check_tunable(key, where, source)
        tp = _locate(TrainParams, tuple(key.split(".")))[2]
        if dim.type == "categorical":
            if not dim.choices:
                raise ParamsError(f"{source}: {where}.choices: required for a categorical range")
            for i, choice in enumerate(dim.choices):
                _check_train_value(key, choice, f"{where}.choices[{i}]", source)
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
            _check_train_value(key, int(value) if dim.type == "int" else value, f"{where}.{bound}", source)
        if dim.low > dim.high:
            raise ParamsError(f"{source}: {where}: low ({dim.low:g}) is above high ({dim.high:g})")
        if dim.log and dim.low <= 0:
            raise ParamsError(f"{source}: {where}.low: a log range needs low > 0, got {dim.low:g}")
        if dim.log and dim.step is not None:
            raise ParamsError(f"{source}: {where}.step: Optuna takes either log or step, not both")
        if dim.step is not None and dim.step <= 0:
            raise ParamsError(f"{source}: {where}.step: expected a number > 0, got {dim.step:g}")


def _check_train_value(key: str, value: Any, where: str, source: str) -> None:
    """`value` must be valid as train.<key>; the error names `where`."""
    for part in reversed(key.split(".")):
        value = {part: value}
    _validate(TrainParams, value, source, key=where)
