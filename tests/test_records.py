"""The JSON records passed between stages (pipeline/core/records.py): each reads back what its writer
writes, key for key and in order; a missing, damaged or invalid file is one line naming it; champion.json
keeps the kind/weight rule."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import make_params
from pipeline.core.config import to_dict
from pipeline.core.errors import DataError, PipelineError, StageError
from pipeline.core.records import (
    THE_RNN,
    ChampionRecord,
    ModelRecord,
    PreparedRecord,
    read_champion,
    read_model_record,
    read_prepared_record,
    write_record,
)
from pipeline.data.prepared import Cut, read_cut

REBUILD = "rebuild it with `dvc repro train` or `dvc checkout models`"


class Saved:   # save_bundle's model, without training a network
    def save(self, path):
        path.write_bytes(b"")


def prepare_stage_record() -> dict:
    """params.json as the prepare stage makes it (pipeline/stages/prepare.py: write_outputs)."""
    from pipeline.data.downloads import dataset_record

    params = make_params(prepare={"maxlen": 12, "padding": "post", "truncating": "post"})
    return {"dataset": dataset_record(params.dataset), "tokenize": to_dict(params.tokenize),
            "prepare": to_dict(params.prepare)}


@pytest.fixture
def prepared(tmp_path, tiny_prepared) -> Path:
    """tiny_prepared with the params.json the prepare stage writes, through write_prepared."""
    from helpers.tinydata import tiny_data
    from pipeline.data.prepared import write_prepared

    data = tiny_data()
    folder = tmp_path / "prepared"
    preprocess = json.loads((tiny_prepared / "preprocess.json").read_text())
    write_prepared(folder, {"train": data.train, "val": data.val}, {f"w{i}": i for i in range(30)}, data.labels,
                   prepare_stage_record(), preprocess)
    return folder


def test_the_prepared_record_reads_back_what_the_prepare_stage_writes(prepared):
    record = prepare_stage_record()
    text = (prepared / "params.json").read_text(encoding="utf-8")
    assert text == json.dumps(record, ensure_ascii=False, indent=2) + "\n"   # write_prepared as it wrote before
    got = read_prepared_record(prepared)
    assert isinstance(got, PreparedRecord)
    assert json.dumps(got.as_json()) == json.dumps(record)   # every key, in the order written
    assert (got.prepare.maxlen, got.prepare.padding, got.prepare.truncating) == (12, "post", "post")
    assert got.prepare.model_extra["seed"] == record["prepare"]["seed"] and got.dataset == record["dataset"]
    assert read_cut(prepared) == Cut(12, "post", "post")


def test_prepared_params_older_than_truncating_are_cut_at_the_front(tiny_prepared, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(tiny_prepared, folder)
    (folder / "params.json").write_text(json.dumps({"prepare": {"maxlen": 9, "padding": "pre"}}))
    got = read_prepared_record(folder)
    assert got.prepare.truncating == "pre" and got.dataset == {} and got.tokenize == {}
    assert got.as_json() == {"prepare": {"maxlen": 9, "padding": "pre"}}   # nothing added when copied on
    assert read_cut(folder) == Cut(9, "pre", "pre")
    assert read_prepared_record(tiny_prepared).prepare.maxlen == 12


def test_the_model_record_reads_back_what_save_bundle_writes(prepared, tmp_path):
    from pipeline.serve.bundle import load_encoder, save_bundle

    bundle = tmp_path / "models"
    bundle.mkdir()
    cfg = make_params(train={"maxlen": 4}).train
    save_bundle(bundle, Saved(), prepared, cfg)
    # The bytes the raw writer wrote: the train params, then the prepared params.json as it is.
    before = {"train": to_dict(cfg), "prepared": json.loads((prepared / "params.json").read_text(encoding="utf-8"))}
    assert (bundle / "params.json").read_text(encoding="utf-8") == json.dumps(before, ensure_ascii=False,
                                                                               indent=2) + "\n"
    got = read_model_record(bundle)
    assert isinstance(got, ModelRecord) and got.prepared == read_prepared_record(prepared)
    assert json.dumps(got.as_json()) == json.dumps(before)
    assert got.train.maxlen == 4 and got.train.model_extra["epochs"] == cfg.epochs
    assert Cut.of_model(got) == Cut(4, "post", "post")
    encoder = load_encoder(bundle)
    assert (encoder.maxlen, encoder.padding, encoder.truncating) == (4, "post", "post")
    # A record written from the typed one is the same file again.
    write_record(tmp_path / "again.json", got)
    assert (tmp_path / "again.json").read_bytes() == (bundle / "params.json").read_bytes()


def test_the_tiny_bundle_reads_as_a_model_record_serving_the_rnn(tiny_bundle):
    from pipeline.serve.bundle import served

    record = read_model_record(tiny_bundle)
    assert Cut.of_model(record) == Cut(12, "post", "pre") and record.train.maxlen == 0
    assert read_champion(tiny_bundle) == THE_RNN   # no champion.json: a bundle from before the champion
    assert (served(tiny_bundle).kind, served(tiny_bundle).weight) == ("rnn", 1.0)


def test_cut_reads_mappings_as_the_typed_records():
    prepare = {"maxlen": 60, "padding": "post", "truncating": "post"}
    assert Cut.of(prepare) == Cut.of(PreparedRecord(prepare=prepare).prepare) == Cut(60, "post", "post")
    assert Cut.of_model({"train": {"maxlen": 40}, "prepared": {"prepare": prepare}}) == Cut(40, "post", "post")
    assert Cut.of_model({"prepared": {"prepare": {"maxlen": 9, "padding": "pre"}}}) == Cut(9, "pre", "pre")


def a_choice(serve: str = "auto"):
    """A Choice as the train stage makes it (champion.choose) from made-up validation probabilities."""
    from pipeline.model.champion import choose

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    rnn = np.clip(np.eye(2)[y] * 0.6 + rng.random((80, 2)) * 0.5, 1e-3, None)
    linear = np.clip(np.eye(2)[y] * 0.5 + rng.random((80, 2)) * 0.6, 1e-3, None)
    rnn, linear = rnn / rnn.sum(1, keepdims=True), linear / linear.sum(1, keepdims=True)
    return choose(y, rnn, linear, make_params(champion={"serve": serve}).champion, "validation")


@pytest.mark.parametrize("serve", ["auto", "rnn", "linear", "blend"])
def test_the_champion_record_reads_back_what_the_train_stage_writes(serve, tmp_path):
    from pipeline.core.atomic import write_json

    choice = a_choice(serve)
    write_json(tmp_path / "champion.json", choice.as_json())   # as pipeline/stages/train.py writes it
    written = (tmp_path / "champion.json").read_text(encoding="utf-8")
    got = read_champion(tmp_path, required=True)
    assert (got.kind, got.weight, got.selected_on, got.rows) == (choice.kind, choice.weight, "validation", 80)
    assert got.candidates == choice.candidates and got.lead_se == choice.lead_se and got.grid == choice.grid
    assert json.dumps(got.as_json()) == json.dumps(choice.as_json())   # every field, in Choice's order
    write_record(tmp_path / "again.json", got)
    assert (tmp_path / "again.json").read_text(encoding="utf-8") == written


def test_infinite_leads_and_unknown_keys_survive_the_round_trip(tmp_path):
    record = {"kind": "blend", "weight": 0.4, "candidates": {"rnn": {"val/accuracy": 1.0},
                                                           "blend": {"weight": 0.4, "val/accuracy": 1.0}},
              "lead_se": {"rnn": float("inf"), "blend": 0.0}, "note": {"by": "hand"}}
    (tmp_path / "champion.json").write_text(json.dumps(record))
    got = read_champion(tmp_path)
    assert got.lead_se["rnn"] == float("inf") and got.model_extra == {"note": {"by": "hand"}}
    write_record(tmp_path / "again.json", got)
    assert json.loads((tmp_path / "again.json").read_text()) == record


def test_another_candidate_of_the_bundle_is_the_same_record_with_its_kind_and_weight(tmp_path):
    from pipeline.core.atomic import write_json
    from pipeline.serve.bundle import served
    from pipeline.serve.pyfunc import _champion_file

    choice = a_choice("blend")
    write_json(tmp_path / "champion.json", choice.as_json())
    for kind, weight in (("linear", 0.0), ("rnn", 1.0), ("blend", choice.weight)):
        _champion_file(tmp_path, tmp_path / f"{kind}.json", kind, served(tmp_path))
        assert json.loads((tmp_path / f"{kind}.json").read_text()) == {**json.loads(json.dumps(choice.as_json())),
                                                                       "kind": kind, "weight": weight}
    old = tmp_path / "old"
    old.mkdir()
    _champion_file(old, tmp_path / "old.json", "rnn", served(old))   # a bundle from before the champion
    assert json.loads((tmp_path / "old.json").read_text()) == {"kind": "rnn", "weight": 1.0}


@pytest.mark.parametrize("kind, weight", [("rnn", 1), ("rnn", 1.0), ("linear", 0), ("blend", 0.3)])
def test_a_champion_is_a_kind_with_its_weight(kind, weight, tmp_path):
    (tmp_path / "champion.json").write_text(json.dumps({"kind": kind, "weight": weight}))
    got = read_champion(tmp_path)
    assert (got.kind, got.weight) == (kind, weight) and isinstance(got.weight, float)


@pytest.mark.parametrize("kind, weight", [("linear", 0.5), ("rnn", 0.0), ("rnn", True), ("blend", 1.5),
                                          ("blend", -0.1), ("blend", "0.5"), ("svm", 1.0), (None, None)])
def test_any_other_kind_and_weight_is_one_line_naming_the_file(kind, weight, tmp_path):
    (tmp_path / "champion.json").write_text(json.dumps({"kind": kind, "weight": weight}))
    with pytest.raises(StageError) as err:
        read_champion(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'champion.json'}: kind {kind!r} with weight {weight!r} is not a champion "
                              f"(rnn with 1, linear with 0, or blend with 0 < weight < 1); {REBUILD}")


def test_a_champion_missing_is_the_rnn_unless_it_is_required(tmp_path, monkeypatch):
    assert read_champion(tmp_path) == ChampionRecord(kind="rnn", weight=1.0)
    monkeypatch.chdir(tmp_path)   # not the repo, whose models/ a make repro filled
    with pytest.raises(StageError, match=r"^models/champion\.json: missing \(models/ was trained before the "
                                         r"champion existed\); run the train stage again \(dvc repro train\)$"):
        read_champion(Path("models"), required=True)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


PREPARED_HINT = "; rebuild it with `dvc repro prepare` or `dvc checkout {folder}`"
BAD = [
    pytest.param(read_prepared_record, '{"prepare": {"maxlen": 12, "pad', DataError,
                 r": damaged or not what the prepare stage writes \(JSONDecodeError: .+\)" + PREPARED_HINT,
                 id="prepared-cut-short"),
    pytest.param(read_prepared_record, b"\xff\xfe{}", DataError,
                 r": damaged or not what the prepare stage writes \(UnicodeDecodeError: .+\)" + PREPARED_HINT,
                 id="prepared-not-utf8"),
    pytest.param(read_prepared_record, '{"dataset": {}}', DataError, r": prepare: missing" + PREPARED_HINT,
                 id="prepared-without-prepare"),
    pytest.param(read_prepared_record, '{"prepare": {"maxlen": 12, "padding": "left"}}', DataError,
                 r": prepare\.padding: input should be 'pre' or 'post' \(got \"left\"\)" + PREPARED_HINT,
                 id="prepared-bad-padding"),
    pytest.param(read_prepared_record, '{"prepare": {"maxlen": "12", "padding": "post"}}', DataError,
                 r": prepare\.maxlen: input should be a valid integer \(got \"12\"\)" + PREPARED_HINT,
                 id="prepared-maxlen-a-string"),
    pytest.param(read_prepared_record, "[1, 2]", DataError, r": not a JSON object \(got \[1, 2\]\)" + PREPARED_HINT,
                 id="prepared-a-list"),
    pytest.param(read_model_record, '{"train": {"maxlen": 4}, "prepared": {"prepare": {"maxlen": 12, "padding": "po',
                 StageError, r": damaged or not what the train stage writes \(JSONDecodeError: .+\); " + REBUILD,
                 id="model-cut-short"),
    pytest.param(read_model_record, '{"train": {"maxlen": 4}}', StageError, r": prepared: missing; " + REBUILD,
                 id="model-without-prepared"),
    pytest.param(read_model_record,
                 '{"train": {"maxlen": -1}, "prepared": {"prepare": {"maxlen": 9, "padding": "pre"}}}', StageError,
                 r": train\.maxlen: input should be greater than or equal to 0 \(got -1\); " + REBUILD,
                 id="model-negative-maxlen"),
    pytest.param(read_champion, '{"kind": "rnn", "weight": 1.0, "candidates": {"rnn"', StageError,
                 r": damaged or not what the train stage writes \(JSONDecodeError: .+\); " + REBUILD,
                 id="champion-cut-short"),
    pytest.param(read_champion, '{"kind": "blend", "weight": 0.5, "candidates": {"rnn": {}, "linear": {}}}',
                 StageError, r": kind 'blend' is not among its candidates \(rnn, linear\); " + REBUILD,
                 id="champion-not-a-candidate"),
]


@pytest.mark.parametrize("read, content, error, message", BAD)
def test_a_damaged_or_invalid_record_is_one_line_naming_the_file(read, content, error, message, tmp_path):
    name = "champion.json" if read is read_champion else "params.json"
    path = write(tmp_path, name, content)
    with pytest.raises(error) as err:
        read(tmp_path)
    text = str(err.value)
    assert "\n" not in text and isinstance(err.value, PipelineError), text
    assert re.fullmatch(re.escape(str(path)) + message.replace("{folder}", re.escape(str(tmp_path))), text), text


def test_a_missing_record_says_which_stage_writes_it(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path}/params\.json: missing; run the prepare stage "
                                        r"\(dvc repro prepare\)$"):
        read_prepared_record(tmp_path)
    with pytest.raises(StageError, match=rf"^{tmp_path}/params\.json: missing; run the train stage "
                                         r"\(dvc repro train\)$"):
        read_model_record(tmp_path)


def test_a_bundle_inside_an_mlflow_model_says_to_log_it_again(tmp_path):
    bundle = tmp_path / "artifacts" / "bundle"
    bundle.mkdir(parents=True)
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    (bundle / "champion.json").write_text('{"kind": "linear", "weight": 1}')
    with pytest.raises(StageError, match=r"is not a champion .+; log the model again \(the train stage logs and "
                                         r"registers it\)$"):
        read_champion(bundle)
