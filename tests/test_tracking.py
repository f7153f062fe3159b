"""MLflow tracking against a real SQLite store: run status, params, tags, metrics, artifacts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import make_params
from helpers.tinydata import TABLE_CLASSES, write_table_project
from pipeline.core import tracking
from pipeline.core.config import Params

CLASSES = TABLE_CLASSES


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory) -> Path:
    """One repo folder for the module: creating the SQLite store takes seconds, so it is made once."""
    return tmp_path_factory.mktemp("repo")


@pytest.fixture
def repo(shared_root, monkeypatch):
    monkeypatch.chdir(shared_root)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(shared_root / ".cache"))
    yield shared_root
    import mlflow
    assert mlflow.active_run() is None, "a run was left active"


def client():
    import mlflow
    return mlflow.MlflowClient(tracking_uri=tracking.tracking_uri())


def all_runs() -> dict:
    c = client()
    ids = [e.experiment_id for e in c.search_experiments()]
    return {r.info.run_id: r for r in c.search_runs(ids)} if ids else {}


def new_run(before: dict):
    fresh = [r for rid, r in all_runs().items() if rid not in before]
    assert len(fresh) == 1, [r.info.run_name for r in fresh]
    return fresh[0]


def artifacts(run_id: str, folder: str) -> set[str]:
    return {a.path for a in client().list_artifacts(run_id, folder)}


# --- stage_run --------------------------------------------------------------------------------

def test_successful_run_is_finished_with_params_tags_and_artifacts(repo):
    import mlflow

    params = make_params(tokenize={"pos_drop": ["Josa", "Punctuation"]})
    with tracking.stage_run("tokenize", params, ("dataset.name", "tokenize"), dataset="unit") as run:
        mlflow.log_dict({"ok": True}, "tokenize/check.json")
    got = client().get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "tokenize"
    assert client().get_experiment(got.info.experiment_id).name == "textclf-unit"
    assert got.data.params["dataset.name"] == "seoul120"
    assert got.data.params["tokenize.pos_drop"] == "['Josa', 'Punctuation']"
    assert got.data.params["tokenize.workers"] == "0"
    tags = got.data.tags
    assert tags["dvc.stage"] == "tokenize" and tags["pipeline.stage"] == "tokenize"
    assert tags["git.commit"] == "" and tags["git.dirty"] == "false"   # tmp folder: not a git repo
    assert (repo / "mlruns" / "mlflow.db").is_file()
    stored = repo / "mlruns" / "artifacts" / run.info.run_id / "artifacts" / "tokenize" / "check.json"
    assert json.loads(stored.read_text()) == {"ok": True}
    # MLflow exports the URI to os.environ; left there it would pin later stages to this store.
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_exception_marks_the_run_failed_and_propagates(repo):
    with pytest.raises(ValueError, match="boom"):
        with tracking.stage_run("prepare", make_params(), ("prepare",), dataset="unit") as run:
            raise ValueError("boom")
    got = client().get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["pipeline.error"] == "ValueError: boom"


def test_ctrl_c_marks_the_run_killed(repo):
    with pytest.raises(KeyboardInterrupt):
        with tracking.stage_run("prepare", make_params(), (), dataset="unit") as run:
            raise KeyboardInterrupt
    assert client().get_run(run.info.run_id).info.status == "KILLED"


def test_sigterm_marks_the_run_killed_and_the_old_handler_comes_back(repo):
    def mine(signum, frame):
        raise AssertionError("the stage's handler should have run instead")

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with pytest.raises(KeyboardInterrupt):
            with tracking.stage_run("download", make_params(), (), dataset="unit") as run:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)   # the handler raises at the next bytecode; never reached
        assert client().get_run(run.info.run_id).info.status == "KILLED"
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_sigterm_during_a_database_write_waits_for_it_and_the_run_still_ends_killed(repo):
    """A KeyboardInterrupt between a SQLite INSERT and its COMMIT left the store locked by this process,
    and ending the run KILLED failed with "database is locked" (seen in CI): the signal must wait."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    sent = []

    def sigterm_inside_the_insert(conn, cursor, statement, *args):
        if not sent and statement.lstrip().upper().startswith("INSERT INTO METRICS"):
            sent.append(statement)
            os.kill(os.getpid(), signal.SIGTERM)   # handled at the next bytecode: in SQLAlchemy

    with pytest.raises(KeyboardInterrupt):
        with tracking.stage_run("train", make_params(), (), dataset="unit") as run:
            event.listen(Engine, "before_cursor_execute", sigterm_inside_the_insert)
            try:
                import mlflow
                mlflow.log_metric("during/write", 1.0)
                time.sleep(5)   # the signal, delivered again, lands here
            finally:
                event.remove(Engine, "before_cursor_execute", sigterm_inside_the_insert)
    assert sent, "the signal was sent during the INSERT"
    ended = client().get_run(run.info.run_id)
    assert ended.info.status == "KILLED"
    assert ended.data.metrics == {"during/write": 1.0}, "the interrupted write was completed, not cut"


