"""The test suite's own rules: test modules share code through tests/helpers/ and fixtures through
conftest.py, never by importing each other (or conftest.py, which pytest loads as a plugin)."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SOURCES = sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement in the file names, at any depth (in functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):   # relative: from . import x, from .test_x import y
            names.update(f"{node.module or ''}.{alias.name}".lstrip(".") for alias in node.names)
            if node.module:
                names.add(node.module)
    return names


def forbidden(name: str) -> bool:
    """A test module, conftest, or a test_* function (which pytest would collect again where imported)."""
    return any(part.startswith("test_") or part == "conftest" for part in name.split("."))


def test_no_test_module_imports_another_test_module():
    assert len(SOURCES) > 20 and TESTS / "helpers" / "project.py" in SOURCES   # helpers/ is checked too
    bad = {path.relative_to(TESTS).as_posix(): sorted(filter(forbidden, imported_modules(path))) for path in SOURCES}
    assert not {k: v for k, v in bad.items() if v}, "move what is shared to tests/helpers/"


def test_the_check_sees_imports_anywhere(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text("import os\nfrom helpers import REPO\n\ndef f():\n    from test_other import x\n"
                      "    import conftest\n    from helpers.project import test_data\n", encoding="utf-8")
    assert sorted(n for n in imported_modules(sample) if forbidden(n)) == [
        "conftest", "helpers.project.test_data", "test_other", "test_other.x"]
