"""The whole shared NSMC file through the data stages (about two minutes: `make test-slow`)."""
from __future__ import annotations

import pytest

from pipeline.core.config import DatasetParams, DownloadParams, PrepareParams, TableSource, TokenizeParams, VocabParams
from pipeline.data.downloads import download
from pipeline.data.readers import load_documents
from pipeline.data.splits import prepare
from pipeline.text.documents import tokenize_documents

NSMC_SHA256 = "fa80d8a66e9c7b0c9b1ade949bb5f38835e8640a884b3573df5643982ba532f7"


@pytest.mark.slow
def test_full_shared_nsmc_through_the_data_stages(in_tmp, shared_data):
    dataset = DatasetParams(name="table", classes=(), table=TableSource(
        source=str(shared_data / "nsmc" / "ratings_train.txt"), sha256=NSMC_SHA256,
        text_columns=("document",), label_column="label", id_column="id"))
    download(dataset, DownloadParams())
    docs = load_documents(in_tmp / "data" / "raw", dataset)
    cfg = TokenizeParams(pos_drop=("Josa", "Punctuation"))
    tokens, stats = tokenize_documents(docs, dataset, cfg, in_tmp / "cache.sqlite", frozenset(), progress=False)
    # A few NSMC reviews are empty or only punctuation: dropped and counted, never silently.
    dropped = stats["dropped_empty_text"] + stats["dropped_no_tokens_after_filters"]
    assert 0 < dropped < 2000 and stats["documents"] == 150_000 - dropped
    assert stats["unique_units_analysed_or_cached"] < stats["unique_texts"] * 3
    vocab_params = VocabParams(max_size=20_000, min_freq=1)
    arrays, vocab, names, pstats = prepare(tokens, PrepareParams(maxlen=40, vocab=vocab_params))
    assert names == ["0", "1"] and len(vocab) == 20_000
    n = {s: len(a["y"]) for s, a in arrays.items()}
    # A tenth of the distinct texts, each with its copies: NSMC repeats some short reviews hundreds of times.
    distinct = tokens["text_key"].nunique()
    assert sum(n.values()) == stats["documents"] and abs(n["test"] - 0.1 * stats["documents"]) < 0.005 * distinct
    by_id = dict(zip(tokens["id"].astype(str), tokens["text_key"]))
    keys = {s: {by_id[i] for i in a["id"]} for s, a in arrays.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["val"] and not keys["val"] & keys["test"]
    assert pstats["duplicates"]["duplicate_rows"] == stats["documents"] - distinct > 1000
    share = {s: float(a["y"].mean()) for s, a in arrays.items()}
    # Stratified by text: a review with hundreds of copies moves its rows together (0.7 points measured).
    assert max(share.values()) - min(share.values()) < 0.01
    assert pstats["splits"]["test"]["oov_rate"] < 0.05
