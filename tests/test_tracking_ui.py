"""What a team sees in the MLflow UI: experiments marked as model training, the data of every stage
run as MLflow dataset inputs (the runs table's Dataset column), and both pages in headless Chromium
from a real `mlflow server`. Real SQLite stores throughout, no mocks."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import make_params
from helpers.browser import chromium, experiment_url, mlflow_ui, page_text, run_url, screenshot
from helpers.tinydata import write_table_project
from pipeline.core import tracking


def client(uri: str | None = None):
    import mlflow
    return mlflow.MlflowClient(tracking_uri=uri or tracking.tracking_uri())


def three_stages(root: Path) -> dict:
    """download -> tokenize -> prepare of a tiny table (whitespace analyzer: no JVM), tracked in
    root/mlruns as `dvc repro` would; the runs by name."""
    from pipeline.stages import download, prepare, tokenize

    write_table_project(root)
    for stage in (download, tokenize, prepare):
        assert stage.main([]) == 0, stage.__name__
    experiment = client().get_experiment_by_name("textclf-table")
    return {r.info.run_name: r for r in client().search_runs([experiment.experiment_id])}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()[:12]


def inputs(run_id: str) -> dict:
    """context -> (name, digest, source, profile) of a run's dataset inputs, in the order logged."""
    run = client().get_run(run_id)
    found = {}
    for item in run.inputs.dataset_inputs:
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        d = item.dataset
        assert d.source_type == "local"
        found[context] = (d.name, d.digest, json.loads(d.source)["uri"], json.loads(d.profile))
    return found


# --- the experiment's kind ---------------------------------------------------------------------

def test_experiments_are_marked_as_model_training_new_or_old(in_tmp, mlflow_store):
    c = client(mlflow_store)
    new = tracking.ensure_experiment("unit")
    assert c.get_experiment(new).tags[tracking.KIND_TAG] == "custom_model_development"
    # Made before the tag (or by another tool): tagged on its next use.
    old = c.create_experiment("textclf-old")
    assert tracking.KIND_TAG not in c.get_experiment(old).tags
    assert tracking.ensure_experiment("old") == old
    assert c.get_experiment(old).tags[tracking.KIND_TAG] == "custom_model_development"
    # A kind someone chose in the UI stays theirs.
    c.set_experiment_tag(old, tracking.KIND_TAG, "genai_development")
    tracking.ensure_experiment("old")
    assert c.get_experiment(old).tags[tracking.KIND_TAG] == "genai_development"


# --- datasets ----------------------------------------------------------------------------------

def test_every_stage_run_logs_the_data_it_reads_with_digest_source_and_context(in_tmp, mlflow_store):
    runs = three_stages(in_tmp)
    manifest = json.loads((in_tmp / "data" / "raw" / "manifest.json").read_text(encoding="utf-8"))
    (file,) = manifest["files"]
    raw = ("table-raw", hashlib.sha256(f"{file['path']} {file['sha256']}\n".encode()).hexdigest()[:12], "data/raw",
           {"files": 1, "bytes": file["size"], "sources": ["questions.csv"]})
    # download logs the files it has just laid out; tokenize read them: the same data, the same digest.
    assert inputs(runs["download"].info.run_id) == {"raw": raw}
    assert inputs(runs["tokenize"].info.run_id) == {"raw": raw}
    tokens = in_tmp / "data" / "tokens.parquet"
    assert inputs(runs["prepare"].info.run_id) == {
        "tokens": ("table-tokens", md5(tokens), "data/tokens.parquet", {"rows": 24, "bytes": tokens.stat().st_size})}

    def split(name: str) -> tuple:
        path = in_tmp / "data" / "prepared" / f"{name}.npz"
        return (f"table-{name}", md5(path), f"data/prepared/{name}.npz",
                {"rows": len(np.load(path)["y"]), "bytes": path.stat().st_size})

    # train (and tune) read the train and val splits; a trial, nested in its stage run, adds none.
    params = make_params(dataset={"name": "table"})
    with tracking.stage_run("train", params, ()) as train:
        with tracking.stage_run("train", params, (), run_name="trial 0", nested=True) as trial:
            pass
    assert inputs(train.info.run_id) == {"train": split("train"), "val": split("val")}
    assert inputs(trial.info.run_id) == {}
    assert split("train")[3]["rows"] == 12 and split("test")[3]["rows"] == 6
    # evaluate reads everything, the test split first; it adds the test split to the train run.
    with tracking.stage_run("evaluate", params, ()) as evaluate:
        tracking.log_datasets(("test",), "table", run_id=train.info.run_id)
    got = inputs(evaluate.info.run_id)
    assert list(got) == ["test", "train", "val", "tokens", "raw"]
    assert got["test"] == split("test") and got["raw"] == raw and got["tokens"][1] == md5(tokens)
    assert list(inputs(train.info.run_id)) == ["train", "val", "test"]


def test_data_not_there_yet_is_left_out(in_tmp, mlflow_store):
    """A stage before its inputs exist (or with a damaged manifest) still runs; it logs what is there."""
    (in_tmp / "data" / "raw").mkdir(parents=True)
    (in_tmp / "data" / "raw" / "manifest.json").write_text("{not json", encoding="utf-8")
    with tracking.stage_run("evaluate", make_params(), (), dataset="unit") as run:
        pass
    assert client().get_run(run.info.run_id).inputs.dataset_inputs == []
    assert client().get_run(run.info.run_id).info.status == "FINISHED"


# --- the pages, as a person sees them ----------------------------------------------------------

@pytest.mark.integration
@pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (headless) to render the MLflow UI: "
                    "apt-get install chromium (.ci/run installs it)")
def test_the_ui_opens_on_the_runs_table_with_datasets_and_shows_a_runs_params_and_metrics(
        in_tmp, mlflow_store, tmp_path_factory):
    runs = three_stages(in_tmp)
    prepare = runs["prepare"]
    digest = inputs(prepare.info.run_id)["tokens"][1]
    pictures = tmp_path_factory.mktemp("screenshots")
    with mlflow_ui(mlflow_store, pictures / "server.log") as base:
        experiment = client(base).get_experiment(prepare.info.experiment_id)
        assert experiment.tags[tracking.KIND_TAG] == "custom_model_development"   # as the server reports it

        url = experiment_url(base, experiment.experiment_id)
        text = page_text(url)
        # The runs table, not the GenAI overview (traces, token usage, cost).
        assert "Run Name" in text and "| 3 | matching runs" in text, text[:3000]
        assert not any(genai in text for genai in ("Token Usage", "Cost Breakdown", "Tokens per Trace")), text[:3000]
        for name in ("download", "tokenize", "prepare"):
            assert f"| {name} |" in text
        # The Dataset column: name (digest) and context of each run's input.
        assert "Dataset" in text
        assert f"table-tokens ({digest})" in text and "table-raw (" in text, text[:3000]
        assert screenshot(url, pictures / "runs.png", (1600, 560)).stat().st_size > 10_000

        url = run_url(base, experiment.experiment_id, prepare.info.run_id)
        text = page_text(url)
        assert "| prepare |" in text and "Finished" in text, text[:3000]
        assert "Parameters (12)" in text and "| prepare.maxlen | 4 |" in text, text[:3000]
        rows = prepare.data.metrics["prepare/splits/train/rows"]
        assert f"Metrics ({len(prepare.data.metrics)})" in text and f"| prepare/splits/train/rows | {rows:g} |" in text
        assert "Datasets" in text and f"table-tokens ({digest})" in text
        assert screenshot(url, pictures / "run.png", (1600, 1000)).stat().st_size > 10_000
