"""dvc.yaml lists exactly the params each stage reads, every listed key exists, each stage's deps
cover every module its code imports, and only the values that compare models are DVC metrics."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import yaml

from helpers import REPO
from pipeline.core import paths
from pipeline.core.config import Params
from pipeline.stages import download, evaluate, prepare, tokenize, train, tune

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
            assert part in type(obj).model_fields, f"{key} is not a params key"
            obj = getattr(obj, part)


def test_stage_commands_run_the_stage_modules():
    stages = dvc_stages()
    produced = {next(iter(out)) for stage in stages.values() for out in stage.get("outs", [])}
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m pipeline.stages.{name}"
        for dep in stage.get("deps", []):
            # Every dependency is code in the repo or the output of an earlier stage.
            assert (REPO / dep).exists() or dep in produced, dep


def test_outputs_persist_so_a_failed_run_keeps_them():
    for stage in dvc_stages().values():
        for out in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            (path, opts), = out.items()
            assert opts.get("persist") is True, path


# Package __init__ files that hold only a docstring: importing them runs no code a stage depends on.
DOCSTRING_ONLY = {"pipeline", "pipeline.stages"}


def module_file(module: str) -> str:
    return Path(importlib.util.find_spec(module).origin).resolve().relative_to(REPO).as_posix()


@pytest.mark.parametrize("name", STAGES)
def test_deps_cover_every_module_the_stage_imports(name):
    """Change any module a stage imports (at the top or inside a function, directly or through
    others) and DVC re-runs the stage: its folder or file is among the stage's deps."""
    graph = grimp.build_graph("pipeline")
    module = f"pipeline.stages.{name}"
    imported = (graph.find_upstream_modules(module) | {module}) - DOCSTRING_ONLY
    assert len(imported) > 3   # the graph was really built: every stage imports core and more
    deps = dvc_stages()[name]["deps"]
    uncovered = [f"{m} ({module_file(m)})" for m in sorted(imported)
                 if not any(module_file(m) == d or module_file(m).startswith(d + "/") for d in deps)]
    assert not uncovered, f"dvc.yaml: {name}: deps miss {', '.join(uncovered)}"


@pytest.mark.parametrize("name", STAGES)
def test_deps_name_no_package_the_stage_does_not_import(name):
    graph = grimp.build_graph("pipeline")
    module = f"pipeline.stages.{name}"
    imported = {module_file(m) for m in graph.find_upstream_modules(module) | {module}}
    for dep in dvc_stages()[name]["deps"]:
        if dep.startswith("pipeline/"):
            assert any(f == dep or f.startswith(dep + "/") for f in imported), f"{name}: {dep} is never imported"


def test_every_dvc_output_is_named_in_core_paths():
    """core/paths.py holds every output path the stages write; dvc.yaml names the same ones."""
    named = {str(v) for v in vars(paths).values() if isinstance(v, Path)}
    folders = {str(paths.TUNE_PLOTS_DIR), str(paths.EVALUATE_PLOTS_DIR)}   # their files are listed one by one
    outputs = {next(iter(entry)) for stage in dvc_stages().values()
               for kind in ("outs", "metrics", "plots") for entry in stage.get(kind, [])}
    assert len(outputs) > 10
    missing = sorted(o for o in outputs if o not in named and str(Path(o).parent) not in folders)
    assert not missing, f"dvc.yaml outputs not in pipeline/core/paths.py: {missing}"


def test_bytecode_is_no_part_of_a_stages_deps(tmp_path):
    """The deps are package folders: the .pyc files any import writes there (a later stage, the
    tests, a notebook) would change their hashes and make DVC run every stage again."""
    folders = sorted({dep for stage in dvc_stages().values() for dep in stage.get("deps", [])
                      if dep.startswith("pipeline/") and (REPO / dep).is_dir()})
    assert len(folders) > 3
    # DVC's own ignore rules, in a scratch repo holding the repo's .dvcignore (not in the repo
    # itself, where a running `dvc repro` may hold DVC's lock).
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True, capture_output=True)
    shutil.copyfile(REPO / ".dvcignore", tmp_path / ".dvcignore")
    pyc = [f"{folder}/__pycache__/module.cpython-311.pyc" for folder in folders]
    done = subprocess.run([*dvc, "check-ignore", *pyc], cwd=tmp_path, capture_output=True, text=True)
    missed = sorted(set(pyc) - set(done.stdout.split()))
    assert not missed, f".dvcignore: DVC hashes these with the deps: {missed}"


