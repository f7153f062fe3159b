"""Copies of a text never straddle two splits (issue 36): prepare splits normalised texts, not rows,
and says how many rows were copies and how many texts carry more than one label."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.stagecases import QUESTIONS, Case, frame, run_case, write_csv
from pipeline.core.config import PrepareParams
from pipeline.core.errors import DataError
from pipeline.data.splits import TEXT_KEY, by_group, fold_indices, prepare_all, split_indices

CFG = PrepareParams(val_size=0.1, test_size=0.1, maxlen=4)


def halves_copied(n: int = 150, split: str = "") -> pd.DataFrame:
    """n distinct texts, then a copy of each: half the rows are copies of the other half."""
    rows = [(f"r{i}", "abc"[i % 3], split, [f"w{i % 3}", f"t{i}"], f"text {i}") for i in range(n)]
    rows += [(f"c{i}", label, split, tokens, key) for i, (_, label, _, tokens, key) in enumerate(rows)]
    table = pd.DataFrame(rows, columns=["id", "label", "split", "tokens", TEXT_KEY])
    table["length"] = table["tokens"].map(len)
    return table


def keys_per_split(done, table: pd.DataFrame) -> dict[str, set]:
    key_of = dict(zip(table["id"], table[TEXT_KEY]))
    return {s: {key_of[i] for i in done.arrays[s]["id"]} for s in ("train", "val", "test")}


def test_half_copies_stay_in_one_split_and_are_counted(capsys):
    table = halves_copied()
    done = prepare_all(table, CFG)
    keys = keys_per_split(done, table)
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    assert sum(len(done.arrays[s]["y"]) for s in keys) == 300
    assert len(done.arrays["test"]["y"]) == 30   # 15 texts (a tenth of 150) and their copies
    assert all(len(done.arrays[s]["y"]) % 2 == 0 for s in keys)
    assert done.stats["duplicates"] == {"duplicate_rows": 150, "texts_with_copies": 150,
                                        "texts_with_conflicting_labels": 0, "rows_with_conflicting_labels": 0,
                                        "dropped_train_copies_of_test_texts": 0}
    warning = capsys.readouterr().err
    assert "warning: prepare: 150 of 300 rows repeat the normalised text of another row (150 texts have copies)" \
        in warning
    # The same table split by rows (no key: one group per row) leaks, as the probe found.
    rows = prepare_all(table.drop(columns=TEXT_KEY), CFG)
    leaked = keys_per_split(rows, table)
    assert len(leaked["test"] & leaked["train"]) > 20


def test_without_copies_the_split_is_the_row_split():
    table = halves_copied().iloc[:150]
    y = table["label"].map({"a": 0, "b": 1, "c": 2}).to_numpy()
    by_text = split_indices(y, None, CFG, ["a", "b", "c"], np.arange(150) * 7)
    by_row = split_indices(y, None, CFG, ["a", "b", "c"])
    assert all(np.array_equal(by_text[s], by_row[s]) for s in ("train", "val", "test"))


def test_folds_keep_copies_together_and_stay_stratified():
    groups = np.repeat(np.arange(60), 2)                       # each text twice
    y = np.repeat(np.arange(60) % 2, 2)
    folds = fold_indices(y, 5, seed=3, groups=groups)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(120))
    for fit, out in folds:
        assert not set(groups[fit]) & set(groups[out]) and abs(y[out].mean() - 0.5) < 0.1
    unique = fold_indices(y, 5, seed=3, groups=np.arange(120))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(unique, fold_indices(y, 5, seed=3)))


def test_a_group_is_stratified_by_its_most_common_label():
    group, group_y = by_group(np.array([1, 0, 1, 2, 2, 0]), np.array([9, 9, 9, 4, 4, 7]))
    assert group.tolist() == [0, 0, 0, 1, 1, 2] and group_y.tolist() == [1, 2, 0]


def test_official_test_copies_leave_the_training_file(capsys):
    table = pd.concat([halves_copied(60, "train").iloc[:60], halves_copied(30, "test").iloc[30:]])
    done = prepare_all(table, PrepareParams(val_size=0.1, maxlen=4, keep_official_test=True))
    keys = keys_per_split(done, table)
    assert not (keys["train"] | keys["val"]) & keys["test"]
    assert len(done.arrays["test"]["y"]) == 30 and len(done.arrays["train"]["y"]) + len(done.arrays["val"]["y"]) == 30
    assert done.stats["duplicates"]["dropped_train_copies_of_test_texts"] == 30
    said = capsys.readouterr().err
    assert "30 training-file rows copy an official test text and are left out of train and val" in said


def test_texts_under_two_labels_are_warned(capsys):
    table = halves_copied(90)
    table.loc[90:95, "label"] = table.loc[90:95, "label"].map({"a": "b", "b": "c", "c": "a"})   # 6 copies relabelled
    done = prepare_all(table, CFG)
    report = done.stats["duplicates"]
    assert report["texts_with_conflicting_labels"] == 6 and report["rows_with_conflicting_labels"] == 12
    assert report["conflicting_example"] == {"id": "r0", "labels": ["a", "b"]}
    assert "warning: prepare: 6 texts (12 rows) carry more than one label, e.g. id 'r0' as 'a' and 'b'" \
        in capsys.readouterr().err


def copies_spelt_differently(root: Path) -> str:
    """Each question twice: once as written, once with other spacing and full-width digits (NFKC)."""
    texts = [f"{QUESTIONS[i % 6]} {i}" for i in range(30)]
    copies = ["  " + t.replace(" ", "   ").replace("1", "１") + " " for t in texts]
    return write_csv(pd.DataFrame({"text": texts + copies, "label": ["ab"[i % 2] for i in range(30)] * 2}))(root)


def test_the_stages_group_copies_by_normalised_text(in_tmp: Path, capsys, monkeypatch):
    def check(root: Path) -> None:
        stats = json.loads((root / "data" / "prepare_stats.json").read_text(encoding="utf-8"))
        assert stats["duplicates"]["duplicate_rows"] == 30 and stats["duplicates"]["texts_with_copies"] == 30
        table = pd.read_parquet(root / "data" / "tokens.parquet")
        key_of = dict(zip(table["id"], table[TEXT_KEY]))
        splits = {s: {key_of[i] for i in np.load(root / "data" / "prepared" / f"{s}.npz")["id"]}
                  for s in ("train", "val", "test")}
        assert not splits["train"] & splits["test"] and not splits["train"] & splits["val"]
        assert not splits["val"] & splits["test"]
        assert table[TEXT_KEY].nunique() == 30

    run_case(Case("copies", copies_spelt_differently, ("download", "tokenize", "prepare"), 0,
                  "repeat the normalised text of another row (30 texts have copies)", check=check),
             in_tmp, capsys, monkeypatch)


def test_150_classes_of_3_rows_is_one_short_line_with_a_remedy(in_tmp: Path, capsys, monkeypatch):
    case = Case("many-small-classes", write_csv(frame(450, labels=lambda i: f"c{i % 150}")),
                ("download", "tokenize", "prepare"), 2, "raise its size to at least 0.33 (prepare.test_size)")
    run_case(case, in_tmp, capsys, monkeypatch)


def test_an_older_tokens_table_without_the_key_is_one_line(in_tmp: Path, capsys, monkeypatch):
    run_case(Case("copies", copies_spelt_differently, ("download", "tokenize"), 0, "tokenize:"), in_tmp, capsys,
             monkeypatch)
    path = in_tmp / "data" / "tokens.parquet"
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    pq.write_table(table.drop_columns([TEXT_KEY]), path)
    from helpers.stagecases import run_stage

    assert run_stage("prepare") == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"prepare: error: data/tokens.parquet: has no {TEXT_KEY} column (written by an older version); "
                   "run the tokenize stage again (dvc repro tokenize)")


def test_a_tiny_class_is_named_by_its_distinct_texts():
    table = halves_copied(30)
    table.loc[table["label"] == "c", TEXT_KEY] = "one text"   # class c: 20 rows, all one text
    with pytest.raises(DataError, match="class 'c' has 1 distinct text"):
        prepare_all(table, CFG)


def test_the_counts_reach_mlflow(in_tmp: Path, mlflow_store: str, capsys, monkeypatch):
    import mlflow

    from pipeline.stages.prepare import main

    run_case(Case("copies", copies_spelt_differently, ("download", "tokenize", "prepare"), 0, "prepare:"),
             in_tmp, capsys, monkeypatch)
    assert main([]) == 0, capsys.readouterr().err
    [run] = mlflow.MlflowClient(tracking_uri=mlflow_store).search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(tracking_uri=mlflow_store).search_experiments()])
    assert run.data.metrics["prepare/duplicates/duplicate_rows"] == 30
    assert run.data.metrics["prepare/duplicates/texts_with_conflicting_labels"] == 0
