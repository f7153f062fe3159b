"""The tune stage's result as train reads it: tune/best_params.json merged over params.yaml's train."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.core import paths
from pipeline.core.config import Params, override
from pipeline.core.errors import ParamsError, StageError


def read_tuned(best_file: Path = paths.BEST_PARAMS) -> dict:
    """The tune stage's result: study, trial, metric, value and the best `params`."""
    if not best_file.is_file():
        raise StageError(f"{best_file}: missing; run the tune stage first (dvc repro tune), "
                         "or set train.use_tuned: false")
    try:
        best = json.loads(best_file.read_text(encoding="utf-8"))
        best["params"].items()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StageError(f"{best_file}: not a tune result ({exc}); run the tune stage again") from None
    return {k: best.get(k) for k in ("study", "trial", "metric", "value", "params")}


def resolve_tuned(params: Params, best_file: Path = paths.BEST_PARAMS) -> Params:
    """params with the tune stage's best values merged over train (train.use_tuned)."""
    if not params.train.use_tuned:
        return params
    try:
        return params.model_copy(update={"train": override(params.train, read_tuned(best_file)["params"],
                                                            str(best_file))})
    except ParamsError as exc:
        raise StageError(str(exc)) from None
