"""evaluate: metrics, plots, length-sorted batched prediction equal to plain prediction, the linear
model fitted and scored beside the RNN, every candidate's figures, and the served model's most
confident mistakes with their text."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import REPO
from helpers.champion import add_champion
from helpers.tinydata import TINY_PREPROCESS, tiny_model
from pipeline.core.config import LinearParams
from pipeline.model.evaluation import mistakes, per_class_png, roc_points, scores, write_plots
from pipeline.model.inference import predict_proba
from pipeline.model.linear import concat_rows, fit_linear, fit_splits, read_token_lists, split_rows

PNG = b"\x89PNG\r\n\x1a\n"
CANDIDATE_KEYS = {f"{kind}/test/{key}" for kind in ("linear", "blend", "champion")
                  for key in ("loss", "accuracy", "macro_f1", "rows", "roc_auc")}


def test_scores_per_class_and_macro_f1():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.9 + 0.1 / 3
    s = scores(y, proba, ["a", "b", "c"])
    assert s["test/accuracy"] == pytest.approx(4 / 6)
    assert s["test/per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0,
                                        "f1": pytest.approx(0.8), "support": 2}
    f1s = [s["test/per_class"][k]["f1"] for k in "abc"]
    assert s["test/macro_f1"] == pytest.approx(np.mean(f1s))
    assert s["test/loss"] > 0 and s["test/rows"] == 6


def test_roc_binary_and_micro_average():
    y = np.array([0, 0, 1, 1])
    fpr, tpr, area = roc_points(y, np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]))
    assert area == 1.0 and fpr[0] == 0 and tpr[-1] == 1
    _, _, area3 = roc_points(np.array([0, 1, 2]), np.eye(3) * 0.8 + 0.2 / 3)
    assert area3 == 1.0


def test_batched_prediction_matches_whole_rows():
    import keras

    from pipeline.model.architecture import build_model

    keras.utils.set_random_seed(0)
    model = build_model(tiny_model(units=4, embedding_dim=4), vocab_size=20, num_classes=3)
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 10, 40)
    x = np.zeros((40, 10), np.int32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.integers(2, 20, n)
    ours = predict_proba(model, x, lengths, "post", batch_size=7)
    plain = np.asarray(model(x, training=False))
    np.testing.assert_allclose(ours, plain, atol=1e-5)
    binary = build_model(tiny_model(units=4, embedding_dim=4), vocab_size=20, num_classes=2)
    two = predict_proba(binary, x, lengths, "post", batch_size=16)
    assert two.shape == (40, 2) and np.allclose(two.sum(1), 1)


def test_plots_are_written_for_dvc_and_people(tmp_path):
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]])
    area = write_plots(y, proba, ["부정", "긍정"], tmp_path)
    assert 0 <= area <= 1
    rows = (tmp_path / "confusion.csv").read_text(encoding="utf-8").splitlines()
    assert rows == ["actual,predicted", "부정,부정", "긍정,긍정", "긍정,부정", "부정,긍정"]
    assert (tmp_path / "roc.csv").read_text().startswith("fpr,tpr\n")
    for png in ("confusion.png", "roc.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def with_ids(prepared_src: Path, root: Path, flip: int = 0, invert_test: bool = False,
             extra_token: bool = False) -> Path:
    """data/prepared (from tiny_prepared) with ids as the prepare stage writes them, and the
    data/tokens.parquet they come from (tokens w<id>: the encoded rows spelled out).

    flip: the first test rows get the other label, so the RNN gets them wrong with confidence.
    invert_test: every test row gets the other label and one token no other row has, so a baseline
    that learnt from the test rows scores well on them and an honest one scores about 0.
    """
    from pipeline.text.documents import write_tokens

    prepared = root / "data" / "prepared"
    shutil.copytree(prepared_src, prepared)
    labels = json.loads((prepared / "labels.json").read_text())
    rows = []
    for split in ("train", "val", "test"):
        arrays = dict(np.load(prepared / f"{split}.npz"))
        n = len(arrays["y"])
        arrays["id"] = np.array([f"{split}-{i}" for i in range(n)])
        if split == "test":
            arrays["y"][:n if invert_test else flip] = 1 - arrays["y"][:n if invert_test else flip]
        np.savez(prepared / f"{split}.npz", **arrays)
        for i in range(n):
            tokens = [f"w{t}" for t in arrays["x"][i, :arrays["length"][i]]]
            if split == "test" and (invert_test or extra_token):
                tokens.append(f"only{chr(97 + i // 26)}{chr(97 + i % 26)}")
            rows.append({"id": arrays["id"][i], "label": labels[arrays["y"][i]], "split": "", "tokens": tokens,
                         "length": len(tokens), "text_key": arrays["id"][i]})   # each row a text of its own
    write_tokens(pd.DataFrame(rows), root / "data" / "tokens.parquet", TINY_PREPROCESS)
    return prepared


def write_raw(root: Path) -> dict[str, str]:
    """data/raw as the download stage lays out a table dataset; its texts by id."""
    table = pd.read_parquet(root / "data" / "tokens.parquet")
    texts = {i: f"원문 {i}: " + " ".join(t) for i, t in zip(table["id"], table["tokens"])}
    folder = root / "data" / "raw"
    (folder / "table").mkdir(parents=True)
    pd.DataFrame({"id": list(texts), "text": list(texts.values()), "label": table["label"]}).to_csv(
        folder / "table" / "questions.csv", index=False)
    (folder / "manifest.json").write_text(json.dumps({"dataset": "table", "files": [
        {"name": "questions.csv", "path": "table/questions.csv"}]}))
    return texts


def write_params(root: Path, **evaluate) -> None:
    """params.yaml: the repo's, with the table dataset the raw folder holds and `evaluate` changed."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["dataset"].update(name="table", classes=[])
    params["dataset"]["table"].update(source="questions.csv", text_columns=["text"], label_column="label",
                                      id_column="id")
    for key, value in evaluate.items():
        section = "evaluate" if key in params["evaluate"] else "champion"
        if isinstance(value, dict):
            params[section][key].update(value)
        else:
            params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


