"""The champion: the served model chosen on validation among the RNN, the linear model and their blend.

The choice itself on made-up probabilities (ties, select_by, a named champion); then the real train
stage on a tiny table: it never opens the test split, each kind of bundle reloads and predicts the
same, and a missing or damaged linear part is one line naming the file.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import make_params
from helpers.tinydata import write_table_project
from pipeline.model.champion import blend, choose
from pipeline.stages.evaluate import candidate_table

Y = np.array([0, 0, 1, 1])


def onehot(rows, sure: float = 0.9) -> np.ndarray:
    return np.eye(2)[rows] * (2 * sure - 1) + (1 - sure)


def champion_params(**keys):
    return make_params(champion=keys).champion


def scored(choice) -> dict:
    """The evaluate stage's table rows: the validation figures, test figures made up."""
    return {k: {**row, "test/accuracy": 0.5, "test/macro_f1": 0.5, "test/loss": 1.0}
            for k, row in choice.candidates.items()}


def test_the_blend_is_the_weighted_mean_of_the_parts():
    rnn, linear = onehot([0, 1, 1, 1], 0.8), onehot([0, 0, 0, 1], 0.6)
    np.testing.assert_allclose(blend(rnn, linear, 0.3), 0.3 * rnn + 0.7 * linear)
    assert np.array_equal(blend(rnn, linear, 1.0), rnn) and np.array_equal(blend(rnn, linear, 0.0), linear)


def test_the_best_candidate_on_validation_serves_with_the_runner_up_second():
    # The RNN misses row 1, the linear model row 2, less surely: blended (0.2 <= w <= 0.6), neither misses.
    rnn = np.array([[0.9, 0.1], [0.3, 0.7], [0.1, 0.9], [0.1, 0.9]])
    linear = np.array([[0.9, 0.1], [0.9, 0.1], [0.55, 0.45], [0.1, 0.9]])
    choice = choose(Y, rnn, linear, champion_params(simpler_within=0), "validation")   # 4 rows: only ties
    assert list(choice.candidates) == ["rnn", "linear", "blend"]   # the RNN first in every table
    assert choice.candidates["rnn"]["val/accuracy"] == 0.75 and choice.candidates["linear"]["val/accuracy"] == 0.75
    assert choice.kind == "blend" and choice.candidates["blend"]["val/accuracy"] == 1.0
    assert choice.weight == choice.candidates["blend"]["weight"] and 0.2 <= choice.weight <= 0.6
    assert [g["weight"] for g in choice.grid] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert choice.runner_up == "linear"   # tied with the RNN: the simpler one
    assert choice.rows == 4 and choice.selected_on == "validation"
    # Among weights of equal accuracy the lower validation loss wins.
    tied = [g for g in choice.grid if g["val/accuracy"] == 1.0]
    assert choice.candidates["blend"]["val/loss"] == min(g["val/loss"] for g in tied)


def test_a_lead_within_one_standard_error_serves_the_simpler_model():
    # 400 rows: the linear model right on 300, the blend on those and on `extra` more.
    from pipeline.model.champion import blend

    y = np.array([0, 1] * 200)
    linear = onehot(np.where(np.arange(400) < 300, y, 1 - y), 0.7)

    def rnn_fixing(extra: int) -> np.ndarray:   # sure where the linear model is wrong on `extra` rows, else unsure
        rnn = onehot(y, 0.55)
        rnn[:50] = onehot(1 - y[:50], 0.55)      # and unsurely wrong on 50 the linear model gets right
        rnn[300 + extra:] = onehot(1 - y[300 + extra:], 0.55)
        rnn[300:300 + extra] = onehot(y[300:300 + extra], 0.99)
        return rnn

    # The blend fixes 4 of 400 rows: a lead of 1.0 point, 2 standard errors of the paired difference
    # (sd of 4 ones in 400 is 0.0995, / sqrt(400)).
    rnn = rnn_fixing(4)
    assert (blend(rnn, linear, 0.5).argmax(1) == y).sum() == 304
    within_1 = choose(y, rnn, linear, champion_params(), "validation")
    assert (within_1.best, within_1.kind, within_1.runner_up) == ("blend", "blend", "linear")
    assert within_1.lead_se["linear"] == pytest.approx(2.0, abs=0.02) and within_1.lead_se["blend"] == 0
    within_3 = choose(y, rnn, linear, champion_params(simpler_within=3), "validation")
    assert (within_3.best, within_3.kind, within_3.weight, within_3.runner_up) == ("blend", "linear", 0.0, "blend")
    # One row fixed: 1.0 standard error, within the default.
    one = choose(y, rnn_fixing(1), linear, champion_params(), "validation")
    assert (one.best, one.kind, one.lead_se["linear"]) == ("blend", "linear", 1.0)
    assert choose(y, rnn_fixing(1), linear, champion_params(simpler_within=0), "validation").kind == "blend"


