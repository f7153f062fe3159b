"""An experiment file, experiments/<name>.yaml, read and checked against params.yaml.

    title: what it is, in a line
    seed: {metric: test/accuracy, value: 0.805, source: where the figure comes from}
    notes: what differs from the tutorial and why (optional)
    params: {dotted.params.key: value, ...}      # over params.yaml: the tutorial's settings
    tuned: {tune.n_trials: 10, ...}               # over params: what `--tuned` adds
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipeline.core.config import ParamsError, check_params, read_yaml
from pipeline.core.errors import ExperimentError
from pipeline.core.overrides import KEY, apply_overrides, assignments

EXPERIMENTS_DIR = Path("experiments")
TUNED_SUFFIX = "-tuned"
SEED_METRICS = ("test/accuracy", "val/accuracy")
# What "the seed's settings" means for the pipeline's own stages: no search, params as given.
UNTUNED = {"tune.n_trials": 0, "train.use_tuned": False}
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_TOP_KEYS = {"title", "seed", "notes", "params", "tuned"}


@dataclass(frozen=True)
class SeedFigure:
    metric: str          # test/accuracy | val/accuracy: the split the tutorial reported
    value: float | None  # None: the tutorial gives no figure for this variant
    source: str


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    seed: SeedFigure
    notes: str
    params: Mapping[str, Any]
    tuned: Mapping[str, Any] = field(default_factory=dict)

    def overrides(self, tuned: bool) -> dict[str, Any]:
        """The params.yaml keys this run sets, in the file's order."""
        if tuned:
            return {**self.params, "train.use_tuned": True, **self.tuned}
        return {**self.params, **UNTUNED}

    def run_name(self, tuned: bool) -> str:
        return self.name + TUNED_SUFFIX if tuned else self.name


def read_base(params_file: Path = Path("params.yaml")) -> dict[str, Any]:
    """params.yaml's raw data, which every experiment is applied over (read once per command)."""
    try:
        return read_yaml(params_file) or {}
    except FileNotFoundError:
        raise ExperimentError(f"{params_file}: file not found (run from the repo root)") from None
    except ParamsError as exc:
        raise ExperimentError(str(exc)) from None


def load_experiment(path: Path, base: Mapping[str, Any]) -> Experiment:
    """Read and check one experiment file: both of its variants, applied over `base` (params.yaml's
    data, see read_base), must make a valid params.yaml."""
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such experiment (see python -m pipeline.experiments list)") from None
    except ParamsError as exc:
        raise ExperimentError(str(exc)) from None
    name = path.stem
    if not _NAME.fullmatch(name) or name.endswith(TUNED_SUFFIX):
        raise ExperimentError(f"{path}: the name must be lower-case letters, digits and '-', "
                              f"not ending in {TUNED_SUFFIX}")
    if not isinstance(raw, dict):
        raise ExperimentError(f"{path}: expected a mapping with {', '.join(sorted(_TOP_KEYS))}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ExperimentError(f"{path}: {unknown[0]}: unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    experiment = Experiment(name=name, title=str(raw.get("title") or name), seed=_seed(raw.get("seed"), path),
                            notes=str(raw.get("notes") or "").strip(), params=_overrides(raw, "params", path),
                            tuned=_overrides(raw, "tuned", path))
    if not experiment.tuned.get("tune.n_trials"):
        raise ExperimentError(f"{path}: tuned: tune.n_trials: required (> 0) for the tuned variant")
    for tuned in (False, True):
        where = f"{path} ({'tuned' if tuned else 'params'})"
        try:
            check_params(with_overrides(base, experiment.overrides(tuned), where), where)
        except ParamsError as exc:
            raise ExperimentError(str(exc)) from None
    return experiment


def with_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """params.yaml's data with an experiment's overrides applied by the very -S arguments `dvc exp run`
    is given (commands.set_param_args), parsed and applied as DVC does (core/overrides.py)."""
    return apply_overrides(base, assignments(overrides), where)


def _seed(raw: Any, path: Path) -> SeedFigure:
    if not isinstance(raw, dict) or raw.get("metric") not in SEED_METRICS:
        raise ExperimentError(f"{path}: seed: needs metric ({' | '.join(SEED_METRICS)}), value and source")
    value = raw.get("value")
    if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise ExperimentError(f"{path}: seed.value: expected an accuracy in [0, 1] or null, got {value!r}")
    return SeedFigure(raw["metric"], None if value is None else float(value), str(raw.get("source") or ""))


def _overrides(raw: dict, section: str, path: Path) -> dict[str, Any]:
    values = raw.get(section) or {}
    if not isinstance(values, dict):
        raise ExperimentError(f"{path}: {section}: expected a mapping of dotted params.yaml keys")
    for key in values:
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise ExperimentError(f"{path}: {section}: {key!r}: expected a dotted params.yaml key")
    return dict(values)


def discover(folder: Path = EXPERIMENTS_DIR, params_file: Path = Path("params.yaml")) -> list[Experiment]:
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ExperimentError(f"{folder}/: no experiment files (*.yaml)")
    base = read_base(params_file)
    return [load_experiment(f, base) for f in files]


def select(experiments: Sequence[Experiment], names: Sequence[str]) -> list[Experiment]:
    by_name = {e.name: e for e in experiments}
    chosen = []
    for name in names:
        if name not in by_name:
            raise ExperimentError(f"{name}: no experiment {EXPERIMENTS_DIR}/{name}.yaml "
                                  f"(have: {', '.join(by_name)})")
        chosen.append(by_name[name])
    return chosen
