"""models/ as the train stage leaves it: the RNN's bundle plus the linear model and champion.json,
made by the train stage's own functions (pipeline/model/champion.py) on a prepared folder with ids."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.atomic import write_json


def add_champion(models: Path, prepared: Path, tokens: Path, **champion) -> dict:
    """Fit the linear model, choose the champion on the validation split (champion.* as given) and
    write linear.skops, linear.json and champion.json into `models`; the choice's record."""
    from helpers import make_params
    from pipeline.data.prepared import load_prepared
    from pipeline.model.champion import select
    from pipeline.model.files import load_model_file
    from pipeline.model.linear import save_linear

    params = make_params(champion={"folds": 1, **champion})
    model = load_model_file(models / "model.keras", "the test's own bundle")
    choice, linear = select(load_prepared(prepared), model, params.champion, params.train, 1, None, prepared, tokens)
    if linear is not None:
        save_linear(linear, models)
    write_json(models / "champion.json", choice.as_json())
    return json.loads((models / "champion.json").read_text(encoding="utf-8"))
