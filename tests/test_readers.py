"""Raw files into (id, text, label, split): every format, and errors that name file, line, column."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import TableSource
from pipeline.core.errors import DataError
from pipeline.data.readers import read_imdb, read_reuters, read_table

ROWS = [("1", "좋은 영화", "재미 있다", "pos"), ("2", "별로", "", "neg"), ("3", "", "", "neg")]


def table_source(**kw) -> TableSource:
    return TableSource(source="x", text_columns=("title", "body"), label_column="label", **kw)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".jsonl", ".parquet"])
def test_every_format_reads_the_same_documents(tmp_path, suffix):
    frame = pd.DataFrame(ROWS, columns=["id", "title", "body", "label"])
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".tsv", ".txt"):
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path)
    docs = read_table(path, table_source(id_column="id"))
    assert list(docs.columns) == ["id", "text", "label", "split"]
    assert docs["id"].tolist() == ["1", "2", "3"]
    assert docs["text"].str.strip().tolist() == ["좋은 영화 재미 있다", "별로", ""]
    assert docs["label"].tolist() == ["pos", "neg", "neg"]


def test_row_numbers_when_no_id_column(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame(ROWS, columns=["id", "title", "body", "label"]).to_csv(path, index=False)
    assert read_table(path, table_source())["id"].tolist() == ["1", "2", "3"]


def test_missing_column_lists_the_columns_present(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("제목,내용,분류\na,b,c\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_table(path, table_source())
    assert str(path) in str(err.value)
    assert "no column 'title'" in str(err.value)
    assert "제목, 내용, 분류" in str(err.value)


def test_undecodable_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("title,body,label\n가,나,x\n".encode() + "다,라,y\n".encode("cp949"))
    with pytest.raises(DataError) as err:
        read_table(path, table_source())
    assert f"{path}: line 3:" in str(err.value) and "cp949" in str(err.value)
    # A whole file in the encoding the message suggests reads cleanly.
    path.write_bytes("title,body,label\n가,나,x\n다,라,y\n".encode("cp949"))
    assert read_table(path, table_source(encoding="cp949"))["text"].tolist() == ["가 나", "다 라"]


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbftitle,body,label\na,b,c\n")
    assert read_table(path, table_source())["text"].tolist() == ["a b"]


def test_unknown_extension_asks_for_the_format(tmp_path):
    path = tmp_path / "data.dat"
    path.write_text("x")
    with pytest.raises(DataError, match="dataset.table.format"):
        read_table(path, table_source())


def test_reuters_keras_format_decodes_words_and_splits_like_keras(tmp_path):
    words = {"the": 1, "oil": 2, "price": 3, "rose": 4}
    seqs = [[1, 2, 3, 4], [2, 4], [3], [1, 3], [4, 4, 2]]
    x = np.empty(len(seqs), dtype=object)
    x[:] = [list(s) for s in seqs]
    np.savez(tmp_path / "reuters.npz", x=x, y=np.array([0, 1, 2, 1, 0]))
    (tmp_path / "reuters_word_index.json").write_text(json.dumps(words))
    docs = read_reuters({"reuters.npz": tmp_path / "reuters.npz",
                         "reuters_word_index.json": tmp_path / "reuters_word_index.json"})
    # Keras: RandomState(113) shuffle, first 80% train.
    order = np.arange(5)
    np.random.RandomState(113).shuffle(order)
    assert docs["id"].tolist() == [str(i) for i in order]
    assert docs["split"].tolist() == ["train"] * 4 + ["test"]
    first = int(order[0])
    assert docs["text"][0] == " ".join({v: k for k, v in words.items()}[w] for w in seqs[first])
    assert docs["label"][0] == str([0, 1, 2, 1, 0][first])


def test_imdb_archive_is_read_without_extracting(tmp_path):
    path = tmp_path / "a.tar.gz"
    members = {"aclImdb/train/pos/0_9.txt": "Great <br />film", "aclImdb/train/neg/1_2.txt": "Bad",
               "aclImdb/test/pos/2_8.txt": "Fine", "aclImdb/train/urls_pos.txt": "http://x",
               "aclImdb/README": "readme"}
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    docs = read_imdb({"x": path}).sort_values("id")
    assert docs.values.tolist() == [
        ["test/pos/2_8", "Fine", "pos", "test"],
        ["train/neg/1_2", "Bad", "neg", "train"],
        ["train/pos/0_9", "Great <br />film", "pos", "train"],
    ]
