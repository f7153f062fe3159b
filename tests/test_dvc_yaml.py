"""dvc.yaml lists exactly the params each stage reads, and every listed key exists."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from pipeline import download, evaluate, prepare, tokenize, train, tune
from pipeline.config import Params
from conftest import REPO

STAGES = {"download": download, "tokenize": tokenize, "prepare": prepare, "tune": tune, "train": train,
          "evaluate": evaluate}


def dvc_stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("name", STAGES)
def test_params_listed_are_the_params_read(name):
    assert tuple(dvc_stages()[name]["params"]) == STAGES[name].READS


@pytest.mark.parametrize("name", STAGES)
def test_every_listed_key_exists(name):
    for key in STAGES[name].READS:
        obj = Params()
        for part in key.split("."):
            assert part in {f.name for f in dataclasses.fields(obj)}, f"{key} is not a params key"
            obj = getattr(obj, part)


def test_stage_commands_run_the_stage_modules():
    stages = dvc_stages()
    produced = {next(iter(out)) for stage in stages.values() for out in stage.get("outs", [])}
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m pipeline.{name}"
        for dep in stage.get("deps", []):
            # Every dependency is code in the repo or the output of an earlier stage.
            assert (REPO / dep).exists() or dep in produced, dep


def test_outputs_persist_so_a_failed_run_keeps_them():
    for stage in dvc_stages().values():
        for out in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            (path, opts), = out.items()
            assert opts.get("persist") is True, path
