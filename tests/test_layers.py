"""The package's layers hold: import-linter's contracts pass, the pyfunc model ships all the code
serving imports and nothing above it, and the documented commands reach the layers' mains."""
from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from helpers import REPO
from pipeline.serve.pyfunc import SERVING_CODE


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_pyfunc_code_covers_every_module_serving_imports():
    graph = grimp.build_graph("pipeline")
    imported = graph.find_upstream_modules("pipeline.serve.predictor") | graph.find_upstream_modules(
        "pipeline.serve.pyfunc")
    layers = {m.split(".")[1] for m in imported if m.count(".") >= 1}
    assert {"core", "data", "text", "model"} <= layers     # the graph was really built
    assert layers <= set(SERVING_CODE), f"serving imports {sorted(layers - set(SERVING_CODE))} too"
    assert not {"stages", "tuning", "experiments", "reference"} & set(SERVING_CODE)


@pytest.mark.parametrize("name", ["download", "tokenize", "prepare", "tune", "train", "evaluate", "predict"])
def test_the_documented_commands_run_their_main(name, monkeypatch, capsys):
    """`python -m pipeline.<name>` (README, docs) still runs the command that moved into a layer."""
    monkeypatch.setattr(sys, "argv", [f"pipeline/{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module(f"pipeline.{name}", run_name="__main__", alter_sys=False)
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m pipeline.{name}")
