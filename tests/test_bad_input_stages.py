"""The bad-input catalogue, stage side: each input a probe once got wrong, with what it must give.

Every case runs the real stage `main()` in a scratch folder (tmp_path as the repo root) on a tiny
table dataset, and checks the exit code, the one line on stderr and what was (not) written.
The serving and predict sides are in test_bad_input_serving.py and test_bad_input_predict.py;
faults that need processes (killed stages, `dvc repro` stopped by its PID) in test_faults.py.
"""
from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import REPO
from helpers.stagecases import Case, frame, run_case, table_params, write_csv


def half_unlabelled(root: Path) -> str:
    return write_csv(frame(labels=lambda i: "ab"[i % 2] if i % 4 else ""))(root)


def parquet_float_text(root: Path) -> str:
    frame(text=lambda i: i / 3).to_parquet(root / "table.parquet")
    return "table.parquet"


def jsonl_number_in_text(root: Path) -> str:
    df = frame().astype(object)
    df.loc[1, "text"] = 123
    df.to_json(root / "table.jsonl", orient="records", lines=True, force_ascii=False)
    return "table.jsonl"


CASES = [
    # Item 6: rows without a label are counted and said, and naming the column when all lack one.
    Case("half-the-labels-empty", half_unlabelled, ("download", "tokenize"), 0,
         "dropped 6 without a label ('label')"),
    Case("no-label-at-all", write_csv(frame(labels=lambda i: "")), ("download", "tokenize"), 2,
         "no row has a label: all 24 rows read have an empty label column ('label')"),
    # Item 7: a text column that is not text is refused, naming column and dtype (or row and type).
    Case("parquet-float-text", parquet_float_text, ("download", "tokenize"), 2,
         "table.parquet: text column 'text' holds float64, not text"),
    Case("jsonl-number-in-text", jsonl_number_in_text, ("download", "tokenize"), 2,
         "table.jsonl: row 2: text column 'text' holds int 123, not text"),
    # The sha256 advice fits a table: update or clear the pin (not "use dataset.name: table").
    Case("table-sha256-pins-another-file", write_csv(frame()), ("download",), 2,
         "set dataset.table.sha256 to", table={"sha256": "0" * 64}),
    # params.yaml read as DVC reads it: 1e-3 is a number, a key twice is an error.
    Case("learning-rate-1e-3", write_csv(frame()), ("download",), 0, "",
         params_text=lambda text: text.replace("learning_rate: 0.0005", "learning_rate: 1e-3")),
    Case("duplicate-key", write_csv(frame()), ("download",), 2,
         "params.yaml: key 'epochs' appears twice in one mapping",
         params_text=lambda text: text.replace("  epochs: 2\n", "  epochs: 2\n  epochs: 3\n")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_catalogue(case: Case, in_tmp: Path, capsys, monkeypatch):
    run_case(case, in_tmp, capsys, monkeypatch)


def test_learning_rate_written_1e_3_is_the_number(tmp_path):
    from pipeline.core.config import load_params

    text = (REPO / "params.yaml").read_text(encoding="utf-8").replace("learning_rate: 0.0005", "learning_rate: 1e-3")
    (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
    assert load_params(tmp_path / "params.yaml").train.learning_rate == pytest.approx(1e-3)


def test_a_refused_tracking_server_fails_in_seconds(in_tmp, capsys, monkeypatch):
    """MLflow's own retries took 4 min 10 s to give up on a closed port."""
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(table_params(write_csv(frame())(in_tmp))),
                                        encoding="utf-8")
    from pipeline.stages.download import main

    started = time.monotonic()
    code = main([])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"MLflow tracking at http://127.0.0.1:{port}: no answer (connection refused" in err
    assert seconds < 30, f"took {seconds:.0f} s"
    assert not (in_tmp / "data" / "raw").exists()


@pytest.mark.parametrize("module", ["pipeline.stages.download", "pipeline.train", "pipeline.predict",
                                    "pipeline.experiments"])
def test_the_wrong_python_says_what_to_activate(module, tmp_path):
    """`.venv/bin/dvc repro` without the venv on PATH runs the stages with another Python: here the
    venv's own Python with its site-packages turned off (-S), which has none of the packages."""
    done = subprocess.run([sys.executable, "-S", "-m", module, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "DVC_STAGE": "train",
                                                      "DVC_ROOT": str(REPO)})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("stage train: error: ") and "lacks the project's packages (" in lines[0]
    assert "tqdm" in lines[0] and "activate" in lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_damaged_model_keras_is_one_line_naming_it_and_the_way_back(in_tmp, tiny_bundle, tiny_prepared, capsys):
    """truncate -s 1000 models/model.keras: Keras says `ValueError: File not found` (a traceback)."""
    import shutil

    from pipeline.stages.evaluate import main

    shutil.copytree(tiny_prepared, in_tmp / "data" / "prepared")
    shutil.copytree(tiny_bundle, in_tmp / "models")
    (in_tmp / "params.yaml").write_text((REPO / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with (in_tmp / "models" / "model.keras").open("r+b") as f:
        f.truncate(1000)
    before = sorted(p.name for p in in_tmp.rglob("*"))
    assert main(["--no-track"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("evaluate: error: models/model.keras: damaged or not a Keras model file (not a whole "
                           "zip archive, 1,000 bytes: File is not a zip file); rebuild it with `dvc repro "
                           "train` or `dvc checkout models`"), err
    assert sorted(p.name for p in in_tmp.rglob("*")) == before, "evaluate wrote nothing"