def test_a_nested_run_ends_alone_and_runs_left_open_end_with_ours(repo):
    import mlflow

    with tracking.stage_run("train", make_params(), (), dataset="unit") as parent:
        with pytest.raises(ValueError):
            with tracking.stage_run("train", make_params(), (), dataset="unit", run_name="trial-0",
                                    nested=True) as child:
                raise ValueError("bad trial")
        assert mlflow.active_run().info.run_id == parent.info.run_id
        left_open = mlflow.start_run(run_name="left-open", nested=True)
    got = {r.info.run_id: client().get_run(r.info.run_id) for r in (parent, child, left_open)}
    assert got[child.info.run_id].info.status == "FAILED"
    assert got[child.info.run_id].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert got[child.info.run_id].info.run_name == "trial-0"
    assert got[parent.info.run_id].info.status == got[left_open.info.run_id].info.status == "FINISHED"


# --- log_stats, names, params, tags -----------------------------------------------------------

def test_log_stats_flattens_numbers_and_keeps_names_mlflow_accepts(repo):
    stats = {"length": {"p95": 12.5, "max": np.int64(40)}, "rows": 7, "oov": np.float32(0.25),
             "labels": {"경제": 3, "a:b/c": 1, "": 2, "..": 4},
             "worker_kind": "thread", "cached": True, "flags": {"on": np.bool_(True)}, "list": [1, 2]}
    with tracking.stage_run("tokenize", make_params(), (), dataset="unit") as run:
        tracking.log_stats(stats, "tokenize")
    metrics = client().get_run(run.info.run_id).data.metrics
    assert metrics == {
        "tokenize/length/p95": 12.5, "tokenize/length/max": 40.0, "tokenize/rows": 7.0,
        "tokenize/oov": 0.25,
        # Hangul is a word character to MLflow's name check (Python's Unicode \w): kept as is.
        "tokenize/labels/경제": 3.0,
        # ":" (refused on Windows) and "/" inside a label are hex-escaped; "" and ".." would make
        # the name resolve to another path, which MLflow refuses.
        "tokenize/labels/a_3a_b_2f_c": 1.0, "tokenize/labels/_": 2.0,
        "tokenize/labels/_2e__2e_": 4.0,
    }


def test_metric_key_stays_within_mlflows_length_limit():
    long = tracking.metric_key("prepare", "x" * 300)
    assert len(long) == 250 and long != tracking.metric_key("prepare", "x" * 301)


def test_flat_params_resolves_nested_sections_and_truncates():
    params = make_params(dataset={"name": "table", "table": {"source": "a.csv", "text_columns": ["t"],
                                                            "label_column": "y"}},
                         tokenize={"stopwords": ["w" * 4000, "v" * 4000]})
    flat = tracking.flat_params(params, ("dataset.name", "dataset.table.source", "prepare", "tokenize"))
    assert flat["dataset.name"] == "table" and flat["dataset.table.source"] == "a.csv"
    assert flat["prepare.vocab.max_size"] == "20000" and flat["prepare.keep_official_test"] == "True"
    assert len(flat["tokenize.stopwords"]) == 6000
    assert "train.epochs" not in flat and "dataset.classes" not in flat


def test_run_tags_record_git_state_and_data_checksums(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "a.txt").write_text("a")
    for cmd in (["init", "-q"], ["add", "a.txt"], ["commit", "-qm", "a"]):
        subprocess.run(git + cmd, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "manifest.json").write_text(json.dumps(
        {"files": [{"path": "table/my file(1).csv", "sha256": "ab" * 32}]}))
    tags = tracking.run_tags("prepare")
    assert tags["git.commit"] == head == tags["mlflow.source.git.commit"]
    assert tags["git.dirty"] == "false"   # untracked files (data/) do not count
    assert tags["data.table/my file_28_1_29_.csv.sha256"] == "ab" * 32
    (tmp_path / "a.txt").write_text("b")
    assert tracking.run_tags("prepare")["git.dirty"] == "true"


