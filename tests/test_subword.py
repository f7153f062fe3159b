"""Subword units (prepare.subword): a real sentencepiece model trained on the training split only,
deterministic, carried in preprocess.json into the bundle and applied to raw text exactly as prepare
applied it; `model: none` leaves prepare as it was."""
from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from helpers import make_params
from pipeline.core.config import PrepareParams, SubwordParams, TokenizeParams, VocabParams
from pipeline.core.errors import StageError
from pipeline.data.sequences import build_vocab, encode_pad
from pipeline.data.splits import prepare, prepare_all
from pipeline.data.subword import UNK, Subword, train_subword

STEMS = {"a": ["육아휴직", "장려금", "출산휴가", "육아수당"],
         "b": ["창업지원", "소상공인", "창업자금", "대출지원"],
         "c": ["여권발급", "등본발급", "전입신고", "여권신청"]}
ENDINGS = ["을", "를", "은", "신청", "문의", "안내"]


def texts_table(n_per_class: int = 30) -> pd.DataFrame:
    """Korean-like documents of compound words, so pieces are shared across words; label-specific stems."""
    rows = []
    for label, stems in STEMS.items():
        for i in range(n_per_class):
            words = [stems[i % 4] + ENDINGS[i % 6], stems[(i + 1) % 4], "서울시" + ENDINGS[(i + 2) % 6],
                     stems[(i + 2) % 4] + ENDINGS[(i + 3) % 6]]
            rows.append((f"{label}{i:02d}", label, "", " ".join(words)))
    return pd.DataFrame(rows, columns=["id", "label", "split", "text"])


def tokens_of(texts: pd.DataFrame) -> pd.DataFrame:
    """The tokens table the whitespace analyzer makes of it."""
    frame = texts[["id", "label", "split"]].copy()
    frame["tokens"] = [t.split() for t in texts["text"]]
    frame["length"] = frame["tokens"].map(len)
    return frame


def cfg(model: str = "bpe", vocab_size: int = 60, **more) -> PrepareParams:
    return PrepareParams(maxlen=16, vocab=VocabParams(max_size=1000, min_freq=1),
                         subword=SubwordParams(model=model, vocab_size=vocab_size), **more)


@pytest.mark.parametrize("model", ["unigram", "bpe"])
def test_the_model_learns_from_the_training_split_only(model):
    table = tokens_of(texts_table())
    done = prepare_all(table, cfg(model))
    split_of = {i: s for s in ("train", "val", "test") for i in done.arrays[s]["id"]}
    held_out = [i for i, s in enumerate(table["id"]) if split_of[s] != "train"]
    train_rows = [i for i, s in enumerate(table["id"]) if split_of[s] == "train"]
    # A word only held-out rows hold, many times over, with characters no training row has.
    changed = table.copy()
    changed["tokens"] = [toks + ["꿿뷁똠꿿뷁똠"] * 5 if i in held_out else toks
                         for i, toks in enumerate(changed["tokens"])]
    again = prepare_all(changed, cfg(model))
    assert again.subword.proto == done.subword.proto        # val and test rows change nothing
    assert again.vocab == done.vocab
    pieces = set(again.subword._names)
    assert not any(ch in p for p in pieces for ch in "꿿뷁똠")
    test_pieces = [p for row in again.subword.pieces([["꿿뷁똠꿿뷁똠"]]) for p in row]
    assert set(test_pieces) <= {"▁", UNK}
    # ... while a training row's change does change the model.
    changed = table.copy()
    changed.at[train_rows[0], "tokens"] = table["tokens"][train_rows[0]] + ["꿿뷁똠꿿뷁똠"] * 5
    assert prepare_all(changed, cfg(model)).subword.proto != done.subword.proto


@pytest.mark.parametrize("model", ["unigram", "bpe"])
def test_training_is_deterministic_whatever_the_row_order(model):
    lists = list(tokens_of(texts_table())["tokens"])
    first = train_subword(lists, SubwordParams(model=model, vocab_size=60), seed=1)
    assert train_subword(lists, SubwordParams(model=model, vocab_size=60), seed=1).proto == first.proto
    assert train_subword(lists[::-1], SubwordParams(model=model, vocab_size=60), seed=1).proto == first.proto
    done, again = prepare_all(tokens_of(texts_table()), cfg(model)), prepare_all(tokens_of(texts_table()), cfg(model))
    assert done.subword.proto == again.subword.proto and done.vocab == again.vocab
    assert all(np.array_equal(done.arrays[s]["x"], again.arrays[s]["x"]) for s in done.arrays)


def test_pieces_stay_inside_tokens_and_cut_them_into_subwords():
    sub = train_subword(tokens_of(texts_table())["tokens"], SubwordParams(model="bpe", vocab_size=60))
    assert 16 < sub.size <= 60
    out = sub.pieces([["육아휴직을", "창업지원"], [], ["육아휴직을"]])
    assert out[1] == [] and out[2] == sub.pieces([["육아휴직을"]])[0]
    first = out[0][: len(out[2])]
    assert "".join(first).replace("▁", "") == "육아휴직을" and first[0].startswith("▁")
    assert "".join(out[0][len(out[2]):]).replace("▁", "") == "창업지원"
    assert sum(p.startswith("▁") for p in out[0]) == 2   # one word start per token: none crosses a token
    assert len(out[0]) > 2   # vocab 60 is too small for whole words


