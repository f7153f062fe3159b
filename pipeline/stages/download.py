"""download stage: fetch the dataset, verify its checksums, lay it out in data/raw/.

Files are kept in a download cache (.cache/downloads/) and verified on every run, so a re-run
fetches nothing; data/raw/ is then rebuilt from the cache and swapped in whole, with
data/raw/manifest.json recording each file's source, size and sha256.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from pipeline.core import log, recording
from pipeline.core.cli import run_stage, stage_parser
from pipeline.core.config import Params
from pipeline.core.errors import StageError
from pipeline.data.datasets import KNOWN
from pipeline.data.downloads import MIRROR_ENV, download

# What this stage reads from params.yaml; dvc.yaml lists exactly these (a test checks).
READS = ("dataset.name", "dataset.table.source", "dataset.table.sha256", "download")


def _body(params: Params, args) -> None:
    mirror = os.environ.get(MIRROR_ENV) or None
    if mirror and "://" not in mirror and not Path(mirror).is_dir():
        raise StageError(f"{MIRROR_ENV}={mirror}: no such folder")
    manifest = download(params.dataset, params.download, mirror=mirror)
    for f in manifest["files"]:
        log.info(f"download: {f['path']}  {f['size']:,} bytes  sha256 {f['sha256'][:12]}…  from {f['source']}")
    recording.record_download(manifest, params.dataset.name)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m pipeline.download", __doc__ + f"""
datasets: {', '.join(KNOWN)} (canonical URLs, pinned checksums), or `table` for your own
CSV / TSV / JSONL / Parquet file (dataset.table.source: a local path or URL).

environment:
  {MIRROR_ENV}   a folder or base URL holding <dataset>/<file name>; used instead of
                         the canonical hosts (air-gapped machines, CI). Checksums still apply.
  PIPELINE_CACHE_DIR     where downloads are cached (default: .cache)""")
    return run_stage("download", _body, parser, argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
