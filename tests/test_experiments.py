"""experiments/*.yaml: checked against params.yaml, turned into `dvc exp run -S` arguments that DVC
itself applies as intended, and run for real with `dvc exp run` on a tiny dataset."""
from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import apply_overrides
from hydra.core.override_parser.overrides_parser import OverridesParser

from helpers import REPO
from helpers.project import make_project
from pipeline.core.config import check_params, load_params, to_dict
from pipeline.core.errors import ExperimentError
from pipeline.experiments.cli import main
from pipeline.experiments.commands import hydra_value, set_param_args
from pipeline.experiments.results import Outcome, read_outcomes, write_outcomes
from pipeline.experiments.spec import discover, load_experiment, read_base, with_overrides

PARAMS = REPO / "params.yaml"


def write_experiment(folder: Path, name: str, **sections) -> Path:
    body = {"title": name, "seed": {"metric": "test/accuracy", "value": 0.5, "source": "test"},
            "params": {"train.model.units": 4}, "tuned": {"tune.n_trials": 2}, **sections}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return path


def test_every_experiment_file_is_valid_in_both_variants():
    experiments = discover(REPO / "experiments", PARAMS)
    names = {e.name for e in experiments}
    # The seeds' experiments, one file each.
    assert {"reuters-lstm", "imdb-onehot-simplernn", "imdb-embedding-simplernn", "imdb-lstm",
            "imdb-lstm-dropout", "imdb-lstm-stacked", "imdb-gru-dropout", "seoul120-birnn",
            "seoul120-bilstm", "seoul120-bigru"} <= names
    stacked = next(e for e in experiments if e.name == "imdb-lstm-stacked")
    params = check_params(with_overrides(read_base(PARAMS), stacked.overrides(False), "t"), "t")
    model = params.train.model
    assert (model.cell, model.layers, model.units, model.dropout, model.embedding_dim) == ("lstm", 2, 8, 0.3, 128)
    assert (params.prepare.vocab.max_size, params.prepare.maxlen, params.train.optimizer,
            params.train.learning_rate, params.train.batch_size, params.train.early_stopping_patience) == (
        500, 100, "rmsprop", 0.0001, 64, 4)
    assert (params.tune.n_trials, params.train.use_tuned) == (0, False)   # the seed's settings: no search
    assert stacked.seed.value == 0.805


@pytest.mark.parametrize("tuned", [False, True])
def test_dvc_applies_the_set_param_arguments_as_intended(tmp_path, tuned):
    """DVC's own override code (Hydra) turns each experiment's -S list into exactly its params."""
    base = read_base(PARAMS)
    for experiment in discover(REPO / "experiments", PARAMS):
        target = tmp_path / f"{experiment.name}-{tuned}.yaml"
        shutil.copy(PARAMS, target)
        args = set_param_args(experiment.overrides(tuned))
        assert args[::2] == ["-S"] * (len(args) // 2)
        apply_overrides(target, args[1::2])
        got = to_dict(load_params(target))
        want = to_dict(check_params(with_overrides(base, experiment.overrides(tuned), "want"), "want"))
        assert got == want, experiment.name
        if tuned:   # the experiment's space replaced params.yaml's, not merged into it
            assert set(got["tune"]["space"]) == set(experiment.tuned["tune.space"])


@pytest.mark.parametrize("value", ["행정", "it's", 'say "hi"', "a\\b", "\\d+ [^ㄱ-ㅎ]", "a\\'b", 'a\\"b',
                                   "ends\\", "", "x y,z", "[not a list]", "1e-4"])
def test_strings_survive_hydra_quoting(value):
    (override,) = OverridesParser.create().parse_overrides([f"k={hydra_value(value)}"])
    assert override.value() == value


def test_numbers_lists_and_mappings_survive_hydra():
    value = {"model.cell": {"type": "categorical", "choices": ["lstm", "gru"]},
             "learning_rate": {"type": "float", "low": 1e-05, "high": 0.003, "log": True}}
    (override,) = OverridesParser.create().parse_overrides([f"k={hydra_value(value)}"])
    assert override.value() == value
    (override,) = OverridesParser.create().parse_overrides([f"k={hydra_value([1, 2.5, False, None])}"])
    assert override.value() == [1, 2.5, False, None]


@pytest.mark.parametrize("sections, message", [
    ({"params": {"train.model.cell": "transformer"}}, "train.model.cell"),
    ({"params": {"train.model.unit": 4}}, "train.model.unit: unknown key"),
    ({"params": {"nosuch.key": 1}}, "nosuch.key: no such section"),
    ({"tuned": {"tune.n_trials": 2, "tune.space": {"model.units": {"type": "int", "low": 9, "high": 2}}}},
     "tune.space"),
    ({"tuned": {}}, "tuned: tune.n_trials: required"),
    ({"seed": {"metric": "f1", "value": 0.5}}, "seed: needs metric"),
    ({"seed": {"metric": "test/accuracy", "value": 71.59}}, "seed.value"),
    ({"comment": "x"}, "comment: unknown key"),
])
def test_bad_experiment_files_name_the_file_and_key(tmp_path, sections, message):
    path = write_experiment(tmp_path, "bad", **sections)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path, read_base(PARAMS))
    assert str(path) in str(info.value) and message in str(info.value)