def test_pieces_replace_the_tokens_in_arrays_vocabulary_and_stats():
    table = tokens_of(texts_table())
    done = prepare_all(table, cfg("unigram"))
    assert set(done.vocab) - {"<pad>", "<oov>"} <= set(done.subword._names)
    rows = {s: table.set_index("id").loc[done.arrays[s]["id"], "tokens"].tolist() for s in done.arrays}
    for split, arr in done.arrays.items():
        pieces = done.subword.pieces(rows[split])
        x, kept, raw, _ = encode_pad(pieces, done.vocab, 16, "post", "pre")
        assert np.array_equal(arr["x"], x) and np.array_equal(arr["raw_length"], raw)
    sub = done.stats["subword"]
    assert sub["model"] == "unigram" and sub["pieces"] == done.subword.size
    assert sub["train_pieces_per_document"] == round(done.arrays["train"]["raw_length"].mean(), 2)
    assert sub["train_pieces_per_token"] > 1
    json.dumps(done.stats)


def test_model_none_is_prepare_as_it_was():
    table = tokens_of(texts_table())
    plain = PrepareParams(maxlen=16, vocab=VocabParams(max_size=1000, min_freq=1))
    done = prepare_all(table, plain)
    assert plain.subword.model == "none" and done.subword is None and "subword" not in done.stats
    # The vocabulary and arrays of the tokens themselves, as before subword units existed.
    train = table.set_index("id").loc[done.arrays["train"]["id"], "tokens"].tolist()
    assert done.vocab == build_vocab(train, 1000, 1)
    x, *_ = encode_pad(train, done.vocab, 16, "post", "pre")
    assert np.array_equal(done.arrays["train"]["x"], x)
    arrays, vocab, names, stats = prepare(table, plain)
    assert vocab == done.vocab and stats == done.stats and names == ["a", "b", "c"]


def test_an_impossible_vocab_size_is_one_error_naming_the_key():
    lists = [["가나다라마바사아자차카타파하" + chr(0xAC00 + i) for i in range(60)]]
    with pytest.raises(StageError, match="prepare.subword: sentencepiece could not train a bpe model "
                                         "\\(vocab_size 16\\)"):
        train_subword(lists, SubwordParams(model="bpe", vocab_size=16, character_coverage=1.0))
    with pytest.raises(StageError, match="prepare.subword: the training split has no tokens"):
        train_subword([[], []], SubwordParams(model="unigram"))


def test_params_check_the_subword_section():
    from pipeline.core.errors import ParamsError

    assert make_params(prepare={"subword": {"model": "bpe"}}).prepare.subword.vocab_size == 8000
    with pytest.raises(ParamsError, match="prepare.subword.model"):
        make_params(prepare={"subword": {"model": "wordpiece"}})
    with pytest.raises(ParamsError, match="prepare.subword.vocab_size"):
        make_params(prepare={"subword": {"vocab_size": 0}})


@pytest.fixture
def prepared_project(in_tmp):
    """data/tokens.parquet of texts_table (whitespace analyzer) and params.yaml with a BPE subword model;
    the prepare stage run on it for real."""
    from pipeline.core.config import DatasetParams
    from pipeline.stages.prepare import main
    from pipeline.text.documents import preprocess_spec, tokenize_documents, write_tokens

    texts = texts_table()
    tok = TokenizeParams(analyzer="whitespace", pos_drop=(), workers=1)
    table, _ = tokenize_documents(texts, DatasetParams(classes=()), tok, None, frozenset(), progress=False)
    (in_tmp / "data").mkdir()
    write_tokens(table, in_tmp / "data" / "tokens.parquet", preprocess_spec(tok, frozenset(), texts))
    params = {"tokenize": json.loads(json.dumps(tok.model_dump())),
              "prepare": {"maxlen": 16, "vocab": {"max_size": 1000, "min_freq": 1},
                          "subword": {"model": "bpe", "vocab_size": 60}}}
    (in_tmp / "params.yaml").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    assert main(["--no-track"]) == 0
    return in_tmp, texts


def bundle_of(prepared, folder):
    """models/ as save_bundle leaves it, but for model.keras: what load_encoder reads."""
    folder.mkdir()
    for name in ("vocab.json", "labels.json", "preprocess.json"):
        shutil.copyfile(prepared / name, folder / name)
    (folder / "params.json").write_text(json.dumps(
        {"train": {"maxlen": 0}, "prepared": json.loads((prepared / "params.json").read_text(encoding="utf-8"))}))
    return folder


