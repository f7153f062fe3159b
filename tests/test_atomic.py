"""A failure or Ctrl-C while writing leaves the previous output whole."""
from __future__ import annotations

import os

import pytest

from pipeline.core.atomic import atomic_dir, atomic_file


def test_atomic_file_replaces_on_success_and_follows_umask(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_file(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"      # not visible until done
    assert target.read_text() == "new"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_file_keeps_old_on_failure(tmp_path, error):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise error()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_dir_keeps_old_on_failure(tmp_path, error):
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "a").write_text("old")
    with pytest.raises(error):
        with atomic_dir(target) as tmp:
            (tmp / "a").write_text("new")
            raise error()
    assert (target / "a").read_text() == "old"
    assert os.listdir(tmp_path) == ["prepared"]


def test_atomic_dir_swaps_whole_folder(tmp_path):
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "stale").write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("new")
    assert sorted(os.listdir(target)) == ["a"]
    assert os.listdir(tmp_path) == ["prepared"]


# A child process that writes `target` and is killed with SIGKILL mid-way: `when` is "writing" (inside
# the with block) or "swapping" (a folder moved aside, the new one not yet in).
KILLED_WRITER = """
import os, signal, sys, pathlib
from pipeline.core.atomic import atomic_dir, atomic_file
kind, target, when = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
if when == "swapping":
    rename = os.rename
    def rename_then_die(src, dst):
        rename(src, dst)
        if str(dst).endswith(".old"):
            os.kill(os.getpid(), signal.SIGKILL)
    os.rename = rename_then_die
with (atomic_dir if kind == "dir" else atomic_file)(target) as tmp:
    if kind == "dir":
        (tmp / "a").write_text("half")
    else:
        tmp.write_text("half")
    if when == "writing":
        os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_writer(kind: str, target, when: str) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, kind, str(target), when], capture_output=True)
    assert done.returncode == -9, done.stderr.decode()


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_the_next_write_clears_what_a_writer_killed_outright_left(tmp_path, kind):
    target = tmp_path / "out"
    target.mkdir() if kind == "dir" else target.write_text("old")
    killed_writer(kind, target, "writing")
    left = [p for p in os.listdir(tmp_path) if p != "out"]
    assert len(left) == 1 and left[0].startswith(".out.") and left[0].endswith(".tmp")
    with (atomic_dir if kind == "dir" else atomic_file)(target) as tmp:
        assert sorted(os.listdir(tmp_path)) == sorted(["out", tmp.name])   # cleared before this write began
        (tmp / "a").write_text("new") if kind == "dir" else tmp.write_text("new")
    assert os.listdir(tmp_path) == ["out"]
    assert (target / "a" if kind == "dir" else target).read_text() == "new"


def test_a_folder_swap_killed_between_its_renames_gets_its_previous_version_back(tmp_path):
    from pipeline.core.atomic import clear_dead_writers

    target = tmp_path / "models"
    target.mkdir()
    (target / "a").write_text("old")
    killed_writer("dir", target, "swapping")
    assert not target.exists()   # only the moved-aside previous version and the new one exist
    assert sorted(p.rsplit(".", 1)[-1] for p in os.listdir(tmp_path)) == ["old", "tmp"]
    assert len(clear_dead_writers(target)) == 2
    assert os.listdir(tmp_path) == ["models"] and (target / "a").read_text() == "old"


def test_temp_outputs_of_a_live_writer_are_left_alone(tmp_path):
    from pipeline.core.atomic import clear_dead_writers

    target = tmp_path / "out"
    with atomic_file(target) as tmp:
        tmp.write_text("mine")
        assert clear_dead_writers(target) == [] and tmp.exists()
