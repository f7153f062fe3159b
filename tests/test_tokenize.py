"""The tokenize stage: dedupe, cache, worker processes, filters, drops counted."""
from __future__ import annotations

import sqlite3

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import DatasetParams, TokenizeParams
from pipeline.core.errors import DataError
from pipeline.text.documents import preprocess_spec, read_preprocess_spec, tokenize_documents, write_tokens
from pipeline.text.tokenizer import tokenize_texts

KO = ["이 영화 정말 재밌어요!", "최악의 영화... 돈 아까워", "배우들의 연기가 좋았다", "이 영화 정말 재밌어요!"]


def docs(texts, labels=None) -> pd.DataFrame:
    labels = labels or ["a", "b"] * (len(texts) // 2) + ["a"] * (len(texts) % 2)
    return pd.DataFrame({"id": [str(i) for i in range(len(texts))], "text": texts, "label": labels,
                         "split": ""})


def test_duplicates_are_analysed_once_and_cached(tmp_path):
    cfg = TokenizeParams(analyzer="okt", stem=True, pos_drop=(), workers=1)
    cache = tmp_path / "cache.sqlite"
    tokens, report = tokenize_texts(KO, cfg, cache)
    assert report.unique_texts == 3 and report.cache_hits == 0
    assert report.analysed == report.unique_units == 11    # distinct words: okt is word-local
    assert tokens[0] == tokens[3] and tokens[0][:2] == ["이", "영화"]
    assert "재밌다" in tokens[0]     # stem=True: dictionary form
    # Changing only filters and stopwords: nothing is analysed again, and the filters apply.
    rerun = cfg.model_copy(update={"pos_drop": ("Josa", "Punctuation")})
    filtered, report = tokenize_texts(KO, rerun, cache, stopwords=frozenset({"영화"}))
    assert report.analysed == 0 and report.cache_hits == 11
    assert filtered[1] == ["최악", "돈", "아깝다"]
    # Changing an analyzer option is a different cache entry.
    _, report = tokenize_texts(KO, cfg.model_copy(update={"stem": False}), cache)
    assert report.analysed == 11
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(DISTINCT sig) FROM analysis").fetchone()[0] == 2


def test_pos_keep_with_wildcards_on_sejong_tags(tmp_path):
    cfg = TokenizeParams(analyzer="mecab", pos_keep=("NN*",), pos_drop=(), workers=1)
    tokens, _ = tokenize_texts(["아버지가 방에 들어가신다"], cfg, tmp_path / "c.sqlite")
    assert tokens == [["아버지", "방"]]


@pytest.mark.parametrize("analyzer, kind", [
    ("okt", "thread"),
    pytest.param("okt", "process", marks=pytest.mark.integration),      # worker processes, a JVM each
    pytest.param("komoran", "auto", marks=pytest.mark.integration),
])
def test_two_workers_give_the_same_tokens(tmp_path, analyzer, kind):
    texts = [f"{t} {i}번째 {i * 7}점" for i in range(400) for t in KO[:3]]   # 1,200 unique texts
    cfg = TokenizeParams(analyzer=analyzer, pos_drop=(), workers=1, worker_kind=kind)
    one, _ = tokenize_texts(texts, cfg, None)
    two, report = tokenize_texts(texts, cfg.model_copy(update={"workers": 2}), tmp_path / "c.sqlite")
    assert report.workers_used == 2
    assert report.worker_kind == (kind if kind != "auto" else "process")
    assert one == two


def test_okt_analyses_each_distinct_word_once(tmp_path):
    texts = ["정말 재밌는 영화", "정말 지루한 영화", "재밌는 영화 정말"]
    tokens, report = tokenize_texts(texts, TokenizeParams(pos_drop=(), workers=1), tmp_path / "c.sqlite")
    assert report.unique_units == 4 and report.analysed == 4      # 정말 재밌는 영화 지루한
    assert report.analysis_unit == "word"
    assert tokens[2] == ["재밌다", "영화", "정말"]
    _, report = tokenize_texts(texts, TokenizeParams(pos_drop=(), workers=1, norm=True), None)
    assert report.unique_units == 3          # with norm, Okt sees whole texts
    assert report.analysis_unit == "text"


def test_empty_and_missing_texts_are_dropped_and_counted(tmp_path):
    frame = docs(["좋다 좋아", "   ", "", "!!!", "별로다"], ["a", "b", "a", None, "b"])
    cfg = TokenizeParams(analyzer="komoran", pos_drop=("S*",), workers=1)
    table, stats = tokenize_documents(frame, DatasetParams(classes=()), cfg, tmp_path / "c.sqlite", frozenset())
    assert table["id"].tolist() == ["0", "4"]
    assert stats["dropped_missing_label"] == 1        # the "!!!" row has no label
    assert stats["dropped_empty_text"] == 2           # Komoran would throw on " "
    assert stats["documents"] == 2 and stats["labels"] == {"a": 1, "b": 1}


def test_filters_that_remove_everything_drop_the_row(tmp_path):
    frame = docs(["좋은 영화", "!!!", "나쁜 영화"], ["a", "b", "a"])
    cfg = TokenizeParams(analyzer="okt", pos_drop=("Punctuation",), workers=1)
    table, stats = tokenize_documents(frame, DatasetParams(classes=()), cfg, tmp_path / "c.sqlite", frozenset())
    assert stats["dropped_no_tokens_after_filters"] == 1 and len(table) == 2


def test_class_filter_and_unknown_class(tmp_path):
    frame = docs(["가 나", "다 라", "마 바"], ["행정", "경제", "환경"])
    cfg = TokenizeParams(analyzer="whitespace", pos_drop=())
    table, stats = tokenize_documents(frame, DatasetParams(classes=("행정", "경제")), cfg, None, frozenset())
    assert sorted(table["label"]) == ["경제", "행정"] and stats["dropped_by_class_filter"] == 1
    with pytest.raises(DataError, match="dataset.classes: no rows with label '복지'; labels present: 경제, 행정, 환경"):
        tokenize_documents(frame, DatasetParams(classes=("복지",)), cfg, None, frozenset())


def test_output_schema(tmp_path):
    frame = docs(["one two", "three"])
    table, _ = tokenize_documents(frame, DatasetParams(classes=()), TokenizeParams(analyzer="english", pos_drop=()),
                                  None, frozenset())
    cfg = TokenizeParams(analyzer="english", pos_drop=(), stopwords_file="stop.txt")
    spec = preprocess_spec(cfg, frozenset({"the", "a"}), frame)
    write_tokens(table, tmp_path / "tokens.parquet", spec)
    back = pq.read_table(tmp_path / "tokens.parquet")
    assert back.column_names == ["id", "label", "split", "tokens", "length", "text_key"]
    assert back.to_pydict()["tokens"] == [["one", "two"], ["three"]]
    assert back.to_pydict()["length"] == [2, 1]
    # The spec a model needs to read raw text travels with the tokens: stopwords resolved, examples.
    assert read_preprocess_spec(tmp_path / "tokens.parquet") == spec
    assert spec["stopwords"] == ["a", "the"] and spec["tokenize"]["analyzer"] == "english"
    assert spec["examples"] == ["one two", "three"] and spec["analyzer_signature"] == "english"
    pq.write_table(back.replace_schema_metadata(None), tmp_path / "old.parquet")
    with pytest.raises(DataError, match="old.parquet: has no preprocessing spec .* run the tokenize stage again"):
        read_preprocess_spec(tmp_path / "old.parquet")