def test_the_bundle_cuts_raw_text_into_the_ids_prepare_gave(prepared_project):
    from pipeline.serve.bundle import load_encoder, save_bundle

    root, texts = prepared_project
    prepared = root / "data" / "prepared"
    spec = json.loads((prepared / "preprocess.json").read_text(encoding="utf-8"))
    assert spec["subword"]["model"] == "bpe" and spec["subword"]["pieces"] <= 60
    assert json.loads((root / "data" / "prepare_stats.json").read_text())["subword"]["pieces"] == \
        spec["subword"]["pieces"]

    class Saved:   # save_bundle's other files, without training a network
        def save(self, path):
            path.write_bytes(b"")

    bundle = root / "models"
    bundle.mkdir()
    save_bundle(bundle, Saved(), prepared, make_params().train)
    encoder = load_encoder(bundle)
    assert encoder.subword is not None
    text_of = texts.set_index("id")["text"]
    for split in ("train", "val", "test"):
        with np.load(prepared / f"{split}.npz") as f:
            arr = dict(f)
        x, kept = encoder.encode(text_of.loc[arr["id"]].tolist())
        assert np.array_equal(x, arr["x"]) and np.array_equal(kept, arr["length"])
    # An unseen word and unseen characters become known pieces and <unk>, not <oov> wholesale.
    x, kept = encoder.encode(["육아지원을 꿿뷁"])
    vocab = json.loads((prepared / "vocab.json").read_text(encoding="utf-8"))
    assert kept[0] > 2 and vocab.get(UNK, 1) in x[0][: kept[0]]


def test_model_none_writes_no_subword_entry(prepared_project):
    from pipeline.stages.prepare import main
    from pipeline.text.documents import read_preprocess_spec

    root, _ = prepared_project
    params = json.loads((root / "params.yaml").read_text(encoding="utf-8"))
    params["prepare"]["subword"]["model"] = "none"
    (root / "params.yaml").write_text(json.dumps(params, ensure_ascii=False), encoding="utf-8")
    assert main(["--no-track"]) == 0
    prepared = root / "data" / "prepared"
    assert json.loads((prepared / "preprocess.json").read_text(encoding="utf-8")) == \
        read_preprocess_spec(root / "data" / "tokens.parquet")
    assert "subword" not in json.loads((root / "data" / "prepare_stats.json").read_text())
    vocab = json.loads((prepared / "vocab.json").read_text(encoding="utf-8"))
    assert "서울시을" in vocab or "서울시를" in vocab   # whole tokens again


def test_a_damaged_subword_model_is_one_error_naming_the_file(prepared_project, tmp_path):
    from pipeline.serve.bundle import load_encoder

    root, _ = prepared_project
    bundle = bundle_of(root / "data" / "prepared", tmp_path / "bundle")
    spec = json.loads((bundle / "preprocess.json").read_text(encoding="utf-8"))
    proto = bytearray(Subword.from_spec(spec["subword"], "x").proto)
    proto[len(proto) // 2] ^= 0xFF
    spec["subword"]["proto"] = base64.b64encode(bytes(proto)).decode()
    (bundle / "preprocess.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(StageError, match="preprocess.json: the subword model's bytes do not match their sha256"):
        load_encoder(bundle)
    spec["subword"]["proto"] = "not base64!"
    (bundle / "preprocess.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(StageError, match="preprocess.json: its subword entry is damaged"):
        load_encoder(bundle)


def test_the_mlflow_model_carries_the_subword_model(prepared_project, tmp_path):
    """The registered pyfunc model ships the bundle's files only: the pieces travel in preprocess.json."""
    import mlflow

    from pipeline.model.architecture import build_model
    from pipeline.serve import pyfunc
    from pipeline.serve.bundle import save_bundle
    from pipeline.serve.predictor import Classifier

    root, texts = prepared_project
    prepared = root / "data" / "prepared"
    vocab = json.loads((prepared / "vocab.json").read_text(encoding="utf-8"))
    params = make_params(train={"model": {"units": 4, "embedding_dim": 4, "dense_units": 0, "bidirectional": False}})
    bundle = root / "models"
    bundle.mkdir()
    save_bundle(bundle, build_model(params.train.model, len(vocab), 3), prepared, params.train)
    path = tmp_path / "pyfunc"
    pyfunc.save_model(bundle, path, ["a", "b", "c"], texts["text"][:2].tolist(), "whitespace")
    shipped = json.loads((path / "artifacts" / "bundle" / "preprocess.json").read_text(encoding="utf-8"))
    assert shipped["subword"]["sha256"] == json.loads(
        (prepared / "preprocess.json").read_text(encoding="utf-8"))["subword"]["sha256"]
    assert any(r.startswith("sentencepiece==") for r in (path / "requirements.txt").read_text().split())
    sample = texts["text"].tolist()[::7] + ["육아지원을 꿿뷁", ""]
    served = mlflow.pyfunc.load_model(str(path)).predict(sample)
    pd.testing.assert_frame_equal(served, Classifier.load(bundle).predict(sample))
    assert served["empty_text"].tolist() == [False] * (len(sample) - 1) + [True]