# What `dvc exp show` compares experiments by (docs/tracking.md): every other number the stages
# write stays in plain outputs and in MLflow. The served model's test accuracy comes first: a table
# too wide for the terminal shows only the first column of each group.
MODEL_COMPARISON = {
    "scores.json": ("evaluate", ("champion/test/accuracy", "champion/val/accuracy", "test/accuracy",
                                 "linear/test/accuracy", "blend/test/accuracy", "test/macro_f1", "test/loss")),
}


def test_only_the_values_that_compare_models_are_dvc_metrics():
    metrics = {next(iter(entry)): name for name, stage in dvc_stages().items() for entry in stage.get("metrics", [])}
    assert metrics == {path: stage for path, (stage, _) in MODEL_COMPARISON.items()}
    assert set(MODEL_COMPARISON) == {str(paths.SCORES)}
    assert tuple(evaluate.SCORED) == MODEL_COMPARISON["scores.json"][1]
    # The statistics are still written, versioned by git (not cached) and kept through a failed run.
    outs = {next(iter(entry)): (name, entry[next(iter(entry))]) for name, stage in dvc_stages().items()
            for entry in stage.get("outs", [])}
    for path, stage in ((paths.TOKENIZE_STATS, "tokenize"), (paths.PREPARE_STATS, "prepare"),
                        (paths.TUNE_SUMMARY, "tune"), (paths.TUNE_BEST, "tune"), (paths.METRICS, "evaluate")):
        assert outs[str(path)] == (stage, {"cache": False, "persist": True}), path


def test_tune_writes_its_best_value_alone_as_the_metric(in_tmp):
    """A real (in-memory) study through the stage's writer: best.json holds the best value and
    nothing else; with tuning off it holds the key with no value."""
    import optuna

    from pipeline.tuning.outputs import write_outputs, write_untuned

    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.75, 0.625):
        study.add_trial(optuna.trial.create_trial(params={"units": 8}, value=value, distributions={
            "units": optuna.distributions.IntDistribution(4, 16)}))
    write_outputs(study, "sqlite:///tune/optuna.db", "val/accuracy")
    assert json.loads((in_tmp / paths.TUNE_BEST).read_text()) == {"tune/best_value": 0.75}
    assert json.loads((in_tmp / paths.TUNE_SUMMARY).read_text())["best"]["value"] == 0.75
    write_untuned()
    assert json.loads((in_tmp / paths.TUNE_BEST).read_text()) == {"tune/best_value": None}


@pytest.mark.integration
def test_the_metrics_files_of_a_repro_hold_the_comparison_values(repro_project):
    """After the session's real `dvc repro`: scores.json holds exactly the comparison keys, the
    served model's first, with the values of metrics.json; tune/best.json the study's best value;
    and `dvc metrics show` lists nothing else, in that order."""
    scores = repro_project.read_json("scores.json")
    assert tuple(scores) == MODEL_COMPARISON["scores.json"][1]
    full = repro_project.read_json("metrics.json")
    assert all(scores[k] == full[k] for k in scores)
    assert repro_project.read_json("tune/best.json") == {
        "tune/best_value": repro_project.read_json("tune/study.json")["best"]["value"]}
    shown = repro_project.dvc("metrics", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    files = json.loads(shown.stdout)[""]["data"]
    assert {path: tuple(entry["data"]) for path, entry in files.items()} == {
        path: keys for path, (_, keys) in MODEL_COMPARISON.items()}


def test_dvc_lock_records_what_dvc_yaml_lists_with_values_params_yaml_accepts():
    """The committed dvc.lock comes from a run of this code: each stage's recorded keys are the ones
    dvc.yaml lists, and every value is one params.yaml may hold (a key since removed, such as
    evaluate.baseline, fails here)."""
    from pipeline.core.config import parse_params

    lock = yaml.safe_load((REPO / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    assert set(lock) == set(dvc_stages())
    for name, stage in lock.items():
        recorded = stage.get("params", {}).get("params.yaml", {})
        assert sorted(recorded) == sorted(dvc_stages()[name]["params"]), name
        nested: dict = {}
        for key, value in recorded.items():
            *parents, leaf = key.split(".")
            node = nested
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        parse_params(nested, f"dvc.lock, stage {name}")