def evaluated_project(root: Path, bundle: Path, prepared_src: Path, raw: bool = True, flip: int = 12,
                      champion: dict | None = None, **evaluate) -> dict[str, str]:
    """A repo root that evaluate can run in: models/ (with the champion chosen on val, `champion`:
    its champion.* keys), data/prepared with ids, tokens, raw texts, params."""
    shutil.copytree(bundle, root / "models")
    (root / "models" / "run.json").write_text(json.dumps({"run_id": None}))
    prepared = with_ids(prepared_src, root, flip=flip)
    add_champion(root / "models", prepared, root / "data" / "tokens.parquet", **(champion or {}))
    write_params(root, **evaluate)
    return write_raw(root) if raw else {}


def fitted(tmp_path: Path, prepared: Path, cfg: LinearParams | None = None):
    """The linear model fitted on train + val, as the train stage serves it, and the test rows."""
    tokens = tmp_path / "data" / "tokens.parquet"
    labels = json.loads((prepared / "labels.json").read_text())
    cfg = cfg or LinearParams()
    by_id = read_token_lists(tokens)
    return (fit_linear(cfg, concat_rows(list(fit_splits(prepared, tokens, by_id))), labels),
            split_rows(prepared, "test", by_id, tokens), labels)


def test_the_linear_model_is_scored_like_the_rnn_and_deterministic(tmp_path, tiny_prepared):
    prepared = with_ids(tiny_prepared, tmp_path)
    first, test, labels = fitted(tmp_path, prepared)
    second, _, _ = fitted(tmp_path, prepared)
    proba = first.predict_proba(test.tokens)
    m = scores(test.y, proba, labels)
    assert m["test/rows"] == 64 and m["test/accuracy"] > 0.9   # the tiny task is separable: w3 is class 1, w4 class 0
    assert proba.shape == (64, 2) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(proba, second.predict_proba(test.tokens))
    # Word n-grams alone, character n-grams alone: each a linear model of its own.
    for cfg in (LinearParams(char_ngrams=[]), LinearParams(word_ngrams=0)):
        model, _, _ = fitted(tmp_path, prepared, cfg)
        assert scores(test.y, model.predict_proba(test.tokens), labels)["test/accuracy"] > 0.9


