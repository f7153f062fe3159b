"""Fault catalogue (issue 27), data and params: inputs users will give the stages, and what each gets.

Every case runs the real stage `main()`s in a scratch folder on a tiny table dataset (whitespace
tokens, no JVM), as tests/test_bad_input_stages.py does, and checks the exit code, the line the
user reads and what the stage wrote. docs/catalogue.md lists every case of the catalogue.
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import yaml

from helpers import REPO
from helpers.stagecases import Case, frame, run_case, run_stage, table_params, texts, tokens, write_csv


def write_jsonl(records: list[dict]) -> Callable[[Path], str]:
    def write(root: Path) -> str:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        (root / "table.jsonl").write_text(lines, encoding="utf-8")
        return "table.jsonl"
    return write


def mixed_number_and_string_labels(root: Path) -> str:
    # JSON keeps types: 1, 1.0 and "1" are one class, as are 2 and "2".
    labels = [1, "1", 1.0, 2, "2", 2.0]
    return write_jsonl([{"text": t, "label": labels[i % 6]} for i, t in enumerate(texts())])(root)


def labels_with_spaces_and_nfd(root: Path) -> str:
    nfd = unicodedata.normalize("NFD", "행정")
    labels = ["행정", "행정 ", nfd, " 복지", "복지", unicodedata.normalize("NFD", "복지 ")]
    return write_csv(frame(labels=lambda i: labels[i % 6]))(root)


INVISIBLE = ["😀😀", "\u200b\u200b", "\u200f\u202e", "\ufeff \u2060"]


def invisible_only_texts(root: Path) -> str:
    return write_csv(frame(n=28, text=lambda i: INVISIBLE[i - 24] if i >= 24 else texts(24)[i]))(root)


def nul_byte_in_a_text(root: Path) -> str:
    (root / "table.csv").write_bytes(("text,label\n" + "".join(
        f"{t},{'ab'[i % 2]}\n" for i, t in enumerate(texts()))).replace("주민등록 등본", "주민등록\0등본").encode())
    return "table.csv"


def utf16_csv(root: Path) -> str:
    frame().to_csv(root / "table.csv", index=False, encoding="utf-16")   # what Excel's "Unicode text" gives
    return "table.csv"


def utf16_without_bom(root: Path) -> str:
    (root / "table.csv").write_bytes(frame().to_csv(index=False).encode("utf-16-le"))
    return "table.csv"


def gzip_named_csv(root: Path) -> str:
    (root / "table.csv").write_bytes(gzip.compress(frame().to_csv(index=False).encode()))
    return "table.csv"


def parquet_list_text(root: Path) -> str:
    df = frame()
    df["text"] = [t.split() for t in df["text"]]
    df.to_parquet(root / "table.parquet")
    return "table.parquet"


def parquet_list_label(root: Path) -> str:
    df = frame()
    df["label"] = [[lab] for lab in df["label"]]
    df.to_parquet(root / "table.parquet")
    return "table.parquet"


def nested_jsonl(root: Path) -> str:
    return write_jsonl([{"q": {"title": t.split()[0], "body": t}, "label": "ab"[i % 2]}
                        for i, t in enumerate(texts())])(root)


def path_with_spaces_and_hangul(root: Path) -> str:
    (root / "내 데이터").mkdir()
    frame().to_csv(root / "내 데이터" / "질문 목록.csv", index=False)
    return "내 데이터/질문 목록.csv"


def ninety_nine_to_one(root: Path) -> str:
    return write_csv(frame(n=300, labels=lambda i: "b" if i % 100 == 7 else "a"))(root)


def labels_are(expected: set[str]) -> Callable[[Path], None]:
    def check(root: Path) -> None:
        assert set(tokens(root)["label"]) == expected
    return check


def nul_read_as_a_space(root: Path) -> None:
    table = tokens(root)
    assert ["주민등록", "등본", "발급", "0"] in table["tokens"].map(list).tolist()


def same_tokens_as_utf8(root: Path) -> None:
    assert tokens(root)["tokens"].map(list).tolist()[:2] == [texts()[0].split(), texts()[1].split()]


def nested_columns_joined(root: Path) -> None:
    assert tokens(root)["tokens"].map(list).tolist()[0] == ["주민등록", "주민등록", "등본", "발급", "0"]


def set_keys(**dotted) -> Callable[[dict], None]:
    def edit(params: dict) -> None:
        for key, value in dotted.items():
            *parents, last = key.split("__")
            node = params
            for part in parents:
                node = node[part]
            node[last] = value
    return edit


CASES = [
    Case("labels-mix-numbers-and-strings", mixed_number_and_string_labels, ("download", "tokenize"), 0,
         "label column 'label' mixes numbers (16 rows) and strings (8)", check=labels_are({"1", "2"})),
    Case("labels-trailing-spaces-and-nfd-hangul", labels_with_spaces_and_nfd, ("download", "tokenize"), 0,
         "24 documents", check=labels_are({"행정", "복지"})),
    Case("classes-filter-written-nfd", labels_with_spaces_and_nfd, ("download", "tokenize"), 0,
         "outside dataset.classes", check=labels_are({"행정"}),
         edit=set_keys(dataset__classes=[unicodedata.normalize("NFD", "행정")])),
    Case("texts-of-only-emoji-zero-width-rtl", invisible_only_texts, ("download", "tokenize"), 0,
         "dropped 3 empty",
         check=lambda root: (len(tokens(root)) == 25 and ["😀😀"] in tokens(root)["tokens"].map(list).tolist())
         or pytest.fail("the emoji row is kept, the three invisible ones dropped")),
    Case("nul-byte-in-a-text", nul_byte_in_a_text, ("download", "tokenize"), 0,
         "table.csv: 4 NUL character(s), the first on line 2: read as spaces", check=nul_read_as_a_space),
    Case("utf16-csv-with-bom", utf16_csv, ("download", "tokenize"), 0, "24 documents", check=same_tokens_as_utf8),
    Case("utf16-csv-without-bom", utf16_without_bom, ("download", "tokenize"), 2,
         "looks like UTF-16 without a byte-order mark; set dataset.table.encoding to utf-16-le"),
    Case("gzip-file-named-csv", gzip_named_csv, ("download", "tokenize"), 0, "24 documents",
         check=same_tokens_as_utf8),
    Case("parquet-list-typed-text", parquet_list_text, ("download", "tokenize"), 2,
         "table.parquet: row 1: text column 'text' holds a list ['주민등록', '등본', '발급', '0'], not text"),
    Case("parquet-list-typed-label", parquet_list_label, ("download", "tokenize"), 2,
         "table.parquet: row 1: label column 'label' holds a list ['a'], not a label"),
    Case("nested-jsonl-dotted-columns", nested_jsonl, ("download", "tokenize"), 0, "24 documents",
         table={"text_columns": ["q.title", "q.body"]}, check=nested_columns_joined),
    Case("nested-jsonl-parent-named", nested_jsonl, ("download", "tokenize"), 2,
         "table.jsonl: no column 'q'; the columns present are: label, q.title, q.body (nested JSON keys are "
         "joined with '.')", table={"text_columns": ["q"]}),
    Case("source-path-with-spaces-and-hangul", path_with_spaces_and_hangul, ("download", "tokenize"), 0,
         "24 documents"),
    # Security: a system file named as the table is refused before anything is copied into data/raw
    # (where `dvc push` would upload it), by URL or through ../ from the project.
    Case("source-file-url-etc-passwd", lambda root: "file:///etc/passwd", ("download",), 2,
         "dataset.table.source: 'file:///etc/passwd': cannot tell the format from the file name"),
    Case("source-dotdot-etc-passwd", lambda root: "../" * len(root.resolve().parts) + "etc/passwd", ("download",), 2,
         "etc/passwd': cannot tell the format from the file name; set dataset.table.format to csv, tsv, jsonl "
         "or parquet (nothing was copied)"),
    Case("class-split-99-to-1", ninety_nine_to_one, ("download", "tokenize", "prepare"), 0,
         "warning: class 'b' is 1.0% of the rows (3 of 300)"),
    # params.yaml
    Case("maxlen-1", write_csv(frame()), ("download", "tokenize", "prepare", "train"), 0, "train:",
         edit=set_keys(prepare__maxlen=1, train__use_tuned=False),
         check=lambda root: json.loads((root / "data" / "prepare_stats.json").read_text())["maxlen"] == 1
         or pytest.fail("maxlen 1 was used")),
    Case("batch-larger-than-the-data", write_csv(frame()), ("download", "tokenize", "prepare", "train"), 0,
         "train:", edit=set_keys(train__batch_size=4096, train__use_tuned=False),
         check=lambda root: (root / "models" / "model.keras").is_file() or pytest.fail("no model")),
    Case("space-low-above-high", write_csv(frame()), ("download",), 2,
         "tune.space.model.units: low (8) is above high (4)",
         edit=set_keys(tune__space={"model.units": {"type": "int", "low": 8, "high": 4}})),
    Case("space-empty-choice-list", write_csv(frame()), ("download",), 2,
         "tune.space.model.cell.choices: required for a categorical range",
         edit=set_keys(tune__space={"model.cell": {"type": "categorical", "choices": []}})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue_data_and_params(case: Case, in_tmp: Path, capsys, monkeypatch):
    run_case(case, in_tmp, capsys, monkeypatch)
    if case.id.endswith("etc-passwd"):
        assert not (in_tmp / "data" / "raw").exists()
        assert not list((in_tmp / ".cache").rglob("passwd*"))


def test_a_class_only_in_the_official_test_file_is_refused(in_tmp, capsys):
    """NSMC, IMDB and Reuters keep their own test file: a label only it has would count as a mistake
    on every one of its rows whatever the model learns."""
    rows = [{"id": str(i), "label": "ab"[i % 2], "split": "train", "tokens": texts()[i % 24].split()}
            for i in range(40)]
    rows += [{"id": f"t{i}", "label": "abc"[i % 3], "split": "test", "tokens": texts()[i].split()} for i in range(9)]
    table = pd.DataFrame(rows)
    table["length"] = table["tokens"].map(len).astype("int32")
    table["text_key"] = table["tokens"].map(" ".join)
    (in_tmp / "data").mkdir()
    from pipeline.text.documents import write_tokens

    write_tokens(table, in_tmp / "data" / "tokens.parquet", {})
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(table_params("table.csv"), allow_unicode=True),
                                        encoding="utf-8")
    assert run_stage("prepare") == 2
    err = capsys.readouterr().err
    assert err.strip() == ("prepare: error: the official test file: class 'c' is in the test file only (1 such "
                           "class(es), 3 test rows); the model would never see it: list the others in "
                           "dataset.classes"), err
    assert not (in_tmp / "data" / "prepared").exists()


@pytest.mark.parametrize(("content", "says"), [
    ("", "params.yaml: the file is empty; expected a mapping of sections (dataset:, download:"),
    ("# nothing but a comment\n", "params.yaml: the file is empty; expected a mapping of sections"),
    ("- dataset\n- train\n", "params.yaml: the file holds a list, not a mapping; expected a mapping of sections"),
], ids=["empty", "only-a-comment", "a-list"])
def test_params_yaml_that_is_not_a_mapping(content, says, in_tmp, capsys):
    (in_tmp / "params.yaml").write_text(content, encoding="utf-8")
    assert run_stage("download") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and says in err, err
    assert not (in_tmp / "data").exists()


def alias_bomb() -> str:
    """9 levels of 9 aliases in one flow list: 387 million strings if anything expands it (a repr in a
    message, a deep copy, a comparison)."""
    levels = ["&l0 [" + ", ".join(["x"] * 9) + "]"]
    levels += [f"&l{k} [" + ", ".join([f"*l{k - 1}"] * 9) + "]" for k in range(1, 9)]
    return "[" + ", ".join(levels) + "]"


@pytest.mark.parametrize("where", ["top-level", "dataset-classes", "tune-space-choices"])
def test_a_yaml_alias_bomb_is_refused_in_seconds_and_small_memory(where, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    if where == "top-level":
        params["bomb"] = "BOMB_HERE"
    elif where == "dataset-classes":
        params["dataset"]["classes"] = "BOMB_HERE"
    else:
        params["tune"]["space"]["model.cell"]["choices"] = "BOMB_HERE"
    text = yaml.safe_dump(params, allow_unicode=True, sort_keys=False).replace("BOMB_HERE", alias_bomb())
    (tmp_path / "params.yaml").write_text(text, encoding="utf-8")
    # A child process capped at 2 GiB of address space beyond what Python and the imports need.
    done = subprocess.run([sys.executable, "-c", (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30));"
        "from pipeline.stages.download import main; sys.exit(main(['--no-track']))")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("download: error: params.yaml: "), done.stderr[-2000:]
    assert len(lines[0]) < 400


@pytest.mark.parametrize(("url", "says"), [
    ("garbage", "$OPTUNA_STORAGE: cannot open garbage: "),
    ("postgresql://tuner:hunter2@127.0.0.1:1/optuna", "$OPTUNA_STORAGE: cannot open postgresql://tuner:***@127.0.0.1:1"),
    ("postgresql//tuner:hunter2@127.0.0.1/optuna", "$OPTUNA_STORAGE: cannot open "),
], ids=["not-a-url", "refused-port-with-password", "misspelt-scheme-with-password"])
def test_optuna_storage_set_to_garbage_is_one_line_without_the_password(url, says, in_tmp, capsys, monkeypatch):
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(table_params(write_csv(frame())(in_tmp)), allow_unicode=True),
                                        encoding="utf-8")
    for stage in ("download", "tokenize", "prepare"):
        assert run_stage(stage) == 0, capsys.readouterr().err
    capsys.readouterr()
    monkeypatch.setenv("OPTUNA_STORAGE", url)
    assert run_stage("tune") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("tune: error: ") and says in err, err
    assert "hunter2" not in err
    assert not (in_tmp / "tune").exists() or not any((in_tmp / "tune").iterdir())


def test_a_99_to_1_split_is_warned_and_still_scored_per_class(in_tmp, capsys, monkeypatch):
    """The rare class keeps its rows in every split and its own line in the metrics: macro-F1 shows
    what accuracy hides."""
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    params = table_params(ninety_nine_to_one(in_tmp))
    params["train"]["use_tuned"] = False
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    for stage in ("download", "tokenize", "prepare", "train", "evaluate"):
        assert run_stage(stage) == 0, capsys.readouterr().err
    assert "warning: class 'b' is 1.0% of the rows" in capsys.readouterr().err
    metrics = json.loads((in_tmp / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test/per_class"]["b"]["support"] == 1
    assert set(metrics["test/per_class"]) == {"a", "b"} and 0 <= metrics["test/macro_f1"] <= 1
