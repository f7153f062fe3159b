"""model.keras, checked before Keras reads it: Keras reports a truncated or foreign file as
`ValueError: File not found`, which names neither the damage nor the way out.

`load_model_file` is what evaluate, predict and serving load a trained model with.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from pipeline.core.errors import StageError

KERAS_MEMBERS = ("config.json", "model.weights.h5")   # what a Keras 3 .keras archive holds


def check_model_file(path: Path, hint: str) -> None:
    """model.keras as Keras saves it: a zip archive with the model's config and weights, every member
    whole (its CRC checked). Keras itself reports a truncated or foreign file as `File not found`."""
    problem = ""
    size = path.stat().st_size
    if size == 0:
        problem = "the file is empty"
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                missing = [name for name in KERAS_MEMBERS if name not in archive.namelist()]
                if missing:
                    problem = f"a zip archive without {', '.join(missing)}"
                else:
                    bad = archive.testzip()
                    if bad is not None:
                        problem = f"{bad} inside it fails its CRC check"
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
            problem = f"not a whole zip archive, {size:,} bytes: {' '.join(str(exc).split())}"
    if problem:
        raise StageError(f"{path}: damaged or not a Keras model file ({problem}); {hint}")


def load_model_file(path: Path, hint: str):
    """The Keras model in a checked model.keras (check_model_file), uncompiled; a file Keras cannot
    read (damaged inside, or saved by incompatible code) is one StageError naming it."""
    import keras

    import pipeline.model.architecture  # noqa: F401  (registers the custom layers for loading)

    check_model_file(path, hint)
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise StageError(f"{path}: damaged, or not a model this code can load ({reason[:300]}); {hint}") from None
