"""Find pickles in a folder of model files: by name, by the bytes a pickle starts with (protocol 2
and later begin 0x80 <protocol>), inside zip files (.keras, .skops) too, and .npy arrays of Python
objects (numpy stores those as a pickle)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

PICKLE_NAMES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill")


def _is_pickle(name: str, head: bytes) -> bool:
    if name.lower().endswith(PICKLE_NAMES):
        return True
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if head.startswith(b"\x93NUMPY"):   # the header's dict names the dtype; 'O' is pickled objects
        return b"'descr': '|O'" in head[:256]
    return False


def _scan(name: str, data: bytes, found: list[str]) -> None:
    if _is_pickle(name, data[:256]):
        found.append(name)
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                _scan(f"{name}!{member}", archive.read(member), found)


def pickles_in(folder: Path) -> list[str]:
    """The files (and zip members, as file!member) under `folder` that are, or hold, a pickle."""
    found: list[str] = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        _scan(str(path.relative_to(folder)), path.read_bytes(), found)
    return found
