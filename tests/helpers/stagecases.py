"""The stage side of the bad-input catalogues: a tiny table dataset, a case (input, stages, the exit
code and the line it must give) and the runner that calls the real stage `main()`s in a scratch root.

Shared by tests/test_bad_input_stages.py and tests/test_catalogue_data.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import yaml

from helpers.project import tiny_params

QUESTIONS = ["주민등록 등본 발급", "여권 재발급 신청", "소상공인 대출 지원", "세금 납부 기한", "기초 연금 신청",
             "아동 수당 지급"]


def table_params(source: str, **table) -> dict:
    """The tiny project's params on a local table, tokenized on whitespace (no JVM to start)."""
    params = tiny_params()
    params["dataset"]["table"].update({"source": source, "text_columns": ["text"], "label_column": "label",
                                       "id_column": "", "format": "auto", "sha256": "", **table})
    params["tokenize"].update(analyzer="whitespace", pos_drop=[], pos_keep=[])
    return params


def frame(n: int = 24, labels: Callable[[int], object] = lambda i: "ab"[i % 2], text=None) -> pd.DataFrame:
    return pd.DataFrame({"text": [text(i) if text else f"{QUESTIONS[i % 6]} {i}" for i in range(n)],
                         "label": [labels(i) for i in range(n)]})


def texts(n: int = 24) -> list[str]:
    return [f"{QUESTIONS[i % 6]} {i}" for i in range(n)]


def tokens(root: Path) -> pd.DataFrame:
    """data/tokens.parquet as the tokenize stage left it in root."""
    return pd.read_parquet(root / "data" / "tokens.parquet")


def write_csv(df: pd.DataFrame) -> Callable[[Path], str]:
    def write(root: Path) -> str:
        df.to_csv(root / "table.csv", index=False)
        return "table.csv"
    return write


@dataclass
class Case:
    """Write the input, run the stages in order; the last one must give `code` and say `says`."""
    id: str
    write: Callable[[Path], str]           # writes the data file, returns dataset.table.source
    stages: tuple[str, ...]
    code: int
    says: str
    table: dict = field(default_factory=dict)
    params_text: Callable[[str], str] | None = None   # rewrites params.yaml's text (YAML-level cases)
    edit: Callable[[dict], None] | None = None         # changes the params before they are written
    check: Callable[[Path], None] | None = None        # exit 0: what the stage wrote (in the root)


def run_stage(name: str) -> int:
    import importlib

    return importlib.import_module(f"pipeline.stages.{name}").main(["--no-track"])


def run_case(case: Case, root: Path, capsys, monkeypatch) -> None:
    """Write the case's input and params in root (the working folder), run its stages, check the last."""
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    params = table_params(case.write(root), **case.table)
    if case.edit:
        case.edit(params)
    text = yaml.safe_dump(params, allow_unicode=True, sort_keys=False)
    if case.params_text:
        changed = case.params_text(text)
        assert changed != text, "the case's edit must change params.yaml"
        text = changed
    (root / "params.yaml").write_text(text, encoding="utf-8")
    for stage in case.stages[:-1]:
        assert run_stage(stage) == 0, capsys.readouterr().err
    capsys.readouterr()
    code = run_stage(case.stages[-1])
    captured = capsys.readouterr()
    err = captured.err
    assert code == case.code, err
    assert case.says in captured.out + err, captured.out + err
    if case.code == 2:
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"{case.stages[-1]}: error: ")
    elif case.check:
        case.check(root)
