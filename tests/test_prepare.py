"""Split, vocabulary on the training split only, encode and pad."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import PrepareParams, VocabParams
from pipeline.core.errors import DataError
from pipeline.data.sequences import build_vocab, encode_pad
from pipeline.data.splits import label_names, prepare


def tokens_table(n_per_class=(40, 30, 10), split="") -> pd.DataFrame:
    rows = []
    for label, n in zip("abc", n_per_class):
        for i in range(n):
            rows.append((f"{label}{i}", label, split, [f"w{label}", f"r{i % 7}", "common"]))
    frame = pd.DataFrame(rows, columns=["id", "label", "split", "tokens"])
    frame["length"] = frame["tokens"].map(len)
    return frame


def test_split_sizes_are_stratified_and_seeded():
    cfg = PrepareParams(val_size=0.1, test_size=0.2, maxlen=4)
    arrays, vocab, names, stats = prepare(tokens_table(), cfg)
    assert names == ["a", "b", "c"]
    sizes = {s: len(arrays[s]["y"]) for s in arrays}
    assert sizes == {"train": 56, "val": 8, "test": 16}
    # Every class is in every split, in proportion (40/30/10 -> test 8/6/2).
    assert stats["splits"]["test"]["classes"] == {"a": 8, "b": 6, "c": 2}
    ids = {s: set(arrays[s]["id"]) for s in arrays}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    again, *_ = prepare(tokens_table(), cfg)
    assert all(np.array_equal(arrays[s]["x"], again[s]["x"]) for s in arrays)
    other, *_ = prepare(tokens_table(), PrepareParams(val_size=0.1, test_size=0.2, maxlen=4, seed=7))
    assert set(other["test"]["id"]) != ids["test"]


def test_vocabulary_sees_only_the_training_split():
    table = tokens_table()
    cfg = PrepareParams(maxlen=4, vocab=VocabParams(max_size=1000, min_freq=1))
    arrays, vocab, names, _ = prepare(table, cfg)
    train_ids = set(arrays["train"]["id"])
    train_tokens = {t for toks in table[table["id"].isin(train_ids)]["tokens"] for t in toks}
    assert set(vocab) - {"<pad>", "<oov>"} == train_tokens
    assert vocab["<pad>"] == 0 and vocab["<oov>"] == 1


def test_official_test_split_is_kept():
    table = pd.concat([tokens_table(split="train"), tokens_table((5, 5, 5), split="test")], ignore_index=True)
    arrays, *_ , stats = prepare(table, PrepareParams(maxlen=3))
    assert len(arrays["test"]["y"]) == 15 and stats["test_split"] == "official"
    assert len(arrays["train"]["y"]) + len(arrays["val"]["y"]) == 80
    arrays, *_ = prepare(table, PrepareParams(maxlen=3, keep_official_test=False))
    assert sum(len(a["y"]) for a in arrays.values()) == 95 and len(arrays["test"]["y"]) == 10


def test_vocab_order_max_size_and_min_freq():
    docs = [["b", "a", "a", "c"], ["a", "b", "d"]]
    assert list(build_vocab(docs, max_size=10, min_freq=1)) == ["<pad>", "<oov>", "a", "b", "c", "d"]
    assert list(build_vocab(docs, max_size=4, min_freq=1)) == ["<pad>", "<oov>", "a", "b"]
    assert list(build_vocab(docs, max_size=10, min_freq=2)) == ["<pad>", "<oov>", "a", "b"]


@pytest.mark.parametrize("padding, truncating, row0, row1", [
    ("pre", "pre", [4, 5, 1], [0, 0, 2]),
    ("post", "pre", [4, 5, 1], [2, 0, 0]),
    ("pre", "post", [2, 3, 4], [0, 0, 2]),
    ("post", "post", [2, 3, 4], [2, 0, 0]),
])
def test_padding_and_truncating_like_keras(padding, truncating, row0, row1):
    vocab = {"<pad>": 0, "<oov>": 1, "a": 2, "b": 3, "c": 4, "d": 5}
    x, kept, raw, oov = encode_pad([["a", "b", "c", "d", "zz"], ["a"]], vocab, 3, padding, truncating)
    assert x.tolist() == [row0, row1] and x.dtype == np.int32
    assert kept.tolist() == [3, 1] and raw.tolist() == [5, 1] and oov == 1


def test_matches_keras_pad_sequences():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(2, 50, size=rng.integers(0, 12))) for _ in range(30)]
    vocab = {"<pad>": 0, "<oov>": 1, **{str(i): i for i in range(2, 50)}}
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            ours, *_ = encode_pad([[str(i) for i in s] for s in seqs], vocab, 8, padding, truncating)
            theirs = keras.utils.pad_sequences(seqs, maxlen=8, padding=padding, truncating=truncating)
            assert np.array_equal(ours, theirs)


def test_numeric_labels_sort_as_numbers():
    assert label_names(pd.Series(["10", "2", "0", "1"])) == ["0", "1", "2", "10"]
    assert label_names(pd.Series(["행정", "경제"])) == ["경제", "행정"]


def test_single_class_is_an_error_naming_it():
    with pytest.raises(DataError, match="only one class \\('a', 40 distinct texts\\)"):
        prepare(tokens_table((40, 0, 0)), PrepareParams())


def test_class_too_small_to_stratify_names_class_and_count():
    with pytest.raises(DataError, match="class 'c' has 2 distinct text\\(s\\), too few to stratify into 3 splits"):
        prepare(tokens_table((40, 30, 2)), PrepareParams())


def test_stats_help_choose_maxlen():
    table = tokens_table()
    table.loc[0, "tokens"] = ["x"] * 50
    _, _, _, stats = prepare(table, PrepareParams(maxlen=4))
    json.dumps(stats)  # plain data
    assert stats["splits"]["train"]["length"]["p50"] == 3.0
    assert stats["maxlen"] == 4 and 0.9 < stats["maxlen_covers_train_rows"] <= 1.0


def test_a_models_cut_is_resolved_once_from_its_records():
    """train.maxlen or prepare.maxlen, the padding side and the truncating side (pre for prepared data
    older than the setting), read in one place by training, evaluate and serving."""
    from pipeline.data.prepared import Cut

    prepare = {"maxlen": 60, "padding": "post", "truncating": "post"}
    assert Cut.of(prepare) == Cut(60, "post", "post")
    assert Cut.of_model({"train": {"maxlen": 40}, "prepared": {"prepare": prepare}}) == Cut(40, "post", "post")
    assert Cut.of_model({"train": {"maxlen": 0}, "prepared": {"prepare": {"maxlen": 9, "padding": "pre"}}}) == \
        Cut(9, "pre", "pre")