def test_the_served_linear_model_never_learns_from_the_test_rows(tmp_path, tiny_prepared):
    """Every test row carries the other class's label and a token of its own: learnt from, the
    test rows would be scored well (the control below); not learnt from, about none is right."""
    prepared = with_ids(tiny_prepared, tmp_path, invert_test=True)
    honest, test, labels = fitted(tmp_path, prepared)
    assert scores(test.y, honest.predict_proba(test.tokens), labels)["test/accuracy"] < 0.1
    vocabulary = honest.pipeline.named_steps["features"].transformer_list[0][1].vocabulary_
    assert not any(gram.startswith("only") for gram in vocabulary), "a test row's token reached fit"

    # The control: the same test rows copied into val reach fit, and the score jumps.
    val, test_arrays = dict(np.load(prepared / "val.npz")), dict(np.load(prepared / "test.npz"))
    np.savez(prepared / "val.npz", **{k: np.concatenate([val[k], test_arrays[k]]) for k in val})
    leaked, test, _ = fitted(tmp_path, prepared)
    assert scores(test.y, leaked.predict_proba(test.tokens), labels)["test/accuracy"] > 0.7


def test_linear_model_without_features_or_ids_is_one_line(tmp_path, tiny_prepared):
    from pipeline.core.errors import DataError, ParamsError

    prepared = with_ids(tiny_prepared, tmp_path)
    with pytest.raises(ParamsError, match=r"^champion.linear: word_ngrams is 0 and char_ngrams is \[\]"):
        fitted(tmp_path, prepared, LinearParams(word_ngrams=0, char_ngrams=[]))
    tokens = tmp_path / "data" / "tokens.parquet"
    by_id = read_token_lists(tokens)
    del by_id["test-5"]
    with pytest.raises(DataError, match=r"test.npz: 1 of 64 ids are not in .*tokens.parquet \(first 'test-5'\)"):
        split_rows(prepared, "test", by_id, tokens)
    with pytest.raises(DataError, match=r"train.npz: has no id array .*\(dvc repro prepare\)$"):
        fit_splits(tiny_prepared, tokens)


def test_an_id_on_two_rows_with_different_tokens_is_refused(tmp_path):
    """Rows are joined by id: two texts under one id (a table's own id column) cannot be told apart."""
    from pipeline.core.errors import DataError
    from pipeline.text.documents import write_tokens

    table = pd.DataFrame({"id": ["7", "8", "7"], "label": ["a", "b", "a"], "split": "",
                          "tokens": [["x", "y"], ["z"], ["x", "y"]], "length": [2, 1, 2],
                          "text_key": ["k7", "k8", "k7"]})
    write_tokens(table, tmp_path / "same.parquet", TINY_PREPROCESS)
    assert read_token_lists(tmp_path / "same.parquet") == {"7": ["x", "y"], "8": ["z"]}   # the same text twice
    table.at[2, "tokens"] = ["w"]
    write_tokens(table, tmp_path / "two.parquet", TINY_PREPROCESS)
    with pytest.raises(DataError, match=r"two.parquet: id '7' is on several rows with different texts; .* "
                                        r"\(dataset.table.id_column, or leave it empty to number the rows\)$"):
        read_token_lists(tmp_path / "two.parquet")


def test_mistakes_are_the_most_confident_wrong_predictions():
    y = np.array([0, 1, 1, 0, 2, 2])
    proba = np.array([[0.9, 0.1, 0.0],    # right
                      [0.7, 0.2, 0.1],    # wrong, 0.7
                      [0.05, 0.05, 0.9],  # wrong, 0.9
                      [0.2, 0.6, 0.2],    # wrong, 0.6
                      [0.1, 0.1, 0.8],    # right
                      [0.1, 0.7, 0.2]])   # wrong, 0.7 (after row 1: split order)
    ids = np.array(["a", "b", "c", "d", "e", "f"])
    table = mistakes(ids, y, proba, ["x", "y", "z"], {"c": "text of c"}, 3)
    assert table.to_dict("records") == [
        {"id": "c", "text": "text of c", "actual": "y", "predicted": "z", "probability": 0.9},
        {"id": "b", "text": "", "actual": "y", "predicted": "x", "probability": 0.7},
        {"id": "f", "text": "", "actual": "z", "predicted": "y", "probability": 0.7}]
    assert len(mistakes(ids, y, proba, ["x", "y", "z"], {}, 10)) == 4
    assert list(mistakes(ids, y, proba, ["x", "y", "z"], {}, 0).columns) == ["id", "text", "actual", "predicted",
                                                                            "probability"]


