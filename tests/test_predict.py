"""Raw-text prediction: the bundle a training run writes, the predict CLI, the pyfunc wrapper.

The model here (conftest.py's tiny_bundle) is trained for real on the tiny separable task (token w3 ->
class "1", w4 -> "0") with the whitespace analyzer; test_serving.py does the same with Okt, MLflow and
a server.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from helpers.tinydata import TINY_PREPROCESS
from pipeline.core.errors import DataError
from pipeline.serve.bundle import load_encoder
from pipeline.serve.predict import check_encoding, input_format, main, predict_file
from pipeline.serve.predictor import EMPTY, PREDICTED, Classifier

COLUMNS = [PREDICTED, "proba_0", "proba_1", EMPTY]


@pytest.fixture(scope="module")
def classifier(tiny_bundle) -> Classifier:
    return Classifier.load(tiny_bundle)


def test_raw_text_is_encoded_as_prepare_encoded_it(tiny_bundle, tmp_path):
    encoder = load_encoder(tiny_bundle)
    x, lengths = encoder.encode(["w3 w7", "", None, float("nan"), "w5 nope w6"])
    assert x.shape == (5, 12) and x.dtype == np.int32
    assert x[0, :3].tolist() == [3, 7, 0] and x[4, :3].tolist() == [5, 1, 6]   # post padding; OOV is 1
    assert lengths.tolist() == [2, 0, 0, 0, 3] and not x[1:4].any()
    # train.maxlen (here 4, possibly tuned) cuts as prepare would have: truncating "pre" keeps the end.
    short = tmp_path / "short"
    shutil.copytree(tiny_bundle, short)
    record = json.loads((short / "params.json").read_text())
    record["train"]["maxlen"] = 4
    (short / "params.json").write_text(json.dumps(record))
    x, lengths = load_encoder(short).encode(["w5 w6 w7 w8 w9 w10"])
    assert x.tolist() == [[7, 8, 9, 10]] and lengths.tolist() == [4]


def test_predictions_carry_label_probabilities_and_the_empty_flag(classifier):
    texts = ["w3 w10 w11", "w4 w10 w11", "", None, float("nan"), "   "]
    out = classifier.predict(texts)
    assert list(out.columns) == COLUMNS and len(out) == len(texts)
    assert out[PREDICTED].tolist()[:2] == ["1", "0"]   # the learned rule, far from the boundary
    assert out["proba_1"][0] > 0.9 and out["proba_0"][1] > 0.9
    np.testing.assert_allclose(out["proba_0"] + out["proba_1"], 1.0, rtol=1e-6)
    assert out[EMPTY].tolist() == [False, False, True, True, True, True]
    # Every empty input is the same empty sequence, so they share one prediction.
    assert out.iloc[2:][["proba_1"]].nunique().item() == 1
    assert classifier.predict([]).shape == (0, 4)


def test_csv_in_batches_keeps_rows_ids_and_other_columns(classifier, tmp_path):
    texts = [f"w{3 + i % 2} w{5 + i}" for i in range(23)]
    texts[7] = ""
    frame = pd.DataFrame({"id": [f"{i:05d}" for i in range(23)], "text": texts, "label": ["x"] * 23})
    frame.to_csv(tmp_path / "in.csv", index=False)
    small = predict_file(tmp_path / "in.csv", tmp_path / "small.csv", classifier.predict, batch_rows=5,
                         progress=False)
    predict_file(tmp_path / "in.csv", tmp_path / "big.csv", classifier.predict, batch_rows=1000, progress=False)
    out = pd.read_csv(tmp_path / "small.csv", dtype={"id": str})
    assert list(out.columns) == ["id", "label", *COLUMNS]
    assert out["id"].tolist() == frame["id"].tolist()           # order and leading zeros kept
    assert out[EMPTY].tolist() == [i == 7 for i in range(23)]
    learned = out[PREDICTED].astype(str).drop(index=7)
    assert learned.tolist() == ["1" if i % 2 == 0 else "0" for i in learned.index]
    # The same answers; probabilities to float32 rounding: TF on CPU may sum in another order for
    # another batch shape (seen once: 0.00177133 against 0.00177139).
    pd.testing.assert_frame_equal(out, pd.read_csv(tmp_path / "big.csv", dtype={"id": str}), rtol=1e-4, atol=1e-6)
    assert small["rows"] == 23 and small["empty"] == 1


def test_nsmc_style_tsv_with_the_document_column(classifier, tmp_path):
    source = tmp_path / "ratings_test.txt"   # NSMC's own name: .txt, but tab-separated with a header
    source.write_text("id\tdocument\tlabel\n9976970\tw3 w9\t1\n3819312\t\t0\n", encoding="utf-8")
    assert input_format(source, "auto", "document") == "tsv"
    assert main([str(source), "--text-column", "document", "--output", str(tmp_path / "out.tsv"),
                 "--model", str(classifier.folder)]) == 0
    out = pd.read_csv(tmp_path / "out.tsv", sep="\t", dtype=str)
    assert out["id"].tolist() == ["9976970", "3819312"] and out["label"].tolist() == ["1", "0"]
    assert out[EMPTY].tolist() == ["False", "True"] and out[PREDICTED].tolist()[0] == "1"


def test_jsonl_and_plain_text_inputs(classifier, tmp_path):
    (tmp_path / "in.jsonl").write_text('{"doc_id": 1, "text": "w3 w9"}\n{"doc_id": 2, "text": null}\n'
                                       '{"doc_id": 3}\n', encoding="utf-8")
    predict_file(tmp_path / "in.jsonl", tmp_path / "out.jsonl", classifier.predict, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["doc_id"] for r in rows] == [1, 2, 3] and [r[EMPTY] for r in rows] == [False, True, True]
    (tmp_path / "in.txt").write_text("w4 w9\n\nw3 w8\n", encoding="utf-8")
    predict_file(tmp_path / "in.txt", tmp_path / "out.csv", classifier.predict, progress=False, keep_text=True)
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["line"].tolist() == [1, 2, 3] and out["text"].tolist() == ["w4 w9", "", "w3 w8"]
    assert out[PREDICTED].astype(str).tolist()[::2] == ["0", "1"] and out[EMPTY].tolist() == [False, True, False]


def test_a_missing_column_lists_the_columns_and_writes_nothing(classifier, tmp_path, capsys):
    (tmp_path / "in.csv").write_text("id,body\n1,w3\n", encoding="utf-8")
    (tmp_path / "out.csv").write_text("previous\n")
    assert main([str(tmp_path / "in.csv"), "-o", str(tmp_path / "out.csv"),
                 "--model", str(classifier.folder)]) == 2
    err = capsys.readouterr().err
    assert "no text column 'text'; the columns present are: id, body" in err
    assert (tmp_path / "out.csv").read_text() == "previous\n"          # the old output is intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp file left


def test_non_utf8_input_names_the_line(classifier, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_bytes("id,text\n1,w3\n2,".encode() + "좋은 영화".encode("cp949") + b"\n")
    with pytest.raises(DataError, match=r"in.csv: line 3: bytes .* are not valid utf-8 \(pass --encoding"):
        check_encoding(source, "utf-8")
    assert main([str(source), "-o", str(tmp_path / "out.csv"), "--model", str(classifier.folder)]) == 2
    assert "line 3" in capsys.readouterr().err
    assert main([str(source), "-o", str(tmp_path / "out.csv"), "--encoding", "cp949",
                 "--model", str(classifier.folder)]) == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 2


def test_a_missing_model_says_how_to_make_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("w3\n")
    assert main(["in.txt", "-o", "out.csv"]) == 2
    assert "models: no such model folder (run `make repro` or `dvc repro` first" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.keras").write_text("")
    assert main(["in.txt", "-o", "out.csv", "--model", "half"]) == 2
    assert "half: not a model bundle, vocab.json, labels.json, params.json, preprocess.json missing" in \
        capsys.readouterr().err


def test_pyfunc_takes_a_list_or_a_text_column_and_gives_the_same_answers(classifier, tiny_bundle, tmp_path):
    import mlflow

    from pipeline.serve import pyfunc

    path = tmp_path / "pyfunc"
    pyfunc.save_model(tiny_bundle, path, ["0", "1"], TINY_PREPROCESS["examples"], "whitespace")
    model = mlflow.pyfunc.load_model(str(path))
    texts = ["w3 w9", "", None, "w4 w7"]
    expected = classifier.predict(texts)
    pd.testing.assert_frame_equal(model.predict(texts), expected)
    pd.testing.assert_frame_equal(model.predict(pd.DataFrame({"text": texts})), expected)
    # No input schema: MLflow would cut a frame to its first column by position (serve/pyfunc.py).
    outputs = [c["name"] for c in model.metadata.signature.outputs.to_dict()]
    assert model.metadata.signature.inputs is None and outputs == COLUMNS
    example = json.loads((path / "serving_input_example.json").read_text())
    assert example["dataframe_split"]["data"] == [["w3 w7 w9"], ["w4 w8"]]
    # The predict CLI reads an MLflow model folder as well as a bundle.
    (tmp_path / "in.txt").write_text("w3 w9\n\nw4 w7\n")
    assert main([str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.csv"), "--model", str(path)]) == 0
    assert pd.read_csv(tmp_path / "out.csv")["proba_1"].round(6).tolist() == \
        expected["proba_1"].iloc[[0, 1, 3]].round(6).tolist()
