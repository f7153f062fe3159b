"""A model trained by the real stages (Okt, MLflow store) labels raw text: in process, through the
predict CLI with a registry URI, and over HTTP from `mlflow models serve`.

The model is the session's `repro_project` (conftest.py): `dvc repro` of the tiny table project,
its train stage registered the champion (the blend: the project sets champion.serve) as
textclf-table version 2, alias `champion`, after the runner-up as version 1, alias `challenger`.
Every answer is checked against w * rnn + (1 - w) * linear of the bundle's two parts.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.pickles import pickles_in
from helpers.project import TOPICS, Project
from helpers.serving import model_server

pytestmark = pytest.mark.integration

MODEL_URI = "models:/textclf-table/latest"
CHAMPION_URI = "models:/textclf-table@champion"


def blended(project: Project, texts: list[str]) -> np.ndarray:
    """w * rnn + (1 - w) * linear of the texts, each part loaded alone from models/ (the blend by hand)."""
    from pipeline.serve.predictor import Classifier

    w = project.read_json("models/champion.json")["weight"]
    rnn, _ = Classifier.load(project.root / "models", kind="rnn").predict_proba(texts)
    linear, _ = Classifier.load(project.root / "models", kind="linear").predict_proba(texts)
    return w * rnn.astype(np.float64) + (1 - w) * linear


def raw_texts(project: Project, ids) -> list[str]:
    """The dataset's raw texts for the prepared ids (row numbers, 1-based), as the reader joins them."""
    table = pd.read_csv(project.root / "questions.csv", dtype=str)
    return [f"{table.loc[int(i) - 1, '제목']} {table.loc[int(i) - 1, '내용']}" for i in ids]


def test_raw_text_goes_through_exactly_the_training_preprocessing(repro_project):
    from pipeline.data.sequences import shorten
    from pipeline.model.inference import predict_proba
    from pipeline.model.linear import load_linear, read_token_lists, split_rows
    from pipeline.serve.predictor import Classifier

    root = repro_project.root
    classifier = Classifier.load(root / "models")
    assert classifier.kind == "blend" and classifier.weight == repro_project.read_json("models/champion.json")["weight"]
    with np.load(root / "data" / "prepared" / "test.npz") as f:
        test = dict(f)
    # Train may have used a tuned train.maxlen: the prepared rows re-cut to it are what the model saw.
    prepare = repro_project.read_json("data/prepared/params.json")["prepare"]
    maxlen = repro_project.read_json("models/params.json")["train"]["maxlen"]
    if maxlen:
        test = shorten(test, maxlen, prepare["padding"], prepare["truncating"])
    texts = raw_texts(repro_project, test["id"])
    x, lengths = classifier.encoder.encode(texts)
    assert np.array_equal(x, test["x"]) and np.array_equal(lengths, test["length"])   # the same ids
    tokens_file = root / "data" / "tokens.parquet"
    by_id = read_token_lists(tokens_file)
    rows = split_rows(root / "data" / "prepared", "test", by_id, tokens_file)
    assert classifier.encoder.analyze(texts) == rows.tokens   # the linear model's input: tokens.parquet's
    rnn = predict_proba(classifier.model, test["x"], test["length"], "pre", 256)
    linear = load_linear(root / "models", "").predict_proba(rows.tokens)
    expected = classifier.weight * rnn + (1 - classifier.weight) * linear
    assert not np.allclose(expected, rnn, atol=1e-3) and not np.allclose(expected, linear, atol=1e-3)
    out = classifier.predict(texts)
    labels = repro_project.read_json("models/labels.json")
    np.testing.assert_allclose(out[[f"proba_{label}" for label in labels]].to_numpy(), expected, atol=1e-6)
    assert set(out["predicted"]) <= set(TOPICS) and not out["empty_text"].any()


