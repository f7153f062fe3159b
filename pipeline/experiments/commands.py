"""`dvc exp run` command lines for an experiment: values in Hydra's override grammar, which `-S` parses.

The grammar's writer (hydra_value, set_param_args) lives in core/overrides.py, beside the code that
applies it as DVC does: the experiments' check of their params (spec.py) goes through the same pieces.
"""
from __future__ import annotations

from pipeline.core.overrides import hydra_value, set_param_args
from pipeline.experiments.spec import Experiment

__all__ = ["dvc_command", "hydra_value", "set_param_args"]


def dvc_command(experiment: Experiment, tuned: bool, mode: str = "temp") -> list[str]:
    """The `dvc exp run` line for one variant; mode: temp (a copy; the workspace stays as it is),
    queue (for `dvc queue start`) or workspace (results land in the workspace, params.yaml too)."""
    flags = {"temp": ["--temp"], "queue": ["--queue"], "workspace": []}[mode]
    return ["dvc", "exp", "run", *flags, "--force", "-n", experiment.run_name(tuned),
            *set_param_args(experiment.overrides(tuned))]
