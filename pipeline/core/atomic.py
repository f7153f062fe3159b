"""Outputs appear whole or not at all: write to a temp file or folder beside the target, then rename.

A failed or interrupted stage (exception, Ctrl-C) removes its temp output and leaves the previous
output untouched. A writer killed outright (kill -9, out of memory) cannot: its temp names carry its
host and pid, and the next write of the same output removes them once that process is gone (and puts
back the previous version if the kill fell between the two renames of a folder swap). A full disk, a
file-size limit or a read-only folder is one StageError naming the output (not a traceback from
whichever library was writing).
"""
from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from pipeline.core import process
from pipeline.core.errors import StageError

# errno -> what to say; libraries that wrap the OSError (pyarrow, h5py) keep its text, matched below.
_CANNOT_WRITE = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is used up",
                 errno.EFBIG: "the file grew past the size limit (ulimit -f)",
                 errno.EROFS: "the folder is on a read-only file system",
                 errno.EACCES: "no permission to write there", errno.EPERM: "no permission to write there"}
_CANNOT_WRITE_TEXT = {"No space left on device": errno.ENOSPC, "File too large": errno.EFBIG,
                      "Read-only file system": errno.EROFS, "Disk quota exceeded": errno.EDQUOT,
                      "database or disk is full": errno.ENOSPC, "attempt to write a readonly database": errno.EROFS}


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """exc and what it was raised from or while handling, innermost last."""
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def cannot_write(exc: BaseException) -> str | None:
    """Why an exception means the output could not be written (disk full, read-only...), or None."""
    for link in exception_chain(exc):
        if isinstance(link, OSError) and link.errno in _CANNOT_WRITE:
            return _CANNOT_WRITE[link.errno]
        for text, code in _CANNOT_WRITE_TEXT.items():
            if text in str(link):
                return _CANNOT_WRITE[code]
    return None


@contextlib.contextmanager
def _said_as_output_error(target: Path) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        reason = cannot_write(exc)
        if reason is None or isinstance(exc, StageError):
            raise
        raise StageError(f"{target}: cannot write it: {reason}; the previous {target.name} is as it was "
                         "(free space or fix the folder, then run again)") from exc


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temp path in target's folder; on success it replaces target."""
    target = Path(target)
    with _said_as_output_error(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        clear_dead_writers(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_prefix(target), suffix=".tmp")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            _fsync(tmp_path)
            os.chmod(tmp_path, 0o666 & ~_umask())   # mkstemp makes 0600; outputs follow the umask
            os.replace(tmp_path, target)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside target; on success it takes target's place.

    The swap is two renames (old aside, new in); the old folder is deleted only after the new one
    is in place, so at every moment one complete version exists.
    """
    target = Path(target)
    with _said_as_output_error(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        clear_dead_writers(target)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=_prefix(target), suffix=".tmp"))
        try:
            yield tmp
            os.chmod(tmp, 0o777 & ~_umask())          # mkdtemp makes 0700
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=_prefix(target), suffix=".old"))
        old.rmdir()
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _prefix(target: Path) -> str:
    return f".{target.name}.{process.HOST}-{os.getpid()}."


def clear_dead_writers(target: Path) -> list[Path]:
    """Remove the temp outputs beside target left by writers of this host that are gone; them.

    A `.old` folder with no target beside it is the previous version of a swap killed between its
    renames: it is put back instead.
    """
    mine = re.compile(rf"\.{re.escape(target.name)}\.(.+)-(\d+)\.[^.]+\.(tmp|old)$")
    cleared = []
    for path in sorted(target.parent.glob(f".{glob.escape(target.name)}.*")):
        found = mine.fullmatch(path.name)
        if not found or found[1] != process.HOST or process.alive(int(found[2])):
            continue
        if found[3] == "old" and not target.exists():
            os.rename(path, target)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        cleared.append(path)
    return cleared


def write_json(target: str | Path, data: Any) -> None:
    with atomic_file(target) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False) + "\n",
                       encoding="utf-8")


def write_png(figure: Any, target: str | Path, **savefig: Any) -> None:
    """A matplotlib figure as a PNG file, atomically; a pyplot figure is closed afterwards."""
    with atomic_file(target) as tmp:
        figure.savefig(tmp, format="png", **savefig)
    if getattr(figure.canvas, "manager", None) is not None:   # made by pyplot: release it there
        import matplotlib.pyplot as plt

        plt.close(figure)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