def test_bad_names_and_missing_files(tmp_path, monkeypatch, capsys):
    with pytest.raises(ExperimentError, match="ending in -tuned"):
        load_experiment(write_experiment(tmp_path, "x-tuned"), read_base(PARAMS))
    with pytest.raises(ExperimentError, match="no such experiment"):
        load_experiment(tmp_path / "nope.yaml", read_base(PARAMS))
    monkeypatch.chdir(REPO)
    assert main(["run", "nope", "--dry-run"]) == 2
    assert "nope: no experiment experiments/nope.yaml" in capsys.readouterr().err


def test_a_run_without_dvc_on_path_is_one_line_and_runs_nothing(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["run", "seoul120-bigru"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == ["experiments: error: dvc is not on PATH; activate the project's "
                                                 "environment (`. .venv/bin/activate`) and run it again"]
    assert "$ dvc" not in captured.out


def test_dry_run_prints_a_command_a_shell_can_run(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert main(["run", "seoul120-bigru", "--variant", "both", "--dry-run"]) == 0
    out = capsys.readouterr().out
    seed, tuned = [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("$ ")]
    assert seed[:7] == ["dvc", "exp", "run", "--temp", "--force", "-n", "seoul120-bigru"]
    assert 'dataset.classes=["행정","경제","복지"]' in seed and "tune.n_trials=0" in seed
    assert tuned[6] == "seoul120-bigru-tuned" and "~tune.space" in tuned


def tiny_experiment(root: Path) -> None:
    write_experiment(root / "experiments", "tiny",
                     title="tiny table, LSTM(4)",
                     seed={"metric": "val/accuracy", "value": 0.9, "source": "made up for the test"},
                     # whitespace tokens: no JVM to start in either variant's tokenize stage
                     params={"train.model.cell": "lstm", "train.model.units": 4, "train.epochs": 2,
                             "tokenize.analyzer": "whitespace", "tokenize.pos_drop": []},
                     tuned={"tune.n_trials": 2, "tune.epochs": 1, "tune.startup_trials": 1,
                            "tune.space": {"model.units": {"type": "int", "low": 5, "high": 6}}})


# ~60 s (a real `dvc exp run` of two variants): the slow tier; how the -S arguments apply is checked
# in `make test` (test_dvc_applies_the_set_param_arguments_as_intended).
@pytest.mark.slow
@pytest.mark.integration
def test_dvc_exp_run_logs_to_the_repos_store_and_results_come_from_mlflow(tmp_path, monkeypatch, capsys):
    # A fresh project: `dvc exp run --force` runs every stage anyway, so a reproduced one saves nothing.
    # The tuned variant only: it runs what the seed variant runs and the search besides (both would
    # be the whole pipeline twice, 75 s more); the seed variant's -S list is checked against DVC's own
    # override code above, and the results table with both variants below.
    project = make_project(tmp_path / "project")
    root = project.root
    tiny_experiment(root)
    project.commit("exp")
    params_before = (root / "params.yaml").read_bytes()

    done = project.run(sys.executable, "-m", "pipeline.experiments", "run", "tiny", "--variant", "tuned")
    assert done.returncode == 0, done.stdout + done.stderr
    # --temp: the stages ran in DVC's copy; the workspace and its params.yaml are as they were.
    assert (root / "params.yaml").read_bytes() == params_before
    assert not (root / "models").exists()
    listed = project.dvc("exp", "list", "--name-only")
    assert "tiny-tuned" in listed.stdout.split()

    # The runs are in the repo's own store (DVC_ROOT), not in the deleted copy, and tagged.
    client = project.client()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              "tags.`pipeline.stage` = 'train'")
    (tuned_run,) = runs
    assert tuned_run.data.tags["pipeline.experiment"] == "tiny-tuned"
    assert tuned_run.data.params["train.model.units"] in ("5", "6")   # from the tiny space, not params' 4
    assert tuned_run.data.params["train.model.cell"] == "lstm"         # the experiment's params apply too
    assert "tune.study" in tuned_run.data.tags
    trials = client.search_runs([tuned_run.info.experiment_id],
                                "tags.`pipeline.experiment` = 'tiny-tuned' and tags.`optuna.trial` != ''")
    assert len(trials) == 2
    artifacts = {a.path for a in client.list_artifacts(tuned_run.info.run_id, "train")}
    assert "train/history.json" in artifacts   # artifacts stored beside the store, not in the copy

    monkeypatch.chdir(root)
    assert main(["results"]) == 0
    assert "1 of 2 variants have results" in capsys.readouterr().out
    text = (root / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    assert (root / "docs" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![The tutorials' figures, ours, ours tuned](results.png)" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| `tiny`")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["val/accuracy", "0.9000", "not run"]
    metrics = tuned_run.data.metrics
    assert cells[4] == (f"**{metrics['best/val_accuracy']:.4f}** (test {metrics['test/accuracy']:.4f}, "
                        f"epoch {int(metrics['best/epoch'])})")
    assert cells[5] == f"model.units {tuned_run.data.params['train.model.units']}"
    assert tuned_run.info.run_id in text


def test_results_without_runs_say_not_run(tmp_path, monkeypatch, mlflow_store):
    tiny_experiment(tmp_path)
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["results", "-o", "out.md"]) == 0
    row = next(line for line in (tmp_path / "out.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| `tiny`"))
    assert row.count("not run") == 2


def log_result(store: str, name: str, test_accuracy: float, params: dict[str, str]) -> str:
    """A finished train run of experiment `name` that evaluate scored, as the stages leave it; its id."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store)
    found = client.get_experiment_by_name("textclf-tiny")
    experiment_id = found.experiment_id if found else client.create_experiment("textclf-tiny")
    run_id = client.create_run(experiment_id, tags={"pipeline.experiment": name, "pipeline.stage": "train",
                                                    "git.commit": "feedbeef00"}).info.run_id
    for key, value in {"best/val_accuracy": 0.7, "best/epoch": 2, "test/accuracy": test_accuracy}.items():
        client.log_metric(run_id, key, value)
    for key, value in params.items():
        client.log_param(run_id, key, value)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def earlier(run_id: str, units: str) -> Outcome:
    return Outcome(run_id, 0.81, 0.8, 5, {"train.model.units": units, "train.use_tuned": "False"}, "3a7ae47")


def test_results_json_round_trips_outcomes(tmp_path):
    outcomes = {"tiny": earlier("a" * 32, "4"),
                "tiny-tuned": Outcome("b" * 32, None, 0.9, None, {}, "", baseline_accuracy=0.85)}
    write_outcomes(tmp_path / "results.json", outcomes)
    assert read_outcomes(tmp_path / "results.json") == outcomes
    assert read_outcomes(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text('{"tiny": {"run_id": "x"}}')
    with pytest.raises(ExperimentError, match="bad.json: not a results file"):
        read_outcomes(tmp_path / "bad.json")


@pytest.fixture
def earlier_results(tmp_path, monkeypatch, mlflow_store) -> Path:
    """tmp_path as a project whose docs/results.json holds both variants of `tiny`, measured
    elsewhere; the store holds a newer run of tiny-tuned only."""
    tiny_experiment(tmp_path)
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    write_outcomes(tmp_path / "docs" / "results.json", {"tiny": earlier("a" * 32, "4"),
                                                        "tiny-tuned": earlier("b" * 32, "5")})
    return tmp_path


def test_results_keep_earlier_outcomes_the_store_lacks(earlier_results, mlflow_store):
    new_run = log_result(mlflow_store, "tiny-tuned", 0.9, {"train.model.units": "6", "train.use_tuned": "True"})
    assert main(["results"]) == 0
    text = (earlier_results / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    (row,) = [line for line in text.splitlines() if line.startswith("| `tiny`")]
    # The seed row from results.json, the tuned one from the store; compared with each other.
    assert "| **0.8100** (test 0.8000, epoch 5) | **0.7000** (test 0.9000, epoch 2) | model.units 6 |" in row
    assert f"`tiny`: MLflow run `{'a' * 32}` (commit 3a7ae47)" in text
    assert f"`tiny-tuned`: MLflow run `{new_run}` (commit feedbee)" in text and "b" * 32 not in text
    stored = read_outcomes(earlier_results / "docs" / "results.json")
    assert stored["tiny"] == earlier("a" * 32, "4")
    assert stored["tiny-tuned"].run_id == new_run and stored["tiny-tuned"].test_accuracy == 0.9


def test_results_fresh_ignores_results_json(earlier_results, mlflow_store, capsys):
    new_run = log_result(mlflow_store, "tiny-tuned", 0.9, {"train.model.units": "6"})
    assert main(["results", "--fresh"]) == 0
    assert "1 of 2 variants have results" in capsys.readouterr().out
    text = (earlier_results / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    (row,) = [line for line in text.splitlines() if line.startswith("| `tiny`")]
    assert "| not run | **0.7000**" in row and "a" * 32 not in text and new_run in text
    assert set(read_outcomes(earlier_results / "docs" / "results.json")) == {"tiny-tuned"}