def test_where_runs_go(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert tracking.artifact_root() == (tmp_path / "mlruns" / "artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000" and tracking.artifact_root() is None
    assert tracking.experiment_name("nsmc") == tracking.registered_model_name("nsmc") == "textclf-nsmc"


# --- the real stage commands ------------------------------------------------------------------

def write_prepare_inputs(root: Path, classes=CLASSES, params: str = "") -> None:
    from pipeline.text.documents import write_tokens

    rows = [(f"{label}{i}", label, "", [label, f"w{i % 4}", "공통"][: 1 + i % 3])
            for label in classes for i in range(10)]
    table = pd.DataFrame(rows, columns=["id", "label", "split", "tokens"])
    table["length"] = table["tokens"].map(len)
    table["text_key"] = table["id"]   # each row a text of its own (the token lists repeat)
    write_tokens(table, root / "data" / "tokens.parquet", {"tokenize": {}})
    (root / "params.yaml").write_text(params or "prepare:\n  maxlen: 2\n  val_size: 0.2\n  test_size: 0.2\n",
                                      encoding="utf-8")


def test_prepare_command_is_one_finished_run_with_metrics_and_artifacts(repo):
    from pipeline.stages.prepare import main

    write_prepare_inputs(repo)
    before = all_runs()
    assert main([]) == 0
    run = new_run(before)
    assert run.info.status == "FINISHED" and run.info.run_name == "prepare"
    assert client().get_experiment(run.info.experiment_id).name == "textclf-seoul120"
    metrics = run.data.metrics
    assert metrics["prepare/splits/train/rows"] == 18 and metrics["prepare/splits/test/rows"] == 6
    assert "prepare/splits/train/oov_rate" in metrics and metrics["prepare/maxlen"] == 2
    assert metrics["prepare/splits/train/classes/경제"] == 6
    assert metrics["prepare/duplicates/duplicate_rows"] == 0 and metrics["prepare/duplicates/texts_with_copies"] == 0
    assert run.data.params["prepare.maxlen"] == "2" and "tokenize.analyzer" not in run.data.params
    assert artifacts(run.info.run_id, "prepare") == {f"prepare/{name}" for name in (
        "prepare_stats.json", "vocab.json", "labels.json", "params.json", "preprocess.json", "lengths.csv",
        "lengths.png")}
    png = client().download_artifacts(run.info.run_id, "prepare/lengths.png", str(repo / ".cache"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_broken_params_exit_2_before_any_run(repo, capsys):
    from pipeline.stages.prepare import main

    write_prepare_inputs(repo, params="prepare:\n  maxlen: -1\n")
    before = all_runs()
    assert main([]) == 2
    assert "prepare.maxlen" in capsys.readouterr().err
    assert set(all_runs()) == set(before)


def test_bad_data_exits_2_and_the_run_is_failed(repo, capsys):
    from pipeline.stages.prepare import main

    write_prepare_inputs(repo, classes=("경제",))
    before = all_runs()
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only one class" in err[0]
    run = new_run(before)
    assert run.info.status == "FAILED" and "only one class" in run.data.tags["pipeline.error"]


def test_no_track_records_nothing(repo):
    from pipeline.stages.prepare import main

    write_prepare_inputs(repo)
    before = all_runs()
    assert main(["--no-track"]) == 0
    assert (repo / "data" / "prepared" / "vocab.json").is_file()
    assert set(all_runs()) == set(before)


def test_unusable_store_is_one_line_and_exit_2(repo, monkeypatch, capsys):
    from pipeline.stages.prepare import main

    write_prepare_inputs(repo)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuchscheme://nowhere" in err[0] and "--no-track" in err[0]


def test_sigterm_during_a_stage_exits_130_and_the_run_is_killed(repo, capsys):
    from pipeline.core.cli import EXIT_INTERRUPTED, run_stage, stage_parser

    def body(params, args):
        os.kill(os.getpid(), signal.SIGTERM)   # what `kill` or a CI timeout sends
        time.sleep(5)

    (repo / "params.yaml").write_text("{}\n", encoding="utf-8")
    handler = signal.getsignal(signal.SIGTERM)
    before = all_runs()
    assert run_stage("prepare", body, stage_parser("prepare", ""), [], reads=("prepare",)) == EXIT_INTERRUPTED
    assert "prepare: interrupted; previous outputs are left as they were" in capsys.readouterr().err
    run = new_run(before)
    # params.yaml is empty: the run records the values the stage read, the defaults.
    assert run.info.status == "KILLED" and run.data.params["prepare.maxlen"] == str(Params().prepare.maxlen)
    assert signal.getsignal(signal.SIGTERM) is handler


def test_three_stages_in_a_row_are_three_finished_runs(repo):
    """download -> tokenize -> prepare on a tiny table, no JVM: what `dvc repro` records."""
    from pipeline.stages import download, prepare, tokenize

    write_table_project(repo)
    before = all_runs()
    for stage in (download, tokenize, prepare):
        assert stage.main([]) == 0, stage.__name__
    runs = {r.info.run_name: r for rid, r in all_runs().items() if rid not in before}
    assert set(runs) == {"download", "tokenize", "prepare"}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    dl = runs["download"]
    size = (repo / "questions.csv").stat().st_size
    assert dl.data.metrics == {"download/files": 1, "download/bytes": size}
    assert artifacts(dl.info.run_id, "download") == {"download/manifest.json"}
    manifest = json.loads((repo / "data" / "raw" / "manifest.json").read_text(encoding="utf-8"))
    # The download run has the checksums of the files it laid out; later runs inherit them.
    for run in runs.values():
        assert run.data.tags["data.table/questions.csv.sha256"] == manifest["files"][0]["sha256"]
    tok = runs["tokenize"]
    assert tok.data.metrics["tokenize/documents"] == 24 and "tokenize/length/p95" in tok.data.metrics
    assert not any(key.startswith("tokenize/params") for key in tok.data.metrics)
    assert artifacts(tok.info.run_id, "tokenize") == {"tokenize/tokenize_stats.json"}
    assert tok.data.params["tokenize.analyzer"] == "whitespace"
    assert runs["prepare"].data.metrics["prepare/splits/train/rows"] == 12
