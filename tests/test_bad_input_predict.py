"""Bad input to `python -m pipeline.predict` (issue 14): one line `predict: error: ...` naming the file
and the problem, exit code 2, nothing written and nothing changed: the input's bytes, the previous
output, the model folder, no temp file left behind.

Each case builds its files in tmp_path, with its own copy of conftest.py's tiny_bundle (a model
trained for real: the damaged-model cases damage the copy). A case whose model is MISSING runs with
a model folder that does not exist: its error must come before the model is loaded, as a bad input
should cost no model loading. The last tests are the positive side: one output row per input record.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pipeline.serve.predict import main
from pipeline.serve.predictor import EMPTY, PREDICTED

MISSING = "no-such-model"   # the model folder of a case refused before the model is loaded
TEXTS = "id,text\n1,w3 w9\n2,w4 w7\n"


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.unlink(missing_ok=True)   # a new file, never writing through a link into the session bundle
    path.write_bytes(data)
    return path


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under root: a file's bytes, a link's target, a folder."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[key] = ("link", os.readlink(path))
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = path.read_bytes()
    return found


# Each case: (tmp, model) -> the arguments after the program name. `model` is the case's copy of
# the tiny bundle; the case may damage it.

def output_is_the_input(tmp, model):
    write(tmp / "same.csv", TEXTS)
    return ["same.csv", "-o", "same.csv"]


def output_is_the_input_spelled_with_dot(tmp, model):
    write(tmp / "same.csv", TEXTS)
    return ["same.csv", "-o", "./same.csv"]


def output_is_the_input_through_dotdot(tmp, model):
    write(tmp / "same.csv", TEXTS)
    (tmp / "sub").mkdir()
    return [str(tmp / "same.csv"), "-o", "sub/../same.csv"]


def output_is_a_symlink_to_the_input(tmp, model):
    write(tmp / "same.csv", TEXTS)
    (tmp / "link.csv").symlink_to("same.csv")
    return ["same.csv", "-o", "link.csv"]


def input_is_a_symlink_to_the_output(tmp, model):
    write(tmp / "same.csv", TEXTS)
    (tmp / "link.csv").symlink_to(tmp / "same.csv")
    return ["link.csv", "-o", "same.csv"]


def output_is_a_hard_link_to_the_input(tmp, model):
    write(tmp / "same.csv", TEXTS)
    os.link(tmp / "same.csv", tmp / "hard.csv")
    return ["same.csv", "-o", "hard.csv"]


def empty_txt(tmp, model):
    write(tmp / "empty.txt", b"")
    return ["empty.txt", "-o", "out.csv"]


def empty_csv(tmp, model):
    write(tmp / "empty.csv", b"")
    return ["empty.csv", "-o", "out.csv", "--model", MISSING]


def empty_jsonl(tmp, model):
    write(tmp / "empty.jsonl", b"")
    return ["empty.jsonl", "-o", "out.jsonl"]


def xlsx_output(tmp, model):
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.xlsx", "--model", MISSING]


def json_output(tmp, model):
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.json", "--model", MISSING]


def output_without_suffix(tmp, model):
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "predictions", "--model", MISSING]


def output_is_a_folder(tmp, model):
    write(tmp / "in.csv", TEXTS)
    (tmp / "out.csv").mkdir()
    return ["in.csv", "-o", "out.csv"]


def jsonl_bad_json_on_line_3(tmp, model):
    write(tmp / "in.jsonl", '{"text": "w3"}\n{"text": "w4"}\n{"text": "w5"\n{"text": "w6"}\n')
    return ["in.jsonl", "-o", "out.csv"]


def jsonl_trailing_comma_on_line_3(tmp, model):   # pandas' parser took it
    write(tmp / "in.jsonl", '{"text": "w3"}\n{"text": "w4"}\n{"text": "w5",}\n')
    return ["in.jsonl", "-o", "out.csv"]


def jsonl_array_on_line_3(tmp, model):   # pandas raised a TypeError: a traceback
    write(tmp / "in.jsonl", '{"text": "w3"}\n\n[1, 2]\n')
    return ["in.jsonl", "-o", "out.jsonl"]


def jsonl_number_as_text_on_line_2(tmp, model):   # the bundle read it as the word "5"
    write(tmp / "in.jsonl", '{"text": "w3"}\n{"text": 5}\n')
    return ["in.jsonl", "-o", "out.csv"]


def jsonl_key_appears_after_the_csv_header(tmp, model):
    write(tmp / "in.jsonl", '{"text": "w3"}\n{"text": "w4", "id": 7}\n')
    return ["in.jsonl", "-o", "out.csv", "--batch-size", "1"]


def jsonl_only_blank_lines(tmp, model):
    write(tmp / "in.jsonl", "\n  \n\n")
    return ["in.jsonl", "-o", "out.jsonl"]


def csv_header_only(tmp, model):
    write(tmp / "in.csv", "id,text\n")
    return ["in.csv", "-o", "out.csv"]


def tsv_header_only(tmp, model):
    write(tmp / "in.tsv", "id\ttext\n")
    return ["in.tsv", "-o", "out.tsv"]


def one_column_csv_header_only(tmp, model):
    write(tmp / "in.csv", "text\n")
    return ["in.csv", "-o", "out.jsonl"]


def missing_text_column_before_the_model(tmp, model):
    write(tmp / "in.csv", "id,body\n1,w3\n")
    return ["in.csv", "-o", "out.csv", "--model", MISSING]


def model_truncated(tmp, model):
    data = (model / "model.keras").read_bytes()
    write(model / "model.keras", data[:1000])   # truncate -s 1000 models/model.keras
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def model_empty(tmp, model):
    write(model / "model.keras", b"")
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def model_random_bytes(tmp, model):
    write(model / "model.keras", bytes(range(256)) * 40)
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def model_is_a_git_lfs_pointer(tmp, model):
    write(model / "model.keras", "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def model_lost_its_end(tmp, model):
    data = (model / "model.keras").read_bytes()
    write(model / "model.keras", data[:-100])
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def model_bytes_overwritten_inside(tmp, model):
    data = bytearray((model / "model.keras").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = b"\xa5" * 64
    write(model / "model.keras", bytes(data))
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def model_zip_without_weights(tmp, model):
    with zipfile.ZipFile(model / "model.keras") as archive:
        config = archive.read("config.json")
    (model / "model.keras").unlink()
    with zipfile.ZipFile(model / "model.keras", "w") as archive:
        archive.writestr("config.json", config)
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def model_config_not_json(tmp, model):
    with zipfile.ZipFile(model / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["config.json"] = b"{not json"
    (model / "model.keras").unlink()
    with zipfile.ZipFile(model / "model.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def labels_json_garbage(tmp, model):
    write(model / "labels.json", b"\xff\xfe\x00garbage")
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv"]


def model_option_names_the_keras_file(tmp, model):
    write(tmp / "in.csv", TEXTS)
    return ["in.csv", "-o", "out.csv", "--model", "model/model.keras"]


def input_is_a_folder(tmp, model):
    write(tmp / "texts" / "a.txt", "w3\n")
    return ["texts", "-o", "out.csv"]


def input_not_utf8_on_line_2(tmp, model):
    write(tmp / "in.txt", "w3 w9\n".encode() + "세금\n".encode("cp949"))
    return ["in.txt", "-o", "out.csv"]


REBUILD = r"rebuild it with `dvc repro train` or `dvc checkout models`"
DAMAGED = r"model/model\.keras: damaged or not a Keras model file \(.+\); " + REBUILD
SAME = r": is the input file itself; writing the predictions there would replace the texts"
SUFFIX = r"name the output \.csv, \.tsv, \.jsonl or \.ndjson"

CASES = [
    pytest.param(output_is_the_input, r"^same\.csv" + SAME, id="same-file"),
    pytest.param(output_is_the_input_spelled_with_dot, r"^same\.csv" + SAME, id="same-file-dot-slash"),
    pytest.param(output_is_the_input_through_dotdot, r"^sub/\.\./same\.csv" + SAME, id="same-file-dotdot"),
    pytest.param(output_is_a_symlink_to_the_input, r"^link\.csv" + SAME, id="same-file-symlink-output"),
    pytest.param(input_is_a_symlink_to_the_output, r"^same\.csv" + SAME, id="same-file-symlink-input"),
    pytest.param(output_is_a_hard_link_to_the_input, r"^hard\.csv" + SAME, id="same-file-hard-link"),
    pytest.param(empty_txt, r"^empty\.txt: the file is empty$", id="empty-txt"),
    pytest.param(empty_csv, r"^empty\.csv: the file is empty$", id="empty-csv-before-model"),
    pytest.param(empty_jsonl, r"^empty\.jsonl: the file is empty$", id="empty-jsonl"),
    pytest.param(xlsx_output, r"^out\.xlsx: cannot write \.xlsx; " + SUFFIX, id="xlsx-output-before-model"),
    pytest.param(json_output, r"^out\.json: cannot write \.json \(JSON Lines is \.jsonl\); " + SUFFIX,
                 id="json-output-before-model"),
    pytest.param(output_without_suffix, r"^predictions: cannot write a file without a suffix; " + SUFFIX,
                 id="no-output-suffix-before-model"),
    pytest.param(output_is_a_folder, r"^out\.csv: is a folder; --output names the file", id="output-is-a-folder"),
    pytest.param(jsonl_bad_json_on_line_3,
                 r"^in\.jsonl: line 3: not valid JSON: Expecting .+ at column 14: \{\"text\": \"w5\"$",
                 id="jsonl-bad-line-number"),
    pytest.param(jsonl_trailing_comma_on_line_3, r"^in\.jsonl: line 3: not valid JSON: ", id="jsonl-trailing-comma"),
    pytest.param(jsonl_array_on_line_3, r"^in\.jsonl: line 3: not a JSON object: \[1, 2\]$", id="jsonl-not-object"),
    pytest.param(jsonl_number_as_text_on_line_2, r"^in\.jsonl: line 2: 'text' is int 5, not a string$",
                 id="jsonl-number-as-text"),
    pytest.param(jsonl_key_appears_after_the_csv_header,
                 r"^in\.jsonl: key\(s\) id first appear after record 1, when the CSV header is already written",
                 id="jsonl-late-key-csv-output"),
    pytest.param(jsonl_only_blank_lines, r"^in\.jsonl: no records, only blank lines$", id="jsonl-only-blank"),
    pytest.param(csv_header_only, r"^in\.csv: no data rows, only a header$", id="csv-header-only"),
    pytest.param(tsv_header_only, r"^in\.tsv: no data rows, only a header$", id="tsv-header-only"),
    pytest.param(one_column_csv_header_only, r"^in\.csv: no data rows, only a header$", id="one-column-header-only"),
    pytest.param(missing_text_column_before_the_model,
                 r"^in\.csv: no text column 'text'; the columns present are: id, body",
                 id="no-text-column-before-model"),
    pytest.param(input_is_a_folder, r"^texts: is a folder; INPUT is one file", id="input-is-a-folder"),
    pytest.param(input_not_utf8_on_line_2, r"^in\.txt: line 2: bytes b'.+' are not valid utf-8 \(pass --encoding, "
                 "e\\.g\\. cp949", id="input-not-utf8"),
    pytest.param(model_truncated, DAMAGED, id="model-truncated-1000"),
    pytest.param(model_empty, r"model/model\.keras: damaged or not a Keras model file \(the file is empty\); "
                 + REBUILD, id="model-empty"),
    pytest.param(model_random_bytes, DAMAGED, id="model-random-bytes"),
    pytest.param(model_is_a_git_lfs_pointer, DAMAGED, id="model-lfs-pointer"),
    pytest.param(model_lost_its_end, DAMAGED, id="model-tail-cut"),
    pytest.param(model_bytes_overwritten_inside, r"model/model\.keras: damaged or not a Keras model file "
                 r"\(model\.weights\.h5 inside it fails its CRC check\); " + REBUILD, id="model-crc"),
    pytest.param(model_zip_without_weights, r"model/model\.keras: damaged or not a Keras model file "
                 r"\(a zip archive without model\.weights\.h5\); " + REBUILD, id="model-zip-without-weights"),
    pytest.param(model_config_not_json, r"model/model\.keras: damaged, or not a model this code can load "
                 r"\(.+\); " + REBUILD, id="model-config-not-json"),
    pytest.param(labels_json_garbage, r"model/labels\.json: not valid JSON \(.+\); " + REBUILD,
                 id="labels-json-garbage"),
    pytest.param(model_option_names_the_keras_file, r"^model/model\.keras: a file, not a model folder",
                 id="model-option-is-a-file"),
]


@pytest.mark.parametrize(("build", "message"), CASES)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(build, message, tiny_bundle, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_bundle, tmp_path / "model")
    argv = build(tmp_path, tmp_path / "model")
    if "--model" not in argv:
        argv += ["--model", "model"]
    before = snapshot(tmp_path)
    capsys.readouterr()

    code = main(argv)

    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("predict: error: "), err
    assert re.search(message, lines[0].removeprefix("predict: error: ")), lines[0]
    assert snapshot(tmp_path) == before   # input bytes, links, model, no output, no temp file


def test_a_damaged_model_inside_an_mlflow_model_is_one_line(tiny_bundle, tmp_path, capsys):
    """The pyfunc load path: MLflow runs Classifier.load on the model's artifact copy of the bundle."""
    from helpers.tinydata import TINY_PREPROCESS
    from pipeline.serve import pyfunc

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    path = tmp_path / "pyfunc"
    pyfunc.save_model(bundle, path, ["0", "1"], TINY_PREPROCESS["examples"], "whitespace")
    keras_file = path / "artifacts" / pyfunc.ARTIFACT / "model.keras"
    write(keras_file, keras_file.read_bytes()[:1000])
    write(tmp_path / "in.txt", "w3 w9\n")
    capsys.readouterr()

    assert main([str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.csv"), "--model", str(path)]) == 2

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"predict: error: --model {path}: MLflow could not load it: ")
    assert f"{keras_file}: damaged or not a Keras model file (" in lines[0]
    assert lines[0].endswith("; log the model again (the train stage logs and registers it)")
    assert not (tmp_path / "out.csv").exists()


def run_ok(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().err


@pytest.mark.parametrize(("name", "content"), [
    pytest.param("in.csv", "text\nw3 w9\n\nw4 w7\n", id="csv"),
    pytest.param("in.tsv", "text\r\nw3 w9\r\n\r\nw4 w7\r\n", id="tsv-crlf"),
    pytest.param("in.csv", "\ntext\nw3 w9\n\nw4 w7\n", id="csv-leading-blank-line"),
    pytest.param("in.csv", "\ufefftext\nw3 w9\n\nw4 w7\n", id="csv-with-bom"),
])
def test_a_blank_line_in_a_one_column_file_keeps_its_row(name, content, tiny_bundle, tmp_path, capsys):
    write(tmp_path / name, content)
    err = run_ok([str(tmp_path / name), "-o", str(tmp_path / "out.csv"), "--keep-text",
                  "--model", str(tiny_bundle)], capsys)
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["text"].tolist() == ["w3 w9", "", "w4 w7"]   # lines up with the input by position
    assert out[EMPTY].tolist() == [False, True, False]
    assert out[PREDICTED].astype(str).tolist()[::2] == ["1", "0"]
    assert "3 documents (1 empty)" in err


def test_an_output_in_a_folder_that_does_not_exist_yet_makes_the_folder(tiny_bundle, tmp_path, capsys):
    write(tmp_path / "in.csv", TEXTS)
    assert main([str(tmp_path / "in.csv"), "-o", str(tmp_path / "new" / "sub" / "out.csv"),
                 "--model", str(tiny_bundle)]) == 0
    assert len(pd.read_csv(tmp_path / "new" / "sub" / "out.csv")) == 2
    assert os.listdir(tmp_path / "new" / "sub") == ["out.csv"]


def test_jsonl_blank_lines_are_counted_in_the_summary(tiny_bundle, tmp_path, capsys):
    write(tmp_path / "in.jsonl", '{"id": "a", "text": "w3 w9"}\n\n{"id": "b", "text": "w4 w7"}\n\n')
    err = run_ok([str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.ndjson"), "--model", str(tiny_bundle)],
                 capsys)
    rows = [json.loads(line) for line in (tmp_path / "out.ndjson").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r[PREDICTED]) for r in rows] == [("a", "1"), ("b", "0")]
    assert "2 documents (0 empty, 2 blank lines skipped)" in err


def test_jsonl_keys_missing_from_a_later_batch_stay_under_their_csv_header(tiny_bundle, tmp_path, capsys):
    write(tmp_path / "in.jsonl", '{"id": 1, "score": 5, "text": "w3 w9"}\n{"id": 2, "text": "w4 w7"}\n'
                                 '{"text": "w3"}\n{"id": 4}\n')
    run_ok([str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.csv"), "--batch-size", "1",
            "--model", str(tiny_bundle)], capsys)
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert list(out.columns) == ["id", "score", PREDICTED, "proba_0", "proba_1", EMPTY]
    assert out[["id", "score", EMPTY]].values.tolist() == [
        ["1", "5", "False"], ["2", "", "False"], ["", "", "False"], ["4", "", "True"]]
    assert out[PREDICTED].tolist()[:3] == ["1", "0", "1"]


def test_jsonl_without_the_text_key_in_its_first_records_is_refused(tiny_bundle, tmp_path, capsys):
    """A guard (the code before issue 14 refused it too): a record without the key is an empty text,
    but a first batch without it names the wrong key."""
    write(tmp_path / "in.jsonl", '{"body": "w3"}\n{"body": "w4"}\n')
    before = snapshot(tmp_path)
    assert main([str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.csv"), "--model", str(tiny_bundle)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"predict: error: {tmp_path / 'in.jsonl'}: no text column 'text'; the columns present are: body "
        "(choose one with --text-column)"]
    assert snapshot(tmp_path) == before


def test_a_registry_model_with_the_tracking_server_down_is_one_line_in_seconds(tmp_path, monkeypatch, capsys):
    """MLflow alone retries a refused connection for minutes; the line names the server, not its password."""
    from pipeline.core.workers import free_ports

    port = free_ports(1)[0]   # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://analyst:pw-s3cret@127.0.0.1:{port}")
    write(tmp_path / "in.txt", "w3 w9\n")
    capsys.readouterr()

    assert main([str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.csv"), "--model", "models:/textclf-x/1"]) == 2

    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"predict: error: MLflow tracking at http://analyst:***@127.0.0.1:{port}: no answer (connection "
                     "refused within 5 s); start the server or fix $MLFLOW_TRACKING_URI (without --model, models/ "
                     "serves what the last dvc repro trained)"]
    assert not (tmp_path / "out.csv").exists()


# Issue 36 (13): standard input, pipes and FIFOs, through real processes (the shell's way to call it).

def predict_process(args: list[str], tmp_path: Path, stdin=None, data: bytes | None = None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pipeline.predict", *args], cwd=tmp_path, input=data, stdin=stdin,
                          capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(Path.cwd())})


@pytest.mark.parametrize(("args", "data", "columns"), [
    pytest.param(["-"], b"w3 w9\nw4 w7\n", ["line"], id="dash-text-lines"),
    pytest.param(["-", "--format", "jsonl"], b'{"id": "a", "text": "w3 w9"}\n{"id": "b", "text": "w4 w7"}\n',
                 ["id"], id="dash-jsonl"),
    pytest.param(["/dev/stdin", "--format", "csv"], TEXTS.encode(), ["id"], id="dev-stdin-csv"),
])
def test_standard_input_is_read_from_a_pipe(args, data, columns, tiny_bundle, tmp_path):
    done = predict_process([*args, "-o", "out.csv", "--model", str(tiny_bundle)], tmp_path, data=data)
    assert done.returncode == 0, done.stderr.decode()
    out = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert list(out.columns) == [*columns, PREDICTED, "proba_0", "proba_1", EMPTY]
    assert out[PREDICTED].tolist() == ["1", "0"]
    assert "predict: 2 documents (0 empty)" in done.stderr.decode()
    assert os.listdir(tmp_path) == ["out.csv"]   # the copy of the input is gone


def test_a_fifo_is_read_as_the_file_it_names(tiny_bundle, tmp_path):
    import threading

    os.mkfifo(tmp_path / "in.jsonl")   # its suffix says the format, as a file's does

    def feed():   # opening a FIFO for writing waits for its reader
        with open(tmp_path / "in.jsonl", "wb") as fifo:
            fifo.write('{"id": 1, "text": "w4 w7"}\n{"id": 2, "text": "w3"}\n'.encode())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    done = predict_process(["in.jsonl", "-o", "out.jsonl", "--model", str(tiny_bundle)], tmp_path)
    writer.join(10)
    assert done.returncode == 0, done.stderr.decode()
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r[PREDICTED]) for r in rows] == [(1, "0"), (2, "1")]


def test_empty_standard_input_is_one_line_naming_it(tmp_path):
    done = predict_process(["-", "-o", "out.csv", "--model", MISSING], tmp_path, data=b"")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == ["predict: error: -: the file is empty"]
    assert os.listdir(tmp_path) == []


# Issue 36 (7): a lone surrogate ("\ud800" in JSON) is no character: the row is read as U+FFFD in its
# place and answered, and so are the others.

def test_a_lone_surrogate_in_jsonl_is_read_as_the_replacement_character(tiny_bundle, tmp_path, capsys):
    write(tmp_path / "in.jsonl", '{"id": "a\\ud800", "text": "w3 \\ud800"}\n{"id": "b", "text": "w4 w7"}\n'
                                 '{"id": "c", "text": "\\udfff"}\n{"id": "d", "text": "w3 w9 \\ud83d\\ude00"}\n')
    err = run_ok([str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), "--keep-text",
                  "--model", str(tiny_bundle)], capsys)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["text"], r[PREDICTED], r[EMPTY]) for r in rows] == [
        ("a\ufffd", "w3 \ufffd", "1", False), ("b", "w4 w7", "0", False), ("c", "\ufffd", rows[2][PREDICTED], False),
        ("d", "w3 w9 \U0001f600", "1", False)]   # a surrogate pair is its character
    assert "4 documents (0 empty, 2 with a lone surrogate read as U+FFFD)" in err


