"""The MLflow model is code, not a pickle (issue 36): loading it unpickles nothing, and a model that is
a pickle is refused by the pipeline's own loaders. The whole logged run is scanned in test_serving.py."""
from __future__ import annotations

import pandas as pd
import yaml

from helpers.pickles import pickles_in
from helpers.tinydata import TINY_PREPROCESS
from pipeline.serve import pyfunc
from pipeline.serve.predict import main


def test_the_saved_model_holds_no_pickle_and_loads_with_pickles_refused(tiny_bundle, tmp_path, monkeypatch):
    import mlflow

    path = tmp_path / "model"
    pyfunc.save_model(tiny_bundle, path, ["0", "1"], TINY_PREPROCESS["examples"], "whitespace")
    assert pickles_in(path) == []
    flavor = yaml.safe_load((path / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["model_code_path"].endswith("model_code.py") and "python_model" not in flavor
    assert (path / "model_code.py").is_file() and not list(path.rglob("*.pkl"))
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    answer = mlflow.pyfunc.load_model(str(path)).predict(["w3 w9", "w4 w7"])
    assert answer["predicted"].tolist() == ["1", "0"]


def test_a_model_that_is_a_pickle_is_found_and_predict_refuses_it(tiny_bundle, tmp_path, capsys):
    import mlflow

    # The way MLflow logs a PythonModel instance (what the pipeline did before): python_model.pkl.
    path = tmp_path / "pickled"
    mlflow.pyfunc.save_model(str(path), python_model=pyfunc.TextClassifierModel(),
                             artifacts={pyfunc.ARTIFACT: str(tiny_bundle)})
    assert pickles_in(path) == ["python_model.pkl"]
    (tmp_path / "in.txt").write_text("w3 w9\n", encoding="utf-8")
    capsys.readouterr()   # MLflow's own warning, while saving it
    assert main([str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.csv"), "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pickle is disallowed" in err and str(path) in err
    assert not (tmp_path / "out.csv").exists()


def test_the_pickle_scanner_finds_pickles_in_zips_and_object_arrays(tmp_path):
    import io
    import pickle
    import zipfile

    import numpy as np

    (tmp_path / "plain.bin").write_bytes(pickle.dumps({"a": 1}))
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
        archive.writestr("objects.npy", buffer.getvalue())
        archive.writestr("config.json", "{}")
    np.save(tmp_path / "numbers.npy", np.arange(3))
    pd.DataFrame({"a": [1]}).to_json(tmp_path / "frame.json")
    assert pickles_in(tmp_path) == ["model.keras!objects.npy", "plain.bin"]