def test_per_class_plot_of_one_or_several_candidates(tmp_path):
    per_class = {"행정": {"precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 110},
                 "복지": {"precision": 0.75, "recall": 0.4, "f1": 0.53, "support": 22}}
    per_class_png({"rnn": per_class}, tmp_path / "a.png")
    per_class_png({"rnn": per_class, "linear": {k: {**v, "f1": 0.7} for k, v in per_class.items()}}, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG and (tmp_path / "b.png").read_bytes()[:8] == PNG


def test_evaluate_stage_scores_every_candidate_and_the_served_models_mistakes(in_tmp, tiny_bundle, tiny_prepared,
                                                                              capsys):
    from pipeline.stages.evaluate import main

    texts = evaluated_project(in_tmp, tiny_bundle, tiny_prepared, champion={"serve": "blend"}, mistakes=5)
    assert main(["--no-track"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads((in_tmp / "metrics.json").read_text(encoding="utf-8"))
    choice = json.loads((in_tmp / "models" / "champion.json").read_text(encoding="utf-8"))
    assert CANDIDATE_KEYS <= set(metrics) and metrics["champion"] == "blend"
    for key in ("loss", "accuracy", "macro_f1"):
        assert metrics[f"champion/test/{key}"] == metrics[f"blend/test/{key}"]
        assert 0 <= metrics[f"linear/test/{key}"] <= (np.inf if key == "loss" else 1)
    assert metrics["linear/test/rows"] == metrics["test/rows"] == 64
    # The blend's test figures are those of w * rnn + (1 - w) * linear, with the weight chosen on val.
    w = choice["candidates"]["blend"]["weight"]
    assert metrics["champion/weight"] == w and 0 < w < 1
    table = metrics["candidates"]
    assert list(table) == ["rnn", "linear", "blend"]   # the RNN's figures first
    assert table["rnn"]["test/accuracy"] == metrics["test/accuracy"]
    assert table["blend"]["val/accuracy"] == choice["candidates"]["blend"]["val/accuracy"]
    assert "<- champion" in [line for line in captured.err.splitlines() if line.strip().startswith("blend")][0]
    assert f"served model blend (w = {w:g}): test accuracy {metrics['blend/test/accuracy']:.4f}" in captured.out

    # The served model's most confident mistakes are listed, with their raw text.
    mistakes_table = pd.read_csv(in_tmp / "plots" / "evaluate" / "mistakes.csv", dtype={"id": str})
    wrong = round((1 - metrics["champion/test/accuracy"]) * 64)
    assert wrong >= 5 and len(mistakes_table) == 5 and f"5 most confident of {wrong} wrong predictions" in captured.out
    assert (mistakes_table["actual"] != mistakes_table["predicted"]).all()
    assert mistakes_table["probability"].is_monotonic_decreasing and (mistakes_table["probability"] > 0.5).all()
    assert mistakes_table["text"].tolist() == [texts[i] for i in mistakes_table["id"]]
    assert "texts from data/raw" in captured.out
    y = np.load(in_tmp / "data" / "prepared" / "test.npz")["y"]
    ids = list(np.load(in_tmp / "data" / "prepared" / "test.npz")["id"])
    actual = mistakes_table["actual"].astype(str)
    assert all(str(int(y[ids.index(i)])) == a for i, a in zip(mistakes_table["id"], actual))
    assert (in_tmp / "plots" / "evaluate" / "per_class.png").read_bytes()[:8] == PNG


def test_evaluate_stage_without_the_linear_model_or_the_raw_data(in_tmp, tiny_bundle, tiny_prepared, capsys):
    from pipeline.stages.evaluate import main

    evaluated_project(in_tmp, tiny_bundle, tiny_prepared, raw=False, champion={"linear": {"enabled": False}},
                      mistakes=50)
    assert main(["--no-track"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((in_tmp / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["champion"] == "rnn" and list(metrics["candidates"]) == ["rnn"]
    assert not {k for k in metrics if k.startswith(("linear/", "blend/"))}
    assert metrics["champion/test/accuracy"] == metrics["test/accuracy"]
    table = pd.read_csv(in_tmp / "plots" / "evaluate" / "mistakes.csv", dtype={"id": str})
    assert 12 <= len(table) <= 50 and (table["actual"] != table["predicted"]).all()
    tokens = read_token_lists(in_tmp / "data" / "tokens.parquet")
    assert table["text"].tolist() == [" ".join(tokens[i]) for i in table["id"]]   # the tokens stand in
    assert "data/raw absent: tokens as texts" in out
    assert (in_tmp / "plots" / "evaluate" / "per_class.png").read_bytes()[:8] == PNG


def test_prepared_data_without_ids_is_one_line(in_tmp, tiny_bundle, tiny_prepared, capsys):
    """Prepared by a version that wrote no ids: evaluate says to prepare again, and writes nothing."""
    from pipeline.stages.evaluate import main

    evaluated_project(in_tmp, tiny_bundle, tiny_prepared, raw=False)
    shutil.rmtree(in_tmp / "data" / "prepared")
    shutil.copytree(tiny_prepared, in_tmp / "data" / "prepared")
    assert main(["--no-track"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("evaluate: error: data/prepared/test.npz: has no id array (written by an older version); "
                   "run the prepare stage again (dvc repro prepare)")
    assert not (in_tmp / "metrics.json").exists() and not (in_tmp / "plots").exists()


def test_results_show_the_linear_model_and_the_champion_beside_each_run():
    from pipeline.experiments.results import Outcome, render_results
    from pipeline.experiments.spec import Experiment, SeedFigure

    experiment = Experiment("tiny", "a tiny one", SeedFigure("test/accuracy", 0.8, "made up"), "", {})
    old = Outcome("r1", 0.8, 0.81, 3, {}, "abc1234")                       # made before the linear model
    new = Outcome("r2", 0.8, 0.82, 3, {}, "abc1234", baseline_accuracy=0.855, champion="blend",
                  champion_accuracy=0.861)
    for seed, tuned, linear, champion in ((old, None, "—", "—"), (new, None, "0.8550", "blend 0.8610"),
                                          (new, new, "0.8550", "blend 0.8610"),
                                          (old, new, "ours — / tuned 0.8550", "ours — / tuned blend 0.8610"),
                                          (None, None, "—", "—")):
        outcomes = {k: v for k, v in ((experiment.run_name(False), seed), (experiment.run_name(True), tuned)) if v}
        text = render_results([experiment], outcomes)
        assert "| linear model (test) | champion (test) |" in text
        (row,) = [line for line in text.splitlines() if line.startswith(f"| `{experiment.name}`")]
        assert row.rstrip(" |").split(" | ")[-2:] == [linear, champion]


def test_no_track_records_nothing_not_even_on_the_train_run(in_tmp, tiny_bundle, tiny_prepared, mlflow_store,
                                                            monkeypatch):
    import mlflow

    from pipeline.stages.evaluate import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_store)
    client = mlflow.MlflowClient(tracking_uri=mlflow_store)
    train_run = client.create_run(client.create_experiment("textclf-table")).info.run_id
    evaluated_project(in_tmp, tiny_bundle, tiny_prepared, champion={"serve": "blend"}, mistakes=5)
    (in_tmp / "models" / "run.json").write_text(json.dumps({"run_id": train_run}))

    assert main(["--no-track"]) == 0
    assert (in_tmp / "metrics.json").is_file()
    assert "test/accuracy" not in client.get_run(train_run).data.metrics
    assert main([]) == 0
    train_metrics = client.get_run(train_run).data.metrics
    assert "test/accuracy" in train_metrics and "champion/test/accuracy" in train_metrics
    (evaluate_run,) = [r for r in client.search_runs([client.get_experiment_by_name("textclf-table").experiment_id])
                       if r.info.run_id != train_run]
    assert CANDIDATE_KEYS <= set(evaluate_run.data.metrics)
    assert evaluate_run.data.params["evaluate.mistakes"] == "5" and evaluate_run.data.tags["champion"] == "blend"
    artifacts = {a.path for a in client.list_artifacts(evaluate_run.info.run_id, "evaluate")}
    assert {"evaluate/mistakes.csv", "evaluate/per_class.png", "evaluate/mistakes.json"} <= artifacts
    table = json.loads(Path(client.download_artifacts(evaluate_run.info.run_id, "evaluate/mistakes.json",
                                                      str(in_tmp / "dl"))).read_text(encoding="utf-8"))
    assert table["columns"] == ["id", "text", "actual", "predicted", "probability"] and len(table["data"]) == 5


def test_a_truncated_test_split_is_one_line_naming_it(tiny_bundle, tiny_prepared, tmp_path):
    from pipeline.core.errors import DataError
    from pipeline.model.evaluation import evaluate

    prepared = tmp_path / "prepared"
    shutil.copytree(tiny_prepared, prepared)
    path = prepared / "test.npz"
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: damaged or not what the prepare stage writes "
                                        rf"\(BadZipFile: .*\); rebuild it with `dvc repro prepare` or "
                                        rf"`dvc checkout {re.escape(str(prepared))}`$"):
        evaluate(tiny_bundle, prepared, 32)