def test_a_lone_surrogate_is_answered_like_the_replacement_character_in_process(tiny_bundle):
    from pipeline.serve.predictor import Classifier

    classifier = Classifier.load(tiny_bundle)
    got = classifier.predict(["w3 \ud800", "w4 w7", "\udc00", None])
    pd.testing.assert_frame_equal(got, classifier.predict(["w3 \ufffd", "w4 w7", "\ufffd", None]))
    assert got[EMPTY].tolist() == [False, False, False, True]   # U+FFFD is a word the vocabulary lacks


# Issue 36 (16): probabilities that sum to one, as sklearn checks them (sqrt(eps) of their dtype).

def test_a_blend_of_46_float32_classes_sums_to_one_for_sklearn():
    import warnings

    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    from pipeline.model.champion import blend

    rng = np.random.default_rng(36)
    y = np.arange(2000) % 46

    def softmax32(n: int = 2000) -> np.ndarray:   # as a model's float32 softmax: rows off 1 by ~1e-7
        logits = rng.normal(0, 4, (n, 46)).astype(np.float32)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    rnn, linear = softmax32(), softmax32()
    unnormalised = 0.3 * rnn.astype(np.float64) + 0.7 * linear.astype(np.float64)
    with pytest.warns(UserWarning, match="do not sum to one"):   # what evaluate warned
        log_loss(y, unnormalised, labels=range(46))
    proba = blend(rnn, linear, 0.3)
    assert np.abs(proba.sum(1, dtype=proba.dtype) - 1).max() < 1e-12
    np.testing.assert_allclose(proba, unnormalised, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_loss(y, proba, labels=range(46))
        roc_auc_score(y, proba, multi_class="ovr", labels=range(46))


def test_predicted_probabilities_sum_to_one_in_float64(tiny_bundle):
    import numpy as np

    from pipeline.serve.predictor import Classifier

    answers = Classifier.load(tiny_bundle).predict(["w3 w9", "w4 w7", "", "w3 w4 w4"])
    proba = answers[["proba_0", "proba_1"]].to_numpy()
    assert proba.dtype == np.float64 and np.abs(proba.sum(1) - 1).max() < 1e-12


def test_evaluate_scores_a_46_class_blend_without_the_sum_warning():
    """evaluate's log loss clips tiny probabilities, which alone lifted the rows' sums past sklearn's
    tolerance (Reuters' evaluate warned "y_prob values do not sum to one")."""
    import warnings

    import numpy as np

    from pipeline.model.champion import blend
    from pipeline.model.evaluation import scores

    rng = np.random.default_rng(7)
    parts = [rng.dirichlet(np.full(46, 0.05), 500).astype(np.float32) for _ in range(2)]
    y = np.arange(500) % 46
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = scores(y, blend(*parts, 0.5), [str(i) for i in range(46)])
    assert 0 < found["test/loss"] < -np.log(1e-7) and found["test/rows"] == 500
