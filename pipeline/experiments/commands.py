"""`dvc exp run` command lines for an experiment: values in Hydra's override grammar, which `-S` parses."""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

from pipeline.core.errors import ExperimentError
from pipeline.experiments.spec import _KEY, Experiment


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar, which `dvc exp run -S` parses."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExperimentError(f"{value!r}: not a finite number")
        return repr(value)
    if isinstance(value, str):
        # Quoted always: unquoted Hydra strings cannot hold Hangul, spaces or most punctuation.
        # Inside quotes Hydra reads a backslash as an escape only before a quote (or before more
        # backslashes and then a quote), so only those runs are doubled: regexes keep their \d.
        # Double quotes, so the shell line printed with single quotes around each argument reads well.
        quoted = re.sub(r'(\\*)"', lambda m: m.group(1) * 2 + '\\"', value)
        return '"' + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, quoted) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise ExperimentError(f"{key!r}: a mapping key in an override must be a plain name")
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise ExperimentError(f"{value!r}: unsupported value type {type(value).__name__}")


def set_param_args(overrides: Mapping[str, Any]) -> list[str]:
    """`-S` arguments for `dvc exp run`. A mapping (tune.space) replaces params.yaml's whole, as a
    list does; a plain `key={...}` would merge into it (Hydra), keeping dimensions the file left out."""
    args: list[str] = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            args += ["-S", f"~{key}", "-S", f"+{key}={hydra_value(value)}"]
        else:
            args += ["-S", f"{key}={hydra_value(value)}"]
    return args


def dvc_command(experiment: Experiment, tuned: bool, mode: str = "temp") -> list[str]:
    """The `dvc exp run` line for one variant; mode: temp (a copy; the workspace stays as it is),
    queue (for `dvc queue start`) or workspace (results land in the workspace, params.yaml too)."""
    flags = {"temp": ["--temp"], "queue": ["--queue"], "workspace": []}[mode]
    return ["dvc", "exp", "run", *flags, "--force", "-n", experiment.run_name(tuned),
            *set_param_args(experiment.overrides(tuned))]
