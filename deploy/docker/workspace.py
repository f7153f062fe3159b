#!/usr/bin/env python
"""textclf-workspace: lay out a pod's workspace, the init container of every pipeline pod.

    textclf-workspace /workspace --wait postgres:5432 --wait mlflow:5000 --pull data/prepared
    textclf-workspace --wait postgres:5432                 # only wait (no workspace)

1. copies the project baked into the image (/app: code, params.yaml, dvc.yaml, dvc.lock) to the
   workspace, a volume the pod's main container then works in;
2. waits until every --wait host:port accepts TCP connections (the services may start with it);
3. `dvc pull`s the --pull outputs (paths from dvc.lock) from $DVC_REMOTE_URL, made the default
   remote of the workspace: a folder (a mounted volume) or a URL whose DVC plugin the image has.

Exit 0 when all is done; 1 with one line on stderr otherwise (the pod's init then fails, and
Kubernetes retries it). Standard library only: it runs before anything else is known to work.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REMOTE = "cluster"


def copy_project(source: Path, dest: Path) -> None:
    if not (source / "dvc.yaml").is_file():
        raise SystemExit(f"textclf-workspace: {source} holds no dvc.yaml: not the project")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)


def wait_for(endpoints: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"textclf-workspace: --wait {endpoint!r}: expected host:port")
        while True:
            try:
                with socket.create_connection((host, int(port)), timeout=5):
                    break
            except OSError as error:
                if time.monotonic() > deadline:
                    raise SystemExit(f"textclf-workspace: {endpoint} not reachable after {timeout:.0f} s: "
                                     f"{error}") from None
                time.sleep(2)
        print(f"textclf-workspace: {endpoint} is up", flush=True)


def pull(workspace: Path, targets: list[str], remote_url: str) -> None:
    if not remote_url:
        raise SystemExit("textclf-workspace: --pull needs DVC_REMOTE_URL (a folder or a DVC remote URL)")
    for cmd in (["dvc", "remote", "add", "--local", "--default", "--force", REMOTE, remote_url],
                ["dvc", "pull", "--remote", REMOTE, *targets]):
        done = subprocess.run(cmd, cwd=workspace)
        if done.returncode:
            raise SystemExit(f"textclf-workspace: `{' '.join(cmd[:2])}` failed with exit code {done.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textclf-workspace", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", type=Path, nargs="?", help="where to copy the project; none: only --wait")
    parser.add_argument("--source", type=Path, default=Path(os.environ.get("TEXTCLF_APP", "/app")))
    parser.add_argument("--wait", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for all --wait together")
    parser.add_argument("--pull", action="append", default=[], metavar="OUTPUT")
    args = parser.parse_args(argv)
    if args.pull and args.workspace is None:
        parser.error("--pull needs a workspace")
    if args.workspace is not None:
        copy_project(args.source, args.workspace)
    wait_for(args.wait, args.timeout)
    if args.pull:
        pull(args.workspace, args.pull, os.environ.get("DVC_REMOTE_URL", ""))
    if args.workspace is not None:
        print(f"textclf-workspace: {args.workspace} ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
