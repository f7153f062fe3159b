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
