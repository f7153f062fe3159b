"""params.yaml is read once into frozen, typed objects; bad keys fail at start-up, naming the key."""
from __future__ import annotations

import dataclasses

import pytest

from pipeline.cli import EXIT_BAD_INPUT
from pipeline.config import Params, ParamsError, load_params, parse_params, to_dict
from conftest import REPO


def write(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_repo_params_load_into_frozen_objects():
    params = load_params(REPO / "params.yaml")
    assert params.dataset.name == "seoul120"
    assert params.dataset.classes == ("행정", "경제", "복지")
    assert params.tokenize.pos_drop == ("Josa", "Punctuation")
    assert params.prepare.vocab.max_size == 20000
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.prepare.maxlen = 5  # type: ignore[misc]


def test_defaults_match_an_empty_file(tmp_path):
    assert load_params(write(tmp_path, "")) == Params()


def test_round_trip_through_plain_data():
    params = load_params(REPO / "params.yaml")
    assert parse_params(to_dict(params)) == params


@pytest.mark.parametrize("text, message", [
    ("tokenize:\n  workerz: 2\n", "tokenize.workerz: unknown key"),
    ("prepare:\n  vocab:\n    max_sise: 3\n", "prepare.vocab.max_sise: unknown key"),
    ("training:\n  epochs: 3\n", "training: unknown key"),
    ("tokenize:\n  workers: two\n", "tokenize.workers: expected an integer >= 0 and <= 256, got 'two'"),
    ("tokenize:\n  workers: -1\n", "tokenize.workers: expected"),
    ("tokenize:\n  stem: 'yes'\n", "tokenize.stem: expected true or false"),
    ("tokenize:\n  analyzer: spacy\n", "tokenize.analyzer: got 'spacy', allowed: okt, komoran"),
    ("prepare:\n  val_size: 1.5\n", "prepare.val_size: expected a number > 0 and < 1, got 1.5"),
    ("prepare:\n  val_size: 0.5\n  test_size: 0.5\n", "prepare.val_size + prepare.test_size must be < 1"),
    ("prepare:\n  maxlen: 0\n", "prepare.maxlen: expected an integer >= 1"),
    ("dataset:\n  classes: 행정\n", "dataset.classes: expected a list of strings"),
    ("dataset:\n  name: table\n", "dataset.table.source: required when dataset.name is table"),
    ("dataset:\n  name: table\n  table:\n    source: a.csv\n    text_columns: [t]\n",
     "dataset.table.label_column: required"),
    ("dataset:\n  table:\n    sha256: abc\n  name: table\n", "dataset.table.source: required"),
    ("tokenize:\n  analyzer: char\n  pos_drop: [Josa]\n", "tokenize.pos_drop: the 'char' analyzer has no"),
    ("tokenize:\n  clean_pattern: '[unclosed'\n", "tokenize.clean_pattern: not a valid regular expression"),
    ("tokenize: [1, 2]\n", "tokenize: expected a mapping"),
    ("prepare:\n  padding: both\n", "prepare.padding: got 'both', allowed: pre, post"),
])
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(tmp_path / "params.yaml") in str(err.value)


def test_integer_is_accepted_as_float(tmp_path):
    assert load_params(write(tmp_path, "download:\n  timeout: 5\n")).download.timeout == 5.0


def test_stage_exits_with_one_line_naming_the_key(tmp_path, capsys):
    from pipeline.prepare import main

    path = write(tmp_path, "prepare:\n  maxlen: -3\n")
    assert main(["--params", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prepare.maxlen" in err[0] and "-3" in err[0]
