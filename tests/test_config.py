"""params.yaml is read once into frozen, typed objects; bad keys fail at start-up, naming the key."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from helpers import REPO
from pipeline.core.cli import EXIT_BAD_INPUT
from pipeline.core.config import Params, load_params, override, parse_params, read_yaml, to_dict
from pipeline.core.errors import ParamsError


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
    with pytest.raises(ValidationError, match="frozen"):
        params.prepare.maxlen = 5  # type: ignore[misc]


def test_defaults_match_a_file_with_one_empty_section(tmp_path):
    # An empty file is refused (a file truncated by a full disk must not run the default dataset):
    # tests/test_catalogue_data.py.
    assert load_params(write(tmp_path, "dataset:\n")) == Params()


def test_code_defaults_are_the_repo_params():
    """One source of defaults: a key left out of a params file means what params.yaml says."""
    assert to_dict(load_params(REPO / "params.yaml")) == to_dict(Params())


def test_params_yaml_writes_out_every_key_the_code_has():
    """params.yaml is the whole contract: each key the models define is in the file (with the value the
    test above checks), so no default lives only in the code."""
    def keys(data, prefix=""):
        for name, value in data.items():
            if isinstance(value, dict) and name != "space":   # tune.space is one value, a mapping
                yield from keys(value, f"{prefix}{name}.")
            else:
                yield prefix + name

    written = set(keys(read_yaml(REPO / "params.yaml")))
    assert written == set(keys(to_dict(Params()))), written ^ set(keys(to_dict(Params())))


def test_nulls_and_lists(tmp_path):
    params = load_params(write(tmp_path, "tokenize:\n  clean_pattern:\n  pos_drop:\n  stopwords: [a, 1]\n"
                                         "tune:\n  space:\ndataset:\n"))
    assert (params.tokenize.clean_pattern, params.tokenize.pos_drop) == ("", ())
    assert params.tokenize.stopwords == ("a", "1") and dict(params.tune.space) == {}
    assert params.dataset == Params().dataset


def test_round_trip_through_plain_data():
    params = load_params(REPO / "params.yaml")
    assert parse_params(to_dict(params)) == params


def test_repo_search_space_is_typed():
    space = load_params(REPO / "params.yaml").tune.space
    assert space["model.cell"].choices == ("lstm", "gru")
    assert space["model.bidirectional"].choices == (True, False)
    assert (space["model.units"].low, space["model.units"].high, space["model.units"].log) == (16, 128, True)
    with pytest.raises(TypeError):
        space["model.units"] = space["model.cell"]  # type: ignore[index]  (read-only like the rest)


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
    # tune.space: every range names a train key and stays inside what that key accepts
    ("tune:\n  space:\n    model.unitz: {type: int, low: 1, high: 2}\n",
     "tune.space.model.unitz: not a tunable train key (allowed: model.cell"),
    ("tune:\n  space:\n    seed: {type: int, low: 1, high: 2}\n", "tune.space.seed: not a tunable train key"),
    ("tune:\n  space:\n    model.units: {low: 1, high: 2}\n", "tune.space.model.units.type: required"),
    ("tune:\n  space:\n    model.units: {type: int, low: 8}\n", "tune.space.model.units.high: required"),
    ("tune:\n  space:\n    model.units: {type: float, low: 8, high: 9}\n",
     "tune.space.model.units.type: train.model.units takes an integer: use type: int"),
    ("tune:\n  space:\n    model.cell: {type: int, low: 1, high: 2}\n",
     "train.model.cell takes one of simple_rnn, lstm, gru, not a number range: use type: categorical"),
    ("tune:\n  space:\n    model.cell: {type: categorical, choices: [gru, transformer]}\n",
     "tune.space.model.cell.choices[1]: got 'transformer', allowed: simple_rnn, lstm, gru"),
    ("tune:\n  space:\n    model.cell: {type: categorical}\n", "tune.space.model.cell.choices: required"),
    ("tune:\n  space:\n    model.dropout: {type: float, low: 0, high: 1}\n",
     "tune.space.model.dropout.high: expected a number >= 0 and < 1, got 1.0"),
    ("tune:\n  space:\n    learning_rate: {type: float, low: 0, high: 0.1, log: true}\n",
     "tune.space.learning_rate.low: expected a number > 0"),
    ("tune:\n  space:\n    model.units: {type: int, low: 64, high: 8}\n",
     "tune.space.model.units: low (64) is above high (8)"),
    ("tune:\n  space:\n    model.units: {type: int, low: 8, high: 64, log: true, step: 8}\n",
     "tune.space.model.units.step: Optuna takes either log or step"),
    ("tune:\n  space:\n    model.units: {type: int, low: 8.5, high: 64}\n",
     "tune.space.model.units.low: expected an integer, got 8.5"),
    ("tune:\n  space: [model.units]\n", "tune.space: expected a mapping"),
    ("tune:\n  metric: test/accuracy\n", "tune.metric: got 'test/accuracy', allowed: val/accuracy, val/loss"),
    ("tune:\n  subsample: 0\n", "tune.subsample: expected a number > 0 and <= 1"),
    ("train:\n  modle: {}\n", "train.modle: unknown key (allowed in train: model, epochs, batch_size,"),
    ("train:\n  model:\n    units: 0\n", "train.model.units: expected an integer >= 1 and <= 4096, got 0"),
    ("champion:\n  linear:\n    char_ngrams: [4, 2]\n",
     "champion.linear.char_ngrams: expected [low, high] with 1 <= low <= high <= 10, or []"),
    ("train:\n  model:\n    char_ngrams: [2, 4]\n",
     "train.model.char_ngrams: removed (it measured no gain; see docs/history.md)"),
    ("tune:\n  space:\n    lr_schedule: {type: categorical, choices: [constant, cosine]}\n",
     "tune.space.lr_schedule: removed (it measured no gain; see docs/history.md)"),
    ("train:\n  epochs: true\n", "train.epochs: expected an integer >= 1 and <= 10000, got True"),
    ("train:\n  epochs: 2.5\n", "train.epochs: expected an integer >= 1 and <= 10000, got 2.5"),
    ("train:\n  learning_rate: '0.1'\n", "train.learning_rate: expected a number > 0 and <= 10, got '0.1'"),
    ("train:\n  learning_rate: null\n", "train.learning_rate: expected a number > 0 and <= 10, got None"),
    ("dataset:\n  table:\n    label_column: 3\n", "dataset.table.label_column: expected a string, got 3"),
    ("prepare:\n  padding: middle\n", "prepare.padding: got 'middle', allowed: pre, post"),
    ("[1, 2]\n", "the file holds a list, not a mapping; expected a mapping of sections (dataset:, "),
    ("tune:\n  space:\n    maxlen: 5\n", "tune.space.maxlen: expected a mapping, got 5"),
    ("tune:\n  space:\n    maxlen: {type: int, low: 1, high: 9, lo: 2}\n",
     "tune.space.maxlen.lo: unknown key (allowed in tune.space.maxlen: type, low, high, log, step, choices)"),
    ("tune:\n  space:\n    maxlen: {type: integer, low: 1, high: 9}\n",
     "tune.space.maxlen.type: got 'integer', allowed: int, float, categorical"),
    ("tune:\n  space:\n    batch_size: {type: categorical, choices: [16, {a: 1}]}\n",
     "tune.space.batch_size.choices: expected plain values"),
    ("tune:\n  space:\n    batch_size: {type: categorical, choices: [16, 0]}\n",
     "tune.space.batch_size.choices[1]: expected an integer >= 1 and <= 65536, got 0"),
    ("tokenize:\n  worker_kind: thread\n  analyzer: komoran\n", "tokenize.worker_kind: thread is only safe with okt"),
    ("dataset:\n  name: table\n  table: {source: a.csv, text_columns: [t], label_column: y, sha256: abc}\n",
     "dataset.table.sha256: expected 64 hex digits, got 'abc'"),
])
def test_bad_values_name_the_key(tmp_path, text, message):
    with pytest.raises(ParamsError) as err:
        load_params(write(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(tmp_path / "params.yaml") in str(err.value)


def test_a_removed_option_is_refused_with_one_line_saying_so(tmp_path):
    """A params.yaml (or a tuned value, an experiment) that still names an option taken out of the core."""
    path = write(tmp_path, "train:\n  epochs: 3\n  label_smoothing: 0.1\n")
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value) == f"{path}: train.label_smoothing: removed (it measured no gain; see docs/history.md)"
    with pytest.raises(ParamsError, match=r"^best.json: label_smoothing: removed \(it measured no gain"):
        override(Params().train, {"label_smoothing": 0.1}, "best.json")


def test_integer_is_accepted_as_float(tmp_path):
    assert load_params(write(tmp_path, "download:\n  timeout: 5\n")).download.timeout == 5.0


def test_stage_exits_with_one_line_naming_the_key(tmp_path, capsys):
    from pipeline.stages.prepare import main

    path = write(tmp_path, "prepare:\n  maxlen: -3\n")
    assert main(["--params", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prepare.maxlen" in err[0] and "-3" in err[0]


def test_class_names_are_spaced_as_the_readers_space_labels():
    """A label's line breaks and runs of spaces are read as one space (data/readers.py): the class
    names in dataset.classes are compared after the same change, and NFC."""
    import unicodedata

    from pipeline.core.config import DatasetParams

    nfd = unicodedata.normalize("NFD", "행정")
    assert DatasetParams(classes=["b  c", " b\nc ", nfd]).classes == ("b c", "b c", "행정")
