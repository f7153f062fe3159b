"""Datasets onto disk: from the download cache, a mirror or the source, checked, laid out in data/raw/.

Files are kept in a download cache (.cache/downloads/) and verified on every run, so a re-run
fetches nothing; data/raw/ is then rebuilt from the cache and swapped in whole, with
data/raw/manifest.json recording each file's source, size and sha256.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, urlsplit

from pipeline.core import paths
from pipeline.core.atomic import atomic_dir
from pipeline.core.config import DatasetParams, DownloadParams, to_dict
from pipeline.core.errors import ChecksumMismatch, FetchError, warn
from pipeline.data.datasets import KNOWN, DatasetSpec, RemoteFile
from pipeline.data.fetch import FetchResult, fetch, masked_url, verify
from pipeline.data.readers import UNKNOWN_FORMAT, format_from_name

MIRROR_ENV = "PIPELINE_DATA_MIRROR"


def mirror_location(mirror: str, dataset: str, name: str) -> str:
    """A mirror is a folder or a base URL holding <dataset>/<file name>."""
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{quote(dataset)}/{quote(name)}"
    return str(Path(mirror) / dataset / name)


def recorded_source(source: str, mirror: str | None, cache_root: Path) -> str:
    """Where a known dataset's file came from, as data/raw/manifest.json records it.

    A URL is kept as it is. A local file is named by $PIPELINE_DATA_MIRROR (or the download cache)
    and its place there, not by its absolute path: that differs between clones, and a manifest
    that differs is new data/raw to DVC, so a teammate's `dvc repro` after `dvc pull` would re-run
    every stage after download.
    """
    if "://" in source:
        return source
    for root, name in ((mirror, f"${MIRROR_ENV}"), (str(cache_root), "download cache")):
        if root and "://" not in root:
            try:
                return f"{name}/{Path(source).resolve().relative_to(Path(root).resolve()).as_posix()}"
            except ValueError:
                continue
    return source


def dataset_record(dataset: DatasetParams) -> dict:
    """The dataset params as outputs record them (manifest.json, tokenize_stats.json): the table's
    source with its password and secret query values (a presigned URL's signature) masked."""
    record = to_dict(dataset)
    record["table"]["source"] = masked_url(dataset.table.source)
    return record


def fetch_cached(file: RemoteFile, sources: list[str], cache: Path, settings: DownloadParams,
                 label: str) -> FetchResult:
    """The file from the download cache when it verifies there, else fetched into it."""
    target = cache / file.name
    source_note = target.with_name(target.name + ".source")
    if target.is_file():
        try:
            sha256 = verify(target, file.checksum, label=label)
            source = source_note.read_text(encoding="utf-8") if source_note.is_file() else str(target)
            return FetchResult(source=source, size=target.stat().st_size, sha256=sha256)
        except ChecksumMismatch:
            print(f"download: cached {target} fails its checksum; fetching it again", file=sys.stderr)
    result = fetch(sources, target, checksum=file.checksum, retries=settings.retries,
                   timeout=settings.timeout, backoff=settings.backoff, label=label)
    source_note.write_text(result.source, encoding="utf-8")
    return result


def fetch_known(spec: DatasetSpec, settings: DownloadParams, cache_root: Path,
                mirror: str | None) -> list[tuple[RemoteFile, FetchResult]]:
    """Fetch the first variant that can be had: canonical hosts, or the mirror when one is set."""
    first_error: FetchError | None = None
    for variant in spec.variants:
        if not mirror and not all(f.urls for f in variant):
            continue    # a mirror-only variant
        try:
            results = []
            for file in variant:
                sources = [mirror_location(mirror, spec.name, file.name)] if mirror else list(file.urls)
                results.append((file, fetch_cached(file, sources, cache_root / spec.name, settings,
                                                   f"{spec.name}/{file.name}")))
            return results
        except ChecksumMismatch:
            raise   # wrong bytes are never papered over by another variant
        except FetchError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise FetchError(f"{first_error} -- {ways_around(spec, cache_root, mirror)}") from None


def ways_around(spec: DatasetSpec, cache_root: Path, mirror: str | None) -> str:
    file = spec.variants[0][0]
    if mirror:
        return (f"check that {MIRROR_ENV}={mirror} holds {spec.name}/{file.name} "
                f"(or unset it to use the canonical host)")
    return (f"no network? Either set {MIRROR_ENV} to a folder or base URL that holds "
            f"{spec.name}/<file> (e.g. {MIRROR_ENV}=../shared/data), or copy {file.name} to "
            f"{cache_root / spec.name / file.name} yourself (it is checked against {file.checksum})")


def fetch_table(dataset: DatasetParams, settings: DownloadParams) -> tuple[RemoteFile, FetchResult, Path]:
    """The user's own file, fetched into a temp folder (it is not pinned, so not cached)."""
    table = dataset.table
    # The name from the URL's path: never its user:password@ host or its query.
    name = os.path.basename((urlsplit(table.source).path if "://" in table.source
                             else table.source).rstrip("/")) or "table"
    file = RemoteFile(name=name, checksum=f"sha256:{table.sha256.lower()}" if table.sha256 else "")
    staging = paths.cache_dir() / "downloads" / "table"
    if "://" not in table.source and not Path(table.source).is_file():
        raise FetchError(f"dataset.table.source: {table.source!r} is not a file "
                         f"(looked from {Path.cwd()})")
    # Checked before anything is copied: a file named like no table (file:///etc/passwd, a mistyped
    # path) never lands in data/raw, where `dvc push` would upload it.
    if table.format == "auto" and format_from_name(Path(name)) is None:
        raise FetchError(f"dataset.table.source: {masked_url(table.source)!r}: {UNKNOWN_FORMAT} "
                         "(nothing was copied)")
    try:
        result = fetch([table.source], staging / name, checksum=file.checksum or None,
                       retries=settings.retries, timeout=settings.timeout, backoff=settings.backoff,
                       label=f"table/{name}")
    except ChecksumMismatch:
        raise
    except FetchError as exc:
        raise FetchError(f"{exc} -- dataset.table.source may also be a local path") from None
    if masked_url(table.source) != table.source:
        # DVC records the param as written in dvc.lock, which git keeps and pushes.
        warn(f"dataset.table.source holds a secret (shown masked: {masked_url(table.source)}); params.yaml and "
             "dvc.lock keep it as written: put a login in ~/.netrc (machine <host> login <user> password <pw>) "
             "instead, and use a presigned URL only while it is valid")
    return file, result, staging / name


def download(dataset: DatasetParams, settings: DownloadParams, raw_dir: Path = paths.RAW_DIR,
             mirror: str | None = None) -> dict:
    """Fetch and lay out the dataset; returns the manifest it wrote."""
    cache_root = paths.cache_dir() / "downloads"
    if dataset.name == "table":
        file, result, local = fetch_table(dataset, settings)
        fetched = [(file, result, local)]
        description, official_test = f"your table {masked_url(dataset.table.source)}", False
    else:
        spec = KNOWN[dataset.name]
        fetched = [(f, replace(r, source=recorded_source(r.source, mirror, cache_root)),
                    cache_root / spec.name / f.name)
                   for f, r in fetch_known(spec, settings, cache_root, mirror)]
        description, official_test = spec.description, spec.official_test
    manifest = {
        "dataset": dataset.name,
        "description": description,
        "official_test": official_test,
        "files": [{"name": f.name, "path": f"{dataset.name}/{f.name}", "source": r.source,
                   "size": r.size, "sha256": r.sha256, "checksum": f.checksum or None}
                  for f, r, _ in fetched],
        "params": {"dataset.name": dataset.name, **(
            {"dataset.table": dataset_record(dataset)["table"]} if dataset.name == "table" else {})},
    }
    with atomic_dir(raw_dir) as tmp:
        (tmp / dataset.name).mkdir()
        for f, _, local in fetched:
            shutil.copyfile(local, tmp / dataset.name / f.name)
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
    return manifest