def test_ties_go_to_the_simpler_model_and_select_by_loss_reads_the_loss():
    same = onehot([0, 0, 1, 1], 0.8)
    choice = choose(Y, same, same, champion_params(), "validation")
    assert choice.kind == "linear" and choice.runner_up == "rnn"   # all three tie: linear, then rnn
    # Equal accuracy, but the RNN is surer where it is right: by loss it wins.
    sure, unsure = onehot([0, 0, 1, 1], 0.95), onehot([0, 0, 1, 1], 0.6)
    by_loss = choose(Y, sure, unsure, champion_params(select_by="val/loss"), "validation")
    assert by_loss.kind == "rnn" and by_loss.select_by == "val/loss"
    assert choose(Y, sure, unsure, champion_params(), "validation").kind == "linear"


def test_a_named_champion_serves_whatever_validation_says():
    rnn, linear = onehot([0, 1, 1, 1], 0.9), onehot([0, 0, 1, 1], 0.9)
    assert choose(Y, rnn, linear, champion_params(), "v").kind == "linear"
    forced = choose(Y, rnn, linear, champion_params(serve="rnn"), "v")
    assert (forced.kind, forced.weight, forced.runner_up) == ("rnn", 1.0, "linear")
    blend_forced = choose(Y, rnn, linear, champion_params(serve="blend"), "v")
    assert blend_forced.kind == "blend" and blend_forced.weight == blend_forced.candidates["blend"]["weight"]
    # The table names the setting, not the one-standard-error rule, when the settings chose.
    table = candidate_table(scored(blend_forced), "blend", blend_forced.as_json())
    assert "(champion.serve names blend; the best on validation was linear)" in table
    assert "simpler_within" not in table
    alone = choose(Y, rnn, None, champion_params(), "v")
    assert (alone.kind, alone.runner_up, list(alone.candidates)) == ("rnn", None, ["rnn"])