def test_the_registered_model_is_the_runs_pyfunc_with_a_text_signature(repro_project, tmp_path):
    import mlflow
    from mlflow.models import Model, get_model_info

    record = repro_project.read_json("models/run.json")
    assert record["registered_model"] == "textclf-table" and record["model_version"] == 2
    assert record["challenger_version"] == 1 and record["champion"]["kind"] == "blend"
    mlflow.set_tracking_uri(repro_project.tracking_uri)   # conftest resets it after the test
    info = get_model_info(MODEL_URI)
    assert info.run_id == record["run_id"] and "python_function" in info.flavors
    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("textclf-table", "champion")
    challenger = client.get_model_version_by_alias("textclf-table", "challenger")
    runner_up = record["champion"]["runner_up"]
    assert (int(champion.version), int(challenger.version)) == (2, 1)
    assert champion.description.startswith("champion: blend: ") and "x RNN (gru" in champion.description
    assert "x linear model (TF-IDF word 1-2-grams + character 2-4-grams" in champion.description
    assert challenger.description.startswith(f"challenger: {'RNN' if runner_up == 'rnn' else 'linear model'}")
    artifacts = {a.path for a in client.list_artifacts(record["run_id"], "challenger/artifacts/bundle")}
    parts = {"rnn": "model.keras", "linear": "linear.skops"}
    assert f"challenger/artifacts/bundle/{parts[runner_up]}" in artifacts
    assert f"challenger/artifacts/bundle/{parts[{'rnn': 'linear', 'linear': 'rnn'}[runner_up]]}" not in artifacts
    # No input schema (issue 14): MLflow takes an unnamed column by position, the id of [id, text],
    # and casts its values to strings, while a named one drops a bare list; pyfunc.py checks the input
    # itself. What the model takes is shown by its input example: a `text` column of raw texts.
    assert info.signature.inputs is None
    example = Model.load(MODEL_URI).load_input_example(MODEL_URI)
    assert list(example.columns) == ["text"] and len(example) == len(TOPICS)
    assert all(isinstance(text, str) and text.strip() for text in example["text"])
    labels = repro_project.read_json("models/labels.json")
    outputs = [c["name"] for c in info.signature.outputs.to_dict()]
    assert outputs == ["predicted", *(f"proba_{label}" for label in labels), "empty_text"]
    # Models from code (issue 36): no artifact of the run, champion or challenger, is or holds a pickle.
    # The whole local store (every run's artifacts, logged model and registry copy) is scanned.
    store = repro_project.root / "mlruns"
    assert len(list(store.rglob("model_code.py"))) >= 2 and pickles_in(store) == []
    for version in (champion, challenger):   # what models:/ loads: the registry's copy
        served = Path(mlflow.artifacts.download_artifacts(f"models:/textclf-table/{version.version}",
                                                          dst_path=str(tmp_path / str(version.version))))
        assert (served / "model_code.py").is_file() and pickles_in(served) == []


def test_predict_cli_reads_the_registry_and_the_bundle_alike(repro_project, tmp_path, monkeypatch, capsys):
    from pipeline.serve.predict import main

    # In the project, as a user would run it: `models` is the bundle, the store is mlruns/.
    monkeypatch.chdir(repro_project.root)
    texts = ["주민등록 등본 발급 방법을 알려주세요", "", "기초 연금 신청 대상이 궁금합니다"]
    source = tmp_path / "new.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "text": texts}).to_csv(source, index=False)
    assert main([str(source), "-o", str(tmp_path / "bundle.csv")]) == 0
    capsys.readouterr()
    assert main([str(source), "-o", str(tmp_path / "registry.csv"), "--model", CHAMPION_URI]) == 0
    assert "3 documents (1 empty)" in capsys.readouterr().err
    bundle, registry = pd.read_csv(tmp_path / "bundle.csv"), pd.read_csv(tmp_path / "registry.csv")
    pd.testing.assert_frame_equal(bundle, registry, atol=1e-6)
    assert bundle["id"].tolist() == ["a", "b", "c"] and bundle["empty_text"].tolist() == [False, True, False]
    labels = repro_project.read_json("models/labels.json")
    np.testing.assert_allclose(bundle[[f"proba_{label}" for label in labels]].to_numpy(), blended(repro_project, texts),
                               atol=1e-6)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())


def test_mlflow_models_serve_answers_raw_korean_text(repro_project, tmp_path):
    from pipeline.serve.predictor import Classifier

    root = repro_project.root
    with model_server(repro_project, MODEL_URI, tmp_path / "serve.log") as url:
        long_text = "여권 재발급 신청 절차 " * 20_000          # 240,000 characters: cut to tokenize.max_chars
        texts = ["전입 신고 서류 안내 부탁드립니다", "", long_text, "창업 자금 융자 신청은 어떻게 하나요"]
        records = post(url, {"dataframe_records": [{"text": t} for t in texts]})["predictions"]
        listed = post(url, {"inputs": texts})["predictions"]
    assert records == listed and len(records) == 4
    expected = Classifier.load(root / "models").predict(texts)
    assert [r["predicted"] for r in records] == expected["predicted"].tolist()
    labels = repro_project.read_json("models/labels.json")
    np.testing.assert_allclose([[r[f"proba_{label}"] for label in labels] for r in records],
                               blended(repro_project, texts), atol=1e-6)   # w * rnn + (1 - w) * linear
    assert [r["empty_text"] for r in records] == [False, True, False, False]
    for answer, (_, row) in zip(records, expected.iterrows()):
        probabilities = {k: v for k, v in answer.items() if k.startswith("proba_")}
        assert set(probabilities) == {f"proba_{label}" for label in TOPICS}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        for key, value in probabilities.items():
            assert value == pytest.approx(row[key], abs=1e-6)
