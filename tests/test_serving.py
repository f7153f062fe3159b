"""A model trained by the real stages (Okt, MLflow store) labels raw text: in process, through the
predict CLI with a registry URI, and over HTTP from `mlflow models serve`."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from test_pipeline_e2e import TOPICS, write_dataset

MODEL_URI = "models:/textclf-table/latest"


def run(cmd: list[str], root: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict]:
    """download -> tokenize (Okt) -> prepare -> train, each its own process, tracked in root/mlruns."""
    root = tmp_path_factory.mktemp("served")
    write_dataset(root / "questions.csv")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["dataset"].update(name="table", classes=[])
    params["dataset"]["table"].update(source="questions.csv", text_columns=["제목", "내용"], label_column="분류")
    params["tokenize"]["workers"] = 1
    params["prepare"].update({"maxlen": 12, "val_size": 0.2, "test_size": 0.2})
    params["prepare"]["vocab"]["min_freq"] = 1
    params["train"]["model"].update(units=8, embedding_dim=8, dense_units=0, bidirectional=False)
    params["train"].update(epochs=3, batch_size=8, use_tuned=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    # The venv's bin first: `mlflow models serve` starts `uvicorn` by name.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PIPELINE_CACHE_DIR": str(root / ".cache"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    for key in ("PIPELINE_DATA_MIRROR", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    for stage in ("download", "tokenize", "prepare", "train"):
        run([sys.executable, "-m", f"pipeline.{stage}"], root, env)
    return root, env


def raw_texts(root: Path, ids) -> list[str]:
    """The dataset's raw texts for the prepared ids (row numbers, 1-based), as the reader joins them."""
    table = pd.read_csv(root / "questions.csv", dtype=str)
    return [f"{table.loc[int(i) - 1, '제목']} {table.loc[int(i) - 1, '내용']}" for i in ids]


def test_raw_text_goes_through_exactly_the_training_preprocessing(project):
    from pipeline.model.inference import predict_proba
    from pipeline.serve.predictor import Classifier

    root, _ = project
    classifier = Classifier.load(root / "models")
    with np.load(root / "data" / "prepared" / "test.npz") as f:
        test = dict(f)
    texts = raw_texts(root, test["id"])
    x, lengths = classifier.encoder.encode(texts)
    assert np.array_equal(x, test["x"]) and np.array_equal(lengths, test["length"])   # the same ids
    expected = predict_proba(classifier.model, test["x"], test["length"], "pre", 256)
    out = classifier.predict(texts)
    labels = json.loads((root / "models" / "labels.json").read_text(encoding="utf-8"))
    np.testing.assert_allclose(out[[f"proba_{label}" for label in labels]].to_numpy(), expected, atol=1e-6)
    assert set(out["predicted"]) <= set(TOPICS) and not out["empty_text"].any()


def test_the_registered_model_is_the_runs_pyfunc_with_a_text_signature(project):
    root, env = project
    record = json.loads((root / "models" / "run.json").read_text())
    assert record["registered_model"] == "textclf-table" and record["model_version"] == 1
    code = ("import json, mlflow; from mlflow.models import get_model_info; "
            f"mlflow.set_tracking_uri('sqlite:///{root / 'mlruns' / 'mlflow.db'}'); "
            f"i = get_model_info({MODEL_URI!r}); "
            "print(json.dumps([i.run_id, list(i.flavors), i.signature.inputs.to_dict(), "
            "[c['name'] for c in i.signature.outputs.to_dict()]]))")
    run_id, flavors, inputs, outputs = json.loads(run([sys.executable, "-c", code], root, env).stdout.splitlines()[-1])
    assert run_id == record["run_id"] and "python_function" in flavors
    assert inputs == [{"type": "string", "required": True}]
    labels = json.loads((root / "models" / "labels.json").read_text(encoding="utf-8"))
    assert outputs == ["predicted", *(f"proba_{label}" for label in labels), "empty_text"]


def test_predict_cli_reads_the_registry_and_the_bundle_alike(project):
    root, env = project
    texts = ["주민등록 등본 발급 방법을 알려주세요", "", "기초 연금 신청 대상이 궁금합니다"]
    pd.DataFrame({"id": ["a", "b", "c"], "text": texts}).to_csv(root / "new.csv", index=False)
    run([sys.executable, "-m", "pipeline.predict", "new.csv", "-o", "bundle.csv"], root, env)
    done = run([sys.executable, "-m", "pipeline.predict", "new.csv", "-o", "registry.csv", "--model", MODEL_URI],
               root, env)
    assert "3 documents (1 empty)" in done.stderr
    bundle, registry = pd.read_csv(root / "bundle.csv"), pd.read_csv(root / "registry.csv")
    pd.testing.assert_frame_equal(bundle, registry, atol=1e-6)
    assert bundle["id"].tolist() == ["a", "b", "c"] and bundle["empty_text"].tolist() == [False, True, False]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def test_mlflow_models_serve_answers_raw_korean_text(project, tmp_path):
    from pipeline.serve.predictor import Classifier

    root, env = project
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=root, env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "the server did not answer /ping within 240 s"
            time.sleep(1)
        long_text = "여권 재발급 신청 절차 " * 20_000          # 240,000 characters: cut to tokenize.max_chars
        texts = ["전입 신고 서류 안내 부탁드립니다", "", long_text, "창업 자금 융자 신청은 어떻게 하나요"]
        url = f"http://127.0.0.1:{port}/invocations"
        records = post(url, {"dataframe_records": [{"text": t} for t in texts]})["predictions"]
        listed = post(url, {"inputs": texts})["predictions"]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    assert records == listed and len(records) == 4
    expected = Classifier.load(root / "models").predict(texts)
    assert [r["predicted"] for r in records] == expected["predicted"].tolist()
    assert [r["empty_text"] for r in records] == [False, True, False, False]
    for answer, (_, row) in zip(records, expected.iterrows()):
        probabilities = {k: v for k, v in answer.items() if k.startswith("proba_")}
        assert set(probabilities) == {f"proba_{label}" for label in TOPICS}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        for key, value in probabilities.items():
            assert value == pytest.approx(row[key], abs=1e-6)
