"""Faults the kernel makes real: whether this process may mount, and a folder bind-mounted onto itself
read-only (shared by tests/test_catalogue_faults.py and tests/test_catalogue_probe_stages.py)."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator


def can_mount() -> str:
    """'' when this process may mount a tmpfs, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs or a read-only bind needs root (CI runs as root)"
    probe = Path(f"/tmp/.mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if done.returncode:
            return f"mount -t tmpfs failed here: {done.stderr.decode(errors='replace').strip()}"
        subprocess.run(["umount", str(probe)], check=True)
        return ""
    finally:
        probe.rmdir()


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """The folder bind-mounted onto itself read-only: even root cannot write it (chmod would not stop root)."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True, capture_output=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
