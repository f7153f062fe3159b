"""The MLflow UI as a person sees it: a real `mlflow server` and headless Chromium (Debian's `chromium`).

Chromium renders the React UI (`--virtual-time-budget` lets its requests and timers run), then
prints the DOM (`--dump-dom`, turned into the page's text here) or saves a PNG (`--screenshot`).
`make screenshots` runs this module over the repo's own store (mlruns/): docs/img/mlflow-runs.png
(the experiment's runs table) and docs/img/mlflow-run.png (its newest finished train run).
"""
from __future__ import annotations

import argparse
import html.parser
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from helpers.httpsite import free_port, server_process

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# MLflow 3.17's UI opens an experiment on the GenAI overview unless the sidebar's switch says
# "Model training" (kept in the browser's localStorage) or the URL does; it does not read the
# experiment's mlflow.experimentKind tag for this (docs/tracking.md).
MODEL_TRAINING = "workflowType=machine_learning"
RENDER_MS = 20_000   # virtual time for the UI to fetch and draw (it takes about 3 s of it)


def chromium() -> str | None:
    """The headless browser's path, None when none is installed."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _browse(url: str, *flags: str, size: tuple[int, int] = (1600, 900), timeout: float = 120) -> str:
    browser = chromium()
    if browser is None:
        raise RuntimeError(f"no headless browser ({', '.join(BROWSERS)}): apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:   # fresh: no remembered UI state
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", "--no-first-run", f"--user-data-dir={profile}",
             f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={RENDER_MS}", *flags, url],
            capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{browser} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


class _Text(html.parser.HTMLParser):
    """The visible text of a DOM: scripts and styles left out, whitespace collapsed."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    HIDDEN = ("script", "style", "noscript")

    def handle_starttag(self, tag, attrs) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1

    def handle_endtag(self, tag) -> None:
        if tag in self.HIDDEN and self._hidden:
            self._hidden -= 1

    def handle_data(self, data) -> None:
        if not self._hidden and data.strip():
            self.parts.append(" ".join(data.split()))


def page_text(url: str, size: tuple[int, int] = (1600, 900)) -> str:
    """The text of the page once the UI has rendered it, pieces separated by " | "."""
    parser = _Text()
    parser.feed(_browse(url, "--dump-dom", size=size))
    return " | ".join(parser.parts)


def screenshot(url: str, path: Path, size: tuple[int, int] = (1600, 900)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _browse(url, f"--screenshot={path.resolve()}", size=size)
    if not path.is_file() or path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        raise RuntimeError(f"{path}: no PNG written")
    return path


@contextmanager
def mlflow_ui(store_uri: str, log_path: Path, wait: float = 120, artifacts: Path | None = None) -> Iterator[str]:
    """`mlflow server` over the store on 127.0.0.1 (one worker, no job runner, as `make ui`); its
    base URL once /health answers. Stopped (its process group) on exit. With `artifacts`, it keeps
    the artifacts of the runs logged through it there (else in ./mlartifacts of the cwd)."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    where = ["--artifacts-destination", str(artifacts)] if artifacts else []
    with server_process([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri,
                         "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *where],
                        port, "/health", log_path, wait, env=env) as base:
        yield base


def experiment_url(base: str, experiment_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}?{MODEL_TRAINING}"


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{MODEL_TRAINING}"


def main(argv: list[str] | None = None) -> int:
    """`make screenshots`: the runs table and the newest train run of the repo's store, as PNGs."""
    parser = argparse.ArgumentParser(prog="make screenshots", description=main.__doc__)
    parser.add_argument("--store", default="mlruns/mlflow.db", help="SQLite store (default: %(default)s)")
    parser.add_argument("--experiment", help="default: textclf-<dataset.name of params.yaml>")
    parser.add_argument("--out", default="docs/img", help="folder of the PNGs (default: %(default)s)")
    args = parser.parse_args(argv)
    store = Path(args.store)
    if not store.is_file():
        parser.exit(2, f"{store}: no MLflow store here; run the pipeline first (make repro)\n")
    if chromium() is None:
        parser.exit(2, "no headless browser: apt-get install chromium (Debian's package)\n")
    import mlflow

    from pipeline.core.config import load_params
    from pipeline.core.tracking import experiment_name

    uri = f"sqlite:///{store.resolve()}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    name = args.experiment or experiment_name(load_params("params.yaml").dataset.name)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"]) if experiment else []
    if not runs:
        parser.exit(2, f"{name}: no finished runs in {store}\n")
    run = next((r for r in runs if r.info.run_name == "train"), runs[0])
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp, mlflow_ui(uri, Path(tmp) / "server.log") as base:
        for path, url, size in ((out / "mlflow-runs.png", experiment_url(base, experiment.experiment_id), (1600, 560)),
                                (out / "mlflow-run.png", run_url(base, experiment.experiment_id, run.info.run_id),
                                 (1600, 1000))):
            screenshot(url, path, size)
            print(f"{path}  {url.replace(base, '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
