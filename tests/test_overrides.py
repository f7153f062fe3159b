"""One config contract: `-S key=value` is `dvc exp run -S`'s grammar, applied as DVC applies it, and
params.yaml is read as DVC reads it (ruamel.yaml), so the stages and DVC never disagree on a value."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dvc.exceptions import InvalidArgumentError
from dvc.utils.hydra import apply_overrides as dvc_apply_overrides
from dvc.utils.serialize import YAMLFileCorruptedError, parse_yaml

from helpers import REPO
from pipeline.core.cli import EXIT_BAD_INPUT, SET_PARAMS_ENV, SET_PARAMS_TAG, run_stage, stage_parser
from pipeline.core.config import load_params, read_yaml
from pipeline.core.errors import ParamsError
from pipeline.core.overrides import apply_overrides, for_file, parse_assignments

PARAMS = REPO / "params.yaml"


def dvc_applies(tmp_path: Path, assignments: list[str]) -> dict:
    """What `dvc exp run -S ...` leaves in params.yaml, read back as DVC reads it."""
    target = tmp_path / "dvc" / "params.yaml"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(PARAMS, target)
    dvc_apply_overrides(target, assignments)
    return parse_yaml(target.read_text(encoding="utf-8"), str(target))


@pytest.mark.parametrize("assignments", [
    ["train.learning_rate=1e-3"],                                   # a float YAML 1.1 would read as text
    ["train.learning_rate=0.00025", "train.epochs=3", "train.model.bidirectional=false"],
    ['tokenize.clean_pattern="[^ㄱ-ㅎㅏ-ㅣ가-힣 ]"'],                   # a Hangul string (a regex)
    ['dataset.classes=["행정","경제","1e-3"]'],                        # a list, Hangul and a number-like text
    ["train.model={units:8,cell:lstm}"],                            # a mapping merges into the section
    ["~tune.space", "+tune.space={model.units:{type:int,low:8,high:64,log:true}}"],   # replaced whole
    ["~train.model.one_hot", "+train.extra=1", "++train.epochs=4"],  # delete, add, add-or-change
    ["tune.space.maxlen.high=250", "tune.space.maxlen.step=25"],
    ["train.devices=[]", "dataset.table.source=null", 'dataset.table.label_column=""'],
], ids=lambda a: " ".join(a)[:40])
def test_apply_overrides_gives_what_dvc_leaves_in_the_file(tmp_path, assignments):
    ours = apply_overrides(read_yaml(PARAMS), assignments, "params.yaml")
    theirs = dvc_applies(tmp_path, assignments)
    assert ours == theirs
    # the same key order too (DVC writes the changes back into the file's own structure)
    assert json.dumps(ours, ensure_ascii=False, default=str) == json.dumps(theirs, ensure_ascii=False, default=str)


def test_the_data_given_is_left_as_it_was():
    data = read_yaml(PARAMS)
    before = json.dumps(data, sort_keys=True, default=str)
    apply_overrides(data, ["train.epochs=3", "~tune.space"], "params.yaml")
    assert json.dumps(data, sort_keys=True, default=str) == before
    assert apply_overrides(data, [], "params.yaml") == data


def test_an_unknown_key_is_one_line_and_dvc_refuses_it_too(tmp_path):
    with pytest.raises(ParamsError) as err:
        apply_overrides(read_yaml(PARAMS), ["train.epochs=3", "train.unitz=3"], "params.yaml")
    assert str(err.value) == "params.yaml with -S train.unitz=3: train.unitz: unknown key (not in params.yaml)"
    with pytest.raises(InvalidArgumentError):
        dvc_applies(tmp_path, ["train.unitz=3"])
    with pytest.raises(InvalidArgumentError):   # nor can DVC name a key inside tune.space's "model.cell"
        dvc_applies(tmp_path, ["tune.space.model.cell.choices=[gru]"])


@pytest.mark.parametrize("assignment, message", [
    ("nosuch.key=1", "nosuch.key: no such section in params.yaml (nosuch)"),
    ("~train.nokey", "train.nokey: cannot delete it: not in params.yaml"),
    ("+train.epochs=3", "train.epochs: already in params.yaml: leave out the + to change it"),
    ("train.epochs", "not in dvc exp run -S's grammar (Hydra's override grammar): "),
    ("train.epochs=[1", "not in dvc exp run -S's grammar (Hydra's override grammar): "),
    ("dataset.name=행정", "unexpected '행' at character 14; quote a text value that is not a plain word"),
    ("train.epochs=1,2", "a sweep (several values) is for `dvc exp run --queue`; give one value"),
    ("tune.space.model.cell.choices=[gru]", "tune.space.model.cell.choices: tune.space's key 'model.cell' holds a "
     "dot, and -S splits keys at dots (Hydra, as dvc exp run); set the whole section instead: -S ~tune.space"),
])
def test_bad_assignments_are_one_line_naming_the_file_and_the_assignment(assignment, message):
    with pytest.raises(ParamsError) as err:
        apply_overrides(read_yaml(PARAMS), [assignment], "some/params.yaml")
    assert str(err.value).startswith(f"some/params.yaml with -S {assignment}: ")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_file_prefix_is_taken_as_dvc_takes_it():
    assert for_file(["params.yaml:train.epochs=3", "train.epochs=4"], Path("x/params.yaml")) == [
        "train.epochs=3", "train.epochs=4"]
    with pytest.raises(ParamsError, match=r"sets a key of other.yaml, but the params file here is params.yaml"):
        for_file(["other.yaml:train.epochs=3"], "params.yaml")


def test_values_for_the_typed_path_are_read_in_the_same_grammar():
    assert parse_assignments(["model.pooling=max", "learning_rate=1e-3", 'x="행정"', "l=[1,2]"], "--set") == {
        "model.pooling": "max", "learning_rate": 1e-3, "x": "행정", "l": [1, 2]}
    with pytest.raises(ParamsError, match=r"^--set ~x: expected KEY=VALUE"):
        parse_assignments(["~x"], "--set")


# --- params.yaml read as DVC reads it ------------------------------------------------------------

TRICKY = """\
a: 1e-3
b: yes
c: no
d: on
e: 0o17
f: 1_000
g: 2024-01-02
h: ~
i: 0x1f
j: 1:20
k: .inf
l: 1.0e+3
m: True
n: 017
o: "1e-3"
"""


def test_read_yaml_and_dvc_agree_on_tricky_values(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(TRICKY, encoding="utf-8")
    ours = read_yaml(path)
    assert ours == parse_yaml(TRICKY, str(path))
    assert [type(ours[k]) for k in "abcdefhm"] == [float, str, str, str, int, int, type(None), bool]
    assert (ours["a"], ours["e"], ours["f"], ours["o"]) == (0.001, 15, 1000, "1e-3")
    assert type(ours) is dict


def test_read_yaml_gives_plain_containers(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("a:\n  b: [1, {c: d}]\n", encoding="utf-8")
    data = read_yaml(path)
    assert type(data) is dict and type(data["a"]) is dict and type(data["a"]["b"]) is list
    assert type(data["a"]["b"][1]) is dict


def test_an_empty_file_is_none_and_refused_by_load_params(tmp_path):
    path = tmp_path / "params.yaml"
    for text in ("", "# nothing\n", "null\n"):
        path.write_text(text, encoding="utf-8")
        assert read_yaml(path) is None
        with pytest.raises(ParamsError, match=r"the file is empty; expected a mapping of sections"):
            load_params(path)


@pytest.mark.parametrize("text, message", [
    ("train:\n  epochs: 2\n  units: 3\n  epochs: 3\n",
     "key 'epochs' appears twice in one mapping (line 2 and line 4); keep one"),
    ("a: {x: 1, y: 2, x: 3}\n", "key 'x' appears twice in one mapping (line 1, columns 5 and 17); keep one"),
    ("a:\n  1: x\n  01: y\n", "key 1 appears twice in one mapping (line 2 and line 3); keep one"),
    ("a: [1\nb: 2\n", "not valid YAML: line 2, column 2: expected ',' or ']', but got ':' "
                      "(while parsing a flow sequence at line 1)"),
    ("a: 1\n---\nb: 2\n", "not valid YAML: line 2, column 1: but found another document"),
])
def test_bad_yaml_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParamsError) as err:
        read_yaml(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(YAMLFileCorruptedError):   # DVC refuses the file too
        parse_yaml(text, str(path))


# --- the stages' -S ------------------------------------------------------------------------------

def test_stage_help_shows_set_param():
    done = subprocess.run([sys.executable, "-m", "pipeline.download", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "-S KEY=VALUE, --set-param KEY=VALUE" in done.stdout
    assert "in dvc exp run -S's grammar" in " ".join(done.stdout.split())
    assert "dvc.lock is not updated" in " ".join(done.stdout.split())


def test_a_bad_set_param_exits_2_with_one_line_before_any_run(tmp_path):
    shutil.copy(PARAMS, tmp_path / "params.yaml")
    done = subprocess.run([sys.executable, "-m", "pipeline.download", "-S", "train.epochs=3", "-S", "train.unitz=3"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == EXIT_BAD_INPUT
    assert done.stderr.strip().splitlines() == [
        "download: error: params.yaml with -S train.unitz=3: train.unitz: unknown key (not in params.yaml)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]   # no run, no output, no cache


def run_with(argv: list[str], reads=("train.epochs", "train.batch_size", "dataset.classes"), resolve=None):
    seen: dict = {}

    def body(params, args) -> None:
        seen.update(params=params, env=os.environ.get(SET_PARAMS_ENV))

    code = run_stage("download", body, stage_parser("python -m pipeline.download", "test"), argv,
                     reads=reads, resolve=resolve)
    return code, seen


def test_set_params_reach_the_stage_its_workers_and_its_mlflow_run(in_tmp, mlflow_store, capsys):
    import mlflow

    shutil.copy(PARAMS, in_tmp / "params.yaml")

    def resolve(params):   # as train merges the tuned values: the run records what is used
        return params.model_copy(update={"train": params.train.model_copy(update={"batch_size": 7})})

    argv = ["-S", "train.epochs=3", "--set-param", 'dataset.classes=["행정","경제"]']
    code, seen = run_with(argv, resolve=resolve)
    assert code == 0, capsys.readouterr().err
    params = seen["params"]
    assert (params.train.epochs, params.train.batch_size, params.dataset.classes) == (3, 7, ("행정", "경제"))
    assert json.loads(seen["env"]) == ["train.epochs=3", 'dataset.classes=["행정","경제"]']   # for its workers
    assert SET_PARAMS_ENV not in os.environ
    client = mlflow.MlflowClient(tracking_uri=mlflow_store)
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.data.params["train.epochs"] == "3" and run.data.params["train.batch_size"] == "7"
    assert run.data.params["dataset.classes"] == "['행정', '경제']"
    assert run.data.tags[SET_PARAMS_TAG] == '-S train.epochs=3 -S dataset.classes=["행정","경제"]'
    assert (in_tmp / "params.yaml").read_bytes() == PARAMS.read_bytes()   # in memory only


def test_a_worker_applies_the_stage_s_set_params_before_its_own(in_tmp, monkeypatch, capsys):
    shutil.copy(PARAMS, in_tmp / "params.yaml")
    monkeypatch.setenv(SET_PARAMS_ENV, json.dumps(["train.epochs=5", "train.batch_size=8"]))
    code, seen = run_with(["--no-track", "-S", "train.epochs=6"])
    assert code == 0, capsys.readouterr().err
    assert (seen["params"].train.epochs, seen["params"].train.batch_size) == (6, 8)
    assert os.environ[SET_PARAMS_ENV] == json.dumps(["train.epochs=5", "train.batch_size=8"])   # put back


def test_a_set_param_the_checks_refuse_names_the_assignment(in_tmp, capsys):
    shutil.copy(PARAMS, in_tmp / "params.yaml")
    code, seen = run_with(["--no-track", "-S", "train.epochs=0"])
    assert code == EXIT_BAD_INPUT and not seen
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "download: error: params.yaml with -S train.epochs=0: train.epochs: expected an integer >= 1"), err
