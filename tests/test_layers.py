"""The package's layers hold: import-linter's contracts pass, and the pyfunc model ships all the
code serving imports and nothing above it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
from conftest import REPO

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
