"""The download stage against a real HTTP server on 127.0.0.1 and local folders."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from helpers.httpsite import free_port
from pipeline.core.config import DatasetParams, DownloadParams, TableSource
from pipeline.core.errors import ChecksumMismatch, FetchError
from pipeline.data.datasets import KNOWN, DatasetSpec, RemoteFile
from pipeline.data.downloads import download, fetch_known, mirror_location
from pipeline.data.readers import load_documents
from pipeline.stages.download import main

FAST = DownloadParams(retries=1, timeout=5, backoff=0)
CSV = "제목,내용,분류\n가,나,행정\n다,라,경제\n".encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec_for(files: dict[str, bytes], urls: dict[str, tuple[str, ...]] | None = None,
             extra_variant: dict[str, bytes] | None = None) -> DatasetSpec:
    urls = urls or {}
    variants = [tuple(RemoteFile(n, f"sha256:{sha256(b)}", urls.get(n, ())) for n, b in files.items())]
    if extra_variant:
        variants.append(tuple(RemoteFile(n, f"sha256:{sha256(b)}") for n, b in extra_variant.items()))
    return DatasetSpec("demo", "demo", tuple(variants), official_test=False)


def table(source: str, **kw) -> DatasetParams:
    return DatasetParams(name="table", table=TableSource(source=source, text_columns=("제목", "내용"),
                                                         label_column="분류", **kw))


def test_mirror_location_for_folders_and_urls():
    assert mirror_location("/m", "nsmc", "ratings_train.txt") == "/m/nsmc/ratings_train.txt"
    assert mirror_location("http://h/base/", "imdb", "a b.tgz") == "http://h/base/imdb/a%20b.tgz"


def test_table_from_a_local_path_is_laid_out_with_a_manifest(in_tmp):
    (in_tmp / "mine.csv").write_bytes(CSV)
    manifest = download(table("mine.csv"), FAST)
    raw = in_tmp / "data" / "raw"
    assert (raw / "table" / "mine.csv").read_bytes() == CSV
    (entry,) = manifest["files"]
    assert entry == {"name": "mine.csv", "path": "table/mine.csv", "source": "mine.csv", "size": len(CSV),
                     "sha256": sha256(CSV), "checksum": None}
    assert json.loads((raw / "manifest.json").read_text()) == manifest
    docs = load_documents(raw, table("mine.csv"))
    assert docs["text"].tolist() == ["가 나", "다 라"]
    # A re-run writes byte-identical outputs, so DVC sees nothing new downstream.
    before = (raw / "manifest.json").read_bytes()
    download(table("mine.csv"), FAST)
    assert (raw / "manifest.json").read_bytes() == before


def test_table_pin_mismatch_keeps_the_previous_raw_data(in_tmp):
    (in_tmp / "mine.csv").write_bytes(CSV)
    download(table("mine.csv"), FAST)
    (in_tmp / "mine.csv").write_bytes(CSV + "마,바,복지\n".encode())
    with pytest.raises(ChecksumMismatch, match="expected sha256:" + sha256(CSV)):
        download(table("mine.csv", sha256=sha256(CSV)), FAST)
    assert (in_tmp / "data" / "raw" / "table" / "mine.csv").read_bytes() == CSV


def test_table_from_a_url(in_tmp, site):
    site.files["/d/mine.csv"] = CSV
    manifest = download(table(site.url("/d/mine.csv")), FAST)
    assert manifest["files"][0]["source"] == site.url("/d/mine.csv")
    assert (in_tmp / "data" / "raw" / "table" / "mine.csv").read_bytes() == CSV


def test_missing_table_file_names_the_parameter(in_tmp):
    with pytest.raises(FetchError, match="dataset.table.source: 'nope.csv' is not a file"):
        download(table("nope.csv"), FAST)


def test_known_dataset_from_an_http_mirror_is_fetched_once(in_tmp, site):
    spec = spec_for({"a.csv": CSV, "b.txt": b"hello"})
    site.files.update({"/mirror/demo/a.csv": CSV, "/mirror/demo/b.txt": b"hello"})
    cache = in_tmp / ".cache" / "downloads"
    got = fetch_known(spec, FAST, cache, site.url("/mirror"))
    assert [r.sha256 for _, r in got] == [sha256(CSV), sha256(b"hello")]
    assert got[0][1].source == site.url("/mirror/demo/a.csv")
    again = fetch_known(spec, FAST, cache, site.url("/mirror"))
    assert sum(site.hits.values()) == 2                       # nothing fetched the second time
    assert [r.source for _, r in again] == [r.source for _, r in got]


def test_a_corrupted_cached_file_is_fetched_again(in_tmp, site):
    spec = spec_for({"a.csv": CSV})
    site.files["/m/demo/a.csv"] = CSV
    cache = in_tmp / ".cache" / "downloads"
    fetch_known(spec, FAST, cache, site.url("/m"))
    (cache / "demo" / "a.csv").write_bytes(b"bit rot")
    fetch_known(spec, FAST, cache, site.url("/m"))
    assert (cache / "demo" / "a.csv").read_bytes() == CSV and site.hits["/m/demo/a.csv"] == 2


def test_mirror_may_serve_the_repackaged_variant(in_tmp, tmp_path):
    spec = spec_for({"canonical.tgz": b"canonical"}, urls={"canonical.tgz": ("http://127.0.0.1:9/x",)},
                    extra_variant={"repack.tgz": b"repack"})
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "repack.tgz").write_bytes(b"repack")
    ((file, result),) = fetch_known(spec, FAST, in_tmp / "cache", str(mirror))
    assert file.name == "repack.tgz" and result.sha256 == sha256(b"repack")


def test_wrong_bytes_on_the_mirror_are_never_masked_by_another_variant(in_tmp, tmp_path):
    spec = spec_for({"canonical.tgz": b"canonical"}, extra_variant={"repack.tgz": b"repack"})
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    (mirror / "demo" / "canonical.tgz").write_bytes(b"tampered")
    (mirror / "demo" / "repack.tgz").write_bytes(b"repack")
    with pytest.raises(ChecksumMismatch, match="demo/canonical.tgz"):
        fetch_known(spec, FAST, in_tmp / "cache", str(mirror))


def test_offline_error_names_the_url_and_both_ways_around(in_tmp):
    url = f"http://127.0.0.1:{free_port()}/seoul-120-text.csv"
    spec = spec_for({"seoul-120-text.csv": CSV}, urls={"seoul-120-text.csv": (url,)})
    with pytest.raises(FetchError) as err:
        fetch_known(spec, FAST, in_tmp / ".cache" / "downloads", mirror=None)
    message = str(err.value)
    assert url in message
    assert "PIPELINE_DATA_MIRROR" in message
    assert str(in_tmp / ".cache" / "downloads" / "demo" / "seoul-120-text.csv") in message


def test_cli_reports_a_missing_mirror_folder(in_tmp, mlflow_store, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_DATA_MIRROR", str(in_tmp / "no-such-mirror"))
    (in_tmp / "params.yaml").write_text("dataset:\n  name: seoul120\n")
    assert main(["--params", "params.yaml"]) == 2
    assert "PIPELINE_DATA_MIRROR=" in capsys.readouterr().err


def test_help_explains_datasets_and_the_mirror(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "PIPELINE_DATA_MIRROR" in out and "seoul120" in out and "table" in out


# --- the real files in ../shared/data ------------------------------------------------------

@pytest.mark.shared
def test_seoul120_through_an_http_mirror_of_the_shared_data(in_tmp, site, shared_data):
    body = (shared_data / "seoul120" / "seoul-120-text.csv").read_bytes()
    site.files["/mirror/seoul120/seoul-120-text.csv"] = body
    manifest = download(DatasetParams(name="seoul120"), FAST, mirror=site.url("/mirror"))
    assert "sha256:" + manifest["files"][0]["sha256"] == KNOWN["seoul120"].variants[0][0].checksum
    docs = load_documents(in_tmp / "data" / "raw", DatasetParams(name="seoul120"))
    assert len(docs) == 2645
    assert docs["label"].value_counts()[["행정", "경제", "복지"]].tolist() == [1098, 823, 217]


@pytest.mark.shared
def test_the_manifest_is_the_same_wherever_the_mirror_and_the_clone_are(in_tmp, shared_data, monkeypatch):
    """Two clones, each with its own mirror folder and cache: the same data/raw bytes, so DVC sees
    no new data on a teammate's machine (the manifest used to hold the mirror's absolute path)."""
    manifests = []
    for clone in ("one", "two"):
        mirror = in_tmp / clone / "shared" / "data"
        (mirror / "seoul120").mkdir(parents=True)
        shutil.copyfile(shared_data / "seoul120" / "seoul-120-text.csv", mirror / "seoul120" / "seoul-120-text.csv")
        monkeypatch.setenv("PIPELINE_CACHE_DIR", str(in_tmp / clone / ".cache"))
        raw = in_tmp / clone / "data" / "raw"
        for _ in range(2):   # the second run takes the file from the download cache
            manifest = download(DatasetParams(name="seoul120"), FAST, raw_dir=raw, mirror=str(mirror))
            manifests.append((raw / "manifest.json").read_bytes())
    assert manifest["files"][0]["source"] == "$PIPELINE_DATA_MIRROR/seoul120/seoul-120-text.csv"
    assert len(set(manifests)) == 1


@pytest.mark.shared
def test_rebuilt_nsmc_is_refused_as_canonical_nsmc(in_tmp, shared_data):
    with pytest.raises(ChecksumMismatch) as err:
        download(DatasetParams(name="nsmc"), FAST, mirror=str(shared_data))
    assert "nsmc/ratings_train.txt" in str(err.value) and "dataset.name: table" in str(err.value)


@pytest.mark.shared
def test_shared_nsmc_runs_as_a_table(in_tmp, shared_data):
    params = DatasetParams(name="table", table=TableSource(
        source=str(shared_data / "nsmc" / "ratings_train.txt"), text_columns=("document",),
        label_column="label", id_column="id",
        sha256="fa80d8a66e9c7b0c9b1ade949bb5f38835e8640a884b3573df5643982ba532f7"))
    download(params, FAST)
    docs = load_documents(in_tmp / "data" / "raw", params)
    assert len(docs) == 150_000
    assert docs["label"].value_counts().to_dict() == {"0": 75_173, "1": 74_827}


@pytest.mark.shared
def test_imdb_from_the_shared_mirror_uses_the_repackaged_archive(in_tmp, shared_data):
    manifest = download(DatasetParams(name="imdb"), FAST, mirror=str(shared_data))
    assert [f["name"] for f in manifest["files"]] == ["aclImdb_train_test.tar.gz"]
    docs = load_documents(in_tmp / "data" / "raw", DatasetParams(name="imdb"))
    counts = docs.groupby(["split", "label"]).size().to_dict()
    assert counts == {("test", "neg"): 12500, ("test", "pos"): 12500,
                      ("train", "neg"): 12500, ("train", "pos"): 12500}
