"""Tests for pipeline.fetch against a real HTTP server on 127.0.0.1 (no network mocks)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.httpsite import Site  # the `site` fixture (conftest.py) serves one
from helpers.httpsite import free_port as _free_port
from pipeline.core.errors import ChecksumMismatch, FetchError
from pipeline.data.fetch import FetchResult, fetch, file_digests, parse_checksum, verify

PAYLOAD = os.urandom(300_000) + b"label,text\n1,hello\n"


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.part"))


def _git_blob(path: Path) -> str:
    if shutil.which("git"):
        out = subprocess.run(["git", "hash-object", str(path)], check=True, capture_output=True, text=True)
        return out.stdout.strip()
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --------------------------------------------------------------------------- tests


def test_happy_path(site: Site, tmp_path: Path) -> None:
    site.files["/data.csv"] = PAYLOAD
    dest = tmp_path / "out" / "data.csv"  # parent does not exist yet
    result = fetch([site.url("/data.csv")], dest, backoff=0, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert result == FetchResult(site.url("/data.csv"), len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())
    assert _parts(dest.parent) == []
    assert site.hits["/data.csv"] == 1


def test_all_checksum_kinds_accepted(site: Site, tmp_path: Path) -> None:
    site.files["/data.csv"] = PAYLOAD
    ref = tmp_path / "ref.bin"
    ref.write_bytes(PAYLOAD)
    specs = [
        f"sha256:{hashlib.sha256(PAYLOAD).hexdigest()}",
        f"md5:{hashlib.md5(PAYLOAD).hexdigest().upper()}",  # case-insensitive
        f"git-blob:{_git_blob(ref)}",
    ]
    for spec in specs:
        dest = tmp_path / f"{spec.split(':')[0]}.csv"
        result = fetch([site.url("/data.csv")], dest, checksum=spec, backoff=0, progress=False)
        assert dest.read_bytes() == PAYLOAD
        assert result.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
        assert verify(dest, spec, label="x") == result.sha256
    assert file_digests(ref, ("sha256", "md5", "git-blob")) == {
        "sha256": hashlib.sha256(PAYLOAD).hexdigest(),
        "md5": hashlib.md5(PAYLOAD).hexdigest(),
        "git-blob": _git_blob(ref),
    }


def test_git_blob_without_content_length(site: Site, tmp_path: Path) -> None:
    site.files["/data.csv"] = PAYLOAD
    site.no_length.add("/data.csv")
    ref = tmp_path / "ref.bin"
    ref.write_bytes(PAYLOAD)
    dest = tmp_path / "data.csv"
    result = fetch([site.url("/data.csv")], dest, checksum=f"git-blob:{_git_blob(ref)}", progress=False)
    assert dest.read_bytes() == PAYLOAD and result.size == len(PAYLOAD)
    with pytest.raises(ChecksumMismatch):
        fetch([site.url("/data.csv")], tmp_path / "bad.csv", checksum="git-blob:" + "0" * 40, progress=False)
    assert not (tmp_path / "bad.csv").exists() and _parts(tmp_path) == []


def test_checksum_mismatch_not_retried_and_dest_kept(site: Site, tmp_path: Path) -> None:
    site.files["/data.csv"] = PAYLOAD
    site.files["/mirror.csv"] = PAYLOAD
    dest = tmp_path / "data.csv"
    dest.write_bytes(b"old content")
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatch) as info:
        fetch([site.url("/data.csv"), site.url("/mirror.csv")], dest,
              checksum=f"sha256:{wrong}", retries=3, backoff=0, label="seoul.csv", progress=False)
    msg = str(info.value)
    assert wrong in msg and hashlib.sha256(PAYLOAD).hexdigest() in msg
    assert "seoul.csv" in msg and site.url("/data.csv") in msg
    assert dest.read_bytes() == b"old content"
    assert _parts(tmp_path) == []
    assert site.hits["/data.csv"] == 1 and site.hits["/mirror.csv"] == 0


def test_verify_mismatch_message(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    with pytest.raises(ChecksumMismatch, match=r"checksum mismatch for lbl \(.*f\.bin\): expected md5:0{32}, got md5:"):
        verify(path, "md5:" + "0" * 32, label="lbl")


def test_dropped_connection_is_retried(site: Site, tmp_path: Path) -> None:
    site.files["/flaky.csv"] = PAYLOAD
    site.drop_first_n["/flaky.csv"] = 1
    dest = tmp_path / "flaky.csv"
    result = fetch([site.url("/flaky.csv")], dest, retries=2, backoff=0, progress=False)
    assert dest.read_bytes() == PAYLOAD and result.size == len(PAYLOAD)
    assert site.hits["/flaky.csv"] == 2
    assert _parts(tmp_path) == []


def test_dropped_connection_gives_up(site: Site, tmp_path: Path) -> None:
    site.files["/flaky.csv"] = PAYLOAD
    site.drop_first_n["/flaky.csv"] = 5
    dest = tmp_path / "flaky.csv"
    with pytest.raises(FetchError) as info:
        fetch([site.url("/flaky.csv")], dest, retries=1, backoff=0, progress=False)
    assert not isinstance(info.value, ChecksumMismatch)
    assert "connection dropped" in str(info.value) and site.url("/flaky.csv") in str(info.value)
    assert site.hits["/flaky.csv"] == 2
    assert not dest.exists() and _parts(tmp_path) == []


def test_404_falls_through_without_retry(site: Site, tmp_path: Path) -> None:
    site.files["/good.csv"] = PAYLOAD
    dest = tmp_path / "data.csv"
    result = fetch([site.url("/missing.csv"), site.url("/good.csv")], dest, retries=3, backoff=0, progress=False)
    assert result.source == site.url("/good.csv")
    assert dest.read_bytes() == PAYLOAD
    assert site.hits["/missing.csv"] == 1


def test_500_retried_then_falls_through(site: Site, tmp_path: Path) -> None:
    site.status["/broken.csv"] = 500
    site.files["/good.csv"] = PAYLOAD
    dest = tmp_path / "data.csv"
    result = fetch([site.url("/broken.csv"), site.url("/good.csv")], dest, retries=2, backoff=0, progress=False)
    assert result.source == site.url("/good.csv")
    assert site.hits["/broken.csv"] == 3  # first try + 2 retries
    assert site.hits["/good.csv"] == 1


def test_all_sources_fail_lists_each(site: Site, tmp_path: Path) -> None:
    site.status["/a"] = 403
    site.status["/b"] = 503
    with pytest.raises(FetchError) as info:
        fetch([site.url("/a"), site.url("/b")], tmp_path / "x.csv", retries=1, backoff=0, progress=False)
    msg = str(info.value)
    assert msg.startswith("could not fetch x.csv: ")
    assert f"{site.url('/a')}: HTTP Error 403" in msg and f"{site.url('/b')}: HTTP Error 503" in msg
    assert site.hits["/a"] == 1 and site.hits["/b"] == 2


def test_local_path_and_file_url(tmp_path: Path) -> None:
    src = tmp_path / "src dir" / "data.csv"  # space exercises file:// quoting
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    spec = f"sha256:{hashlib.sha256(PAYLOAD).hexdigest()}"
    for i, source in enumerate([str(src), src.as_uri()]):
        dest = tmp_path / f"copy{i}.csv"
        result = fetch([source], dest, checksum=spec, progress=False)
        assert dest.read_bytes() == PAYLOAD
        assert result.source == source and result.size == len(PAYLOAD)
    assert _parts(tmp_path) == []


def test_missing_local_then_url(site: Site, tmp_path: Path) -> None:
    site.files["/data.csv"] = PAYLOAD
    dest = tmp_path / "data.csv"
    result = fetch([str(tmp_path / "nope.csv"), site.url("/data.csv")], dest, backoff=0, progress=False)
    assert result.source == site.url("/data.csv")
    assert dest.read_bytes() == PAYLOAD


def test_offline_fails_fast_with_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/seoul-120-text.csv"
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch([url], tmp_path / "seoul-120-text.csv", retries=0, timeout=2, backoff=0, progress=False)
    assert time.monotonic() - start < 5
    assert url in str(info.value)
    assert str(info.value).startswith("could not fetch seoul-120-text.csv: ")


@pytest.mark.parametrize("spec", ["sha1:abc", "sha256:xyz", "nonsense", "sha256:" + "a" * 63, "md5:"])
def test_parse_checksum_rejects(spec: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_checksum(spec)
    assert repr(spec) in str(info.value) and "sha256:<64 hex>" in str(info.value)


def test_parse_checksum_accepts() -> None:
    assert parse_checksum("SHA256:" + "AB" * 32) == ("sha256", "ab" * 32)
    assert parse_checksum("git-blob:" + "1" * 40) == ("git-blob", "1" * 40)


def test_failed_copy_leaves_dest_intact(tmp_path: Path) -> None:
    dest = tmp_path / "data.csv"
    dest.write_bytes(b"old content")
    not_a_file = tmp_path / "a_directory"
    not_a_file.mkdir()
    with pytest.raises(FetchError) as info:
        fetch([str(not_a_file)], dest, progress=False)
    assert str(not_a_file) in str(info.value)
    assert dest.read_bytes() == b"old content"
    assert _parts(tmp_path) == []


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_keyboard_interrupt_cleans_up(site: Site, tmp_path: Path) -> None:
    site.files["/slow.csv"] = PAYLOAD
    site.interrupt.add("/slow.csv")
    dest = tmp_path / "data.csv"
    dest.write_bytes(b"old content")
    # A shell that starts the suite in the background (nohup, `&`) ignores SIGINT in it; Python's
    # own Ctrl-C handler is put back for the test, so it runs wherever the suite was started.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            fetch([site.url("/slow.csv")], dest, timeout=5, backoff=0, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert dest.read_bytes() == b"old content"
    assert _parts(tmp_path) == []
    assert site.hits["/slow.csv"] == 1  # Ctrl-C is never retried


def test_progress_bar_written_to_stderr(site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site.files["/data.csv"] = PAYLOAD
    fetch([site.url("/data.csv")], tmp_path / "a.csv", label="my-label", progress=True)
    assert "my-label" in capsys.readouterr().err
    fetch([site.url("/data.csv")], tmp_path / "b.csv", label="my-label", progress=False)
    assert "my-label" not in capsys.readouterr().err


def test_unknown_host_is_not_retried(tmp_path: Path) -> None:
    """No network (or a wrong host name) fails at once: retrying a resolver's "no such name" only
    makes an offline user wait (with backoff=5 and 3 retries this would take 35 s)."""
    url = "http://pipeline-test-host.invalid/data.csv"     # .invalid never resolves (RFC 2606)
    started = time.monotonic()
    with pytest.raises(FetchError, match="pipeline-test-host.invalid"):
        fetch([url], tmp_path / "data.csv", retries=3, backoff=5, timeout=5)
    assert time.monotonic() - started < 5