def test_bad_champion_settings_name_the_key():
    from pipeline.core.config import check_params
    from pipeline.core.errors import ParamsError

    with pytest.raises(ParamsError, match=r"^p.yaml: champion.serve: blend needs the linear model, but "
                                          r"champion.linear.enabled is false"):
        check_params({"champion": {"serve": "blend", "linear": {"enabled": False}}}, "p.yaml")
    with pytest.raises(ParamsError, match=r"champion.blend_weights"):
        make_params(champion={"blend_weights": [0.5, 1.0]})
    for old, new in (("baseline", "champion.linear"), ("champion", "champion.serve"), ("folds", "champion.folds")):
        with pytest.raises(ParamsError, match=rf"^params.yaml: evaluate: evaluate.{old} moved to {new} \(the train "
                                              r"stage owns the champion's keys\); move it there$"):
            make_params(evaluate={old: 1})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny table through download, tokenize, prepare and train (--no-track), the train stage with
    the test split removed, its test rows' tokens replaced, and every file it opened recorded."""
    import os

    from pipeline.stages import download, prepare, tokenize, train

    root = tmp_path_factory.mktemp("champion")
    old = Path.cwd()
    os.chdir(root)
    os.environ["PIPELINE_CACHE_DIR"] = str(root / ".cache")
    try:
        write_table_project(root, "train:\n  epochs: 2\n  ensemble: 1\n  use_tuned: false\n"
                                  "  model: {units: 4, embedding_dim: 4, dense_units: 0, bidirectional: false}\n"
                                  "champion:\n  folds: 2\n  serve: auto\n")
        for stage in (download, tokenize, prepare):
            assert stage.main(["--no-track"]) == 0, stage.__name__
        test_ids = set(np.load(root / "data" / "prepared" / "test.npz")["id"].astype(str))
        (root / "data" / "prepared" / "test.npz").unlink()
        tokens = pd.read_parquet(root / "data" / "tokens.parquet")
        tokens["tokens"] = [["시험만의낱말"] if i in test_ids else list(t)
                            for i, t in zip(tokens["id"], tokens["tokens"])]
        tokens.to_parquet(root / "data" / "tokens.parquet")
        opened: list[str] = []
        recording = [True]

        def hook(event: str, args: tuple) -> None:
            if recording[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                opened.append(os.fsdecode(args[0]))
        sys.addaudithook(hook)   # cannot be removed: switched off below
        try:
            assert train.main(["--no-track"]) == 0
        finally:
            recording[0] = False
        yield root, opened
    finally:
        os.chdir(old)
        os.environ.pop("PIPELINE_CACHE_DIR", None)


def test_the_choice_never_reads_the_test_split(trained):
    """The train stage chose and wrote the champion with test.npz gone, never opening a test file,
    and the test rows' own token reached no model."""
    from pipeline.model.linear import load_linear

    root, opened = trained
    assert opened and any(p.endswith("train.npz") for p in opened) and any(p.endswith("val.npz") for p in opened)
    assert not [p for p in opened if Path(p).name == "test.npz"]
    choice = json.loads((root / "models" / "champion.json").read_text(encoding="utf-8"))
    train, val = (len(np.load(root / "data" / "prepared" / f"{s}.npz")["y"]) for s in ("train", "val"))
    assert choice["selected_on"] == "2-fold out-of-fold" and choice["rows"] == train + val
    assert choice["kind"] in ("rnn", "linear", "blend") and set(choice["candidates"]) == {"rnn", "linear", "blend"}
    vocabulary = load_linear(root / "models", "").pipeline.named_steps["features"].transformer_list[0][1].vocabulary_
    assert vocabulary and not any("시험만의낱말" in gram for gram in vocabulary)
    assert (root / "models" / "champion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


TEXTS = ["경제 문의 3 관련 질문", "", "복지 관련 질문", "행정 문의 7"]


@pytest.mark.parametrize("kind", ["rnn", "linear", "blend"])
def test_each_kind_of_bundle_reloads_and_predicts_identically(trained, tmp_path, kind):
    """The MLflow model of each kind (what the registry holds) holds only its parts and answers as
    models/ does; the blend's answers are w * rnn + (1 - w) * linear."""
    import mlflow

    from pipeline.serve import pyfunc
    from pipeline.serve.bundle import kind_files
    from pipeline.serve.predictor import Classifier

    models = trained[0] / "models"
    labels = json.loads((models / "labels.json").read_text(encoding="utf-8"))
    choice = json.loads((models / "champion.json").read_text(encoding="utf-8"))
    pyfunc.save_model(models, tmp_path / "model", labels, [], "whitespace", kind=kind)
    bundle = tmp_path / "model" / "artifacts" / pyfunc.ARTIFACT
    assert sorted(p.name for p in bundle.iterdir()) == sorted(kind_files(kind))
    served = json.loads((bundle / "champion.json").read_text(encoding="utf-8"))
    assert served["kind"] == kind and served["weight"] == {"rnn": 1.0, "linear": 0.0}.get(
        kind, choice["candidates"]["blend"]["weight"])
    answers = mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(pd.DataFrame({"text": TEXTS}))
    reloaded = Classifier.load(bundle)
    assert reloaded.kind == kind
    pd.testing.assert_frame_equal(answers, reloaded.predict(TEXTS), atol=1e-6)
    columns = [f"proba_{label}" for label in labels]
    if kind == "blend":
        rnn, _ = Classifier.load(models, kind="rnn").predict_proba(TEXTS)
        linear, _ = Classifier.load(models, kind="linear").predict_proba(TEXTS)
        np.testing.assert_allclose(answers[columns].to_numpy(), blend(rnn, linear, served["weight"]), atol=1e-6)
    else:
        pd.testing.assert_frame_equal(answers, Classifier.load(models, kind=kind).predict(TEXTS), atol=1e-6)
    assert answers["empty_text"].tolist() == [False, True, False, False]


def test_a_missing_or_damaged_linear_part_is_one_line(trained, tmp_path, capsys):
    from pipeline.serve.predict import main

    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    models = tmp_path / "models"
    shutil.copytree(trained[0] / "models", models)
    (models / "champion.json").write_text(json.dumps({**json.loads((models / "champion.json").read_text()),
                                                      "kind": "linear", "weight": 0.0}))

    def refused() -> str:
        assert main([str(source), "-o", str(tmp_path / "out.csv"), "--model", str(models)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not (tmp_path / "out.csv").exists()
        return err

    skops_bytes = (models / "linear.skops").read_bytes()
    (models / "linear.skops").unlink()
    assert refused() == (f"predict: error: {models}: not a model bundle, linear.skops missing (a bundle is what "
                         "the train stage writes to models/)")
    (models / "linear.skops").write_bytes(skops_bytes[: len(skops_bytes) // 2])
    assert refused().startswith(f"predict: error: {models / 'linear.skops'}: damaged, or not a linear model "
                                "this code can load (")
    import skops.io as sio

    sio.dump({"a": Path("x")}, models / "linear.skops")   # a type this code does not trust
    assert refused().startswith(f"predict: error: {models / 'linear.skops'}: refers to types this code does "
                                "not trust (pathlib.")
    (models / "linear.skops").write_bytes(skops_bytes)
    (models / "champion.json").write_text(json.dumps({"kind": "linear", "weight": 0.5}))
    assert refused().startswith(f"predict: error: {models / 'champion.json'}: kind 'linear' with weight 0.5 is "
                                "not a champion")


def test_the_saved_linear_model_holds_its_vocabulary_as_two_arrays_and_loads_back_the_same(tmp_path):
    """skops writes a dict node by node (each numpy index its own zip member, quadratic in the
    vocabulary: bench/linear_save.py); CompactTfidf saves the n-grams as two arrays, whatever their
    number, and the loaded model answers exactly as the fitted one."""
    import zipfile

    from pipeline.core.config import LinearParams
    from pipeline.model.linear import SplitRows, fit_linear, load_linear, save_linear

    rng = np.random.default_rng(0)
    tokens = [[f"낱말{rng.integers(3000)}" for _ in range(12)] for _ in range(300)]
    rows = SplitRows(np.arange(300).astype(str), np.arange(300) % 3, tokens)
    model = fit_linear(LinearParams(max_features=4000), rows, ["a", "b", "c"])
    grams = sum(len(v.vocabulary_) for _, v in model.pipeline.named_steps["features"].transformer_list)
    assert grams > 6000
    save_linear(model, tmp_path)
    with zipfile.ZipFile(tmp_path / "linear.skops") as saved:
        assert len(saved.namelist()) < 100   # not one member per n-gram
    loaded = load_linear(tmp_path, "")
    for (_, before), (_, after) in zip(model.pipeline.named_steps["features"].transformer_list,
                                       loaded.pipeline.named_steps["features"].transformer_list):
        assert after.vocabulary_ == before.vocabulary_
    assert np.array_equal(loaded.predict_proba(tokens[:40]), model.predict_proba(tokens[:40]))
