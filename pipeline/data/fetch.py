"""Download (or copy) one input file atomically, with retries, mirrors and checksums.

Pipeline stages call :func:`fetch` with an ordered list of sources (mirrors, a
local cache path, ...). The first source that delivers the full file wins; the
bytes land in a temp file next to ``dest`` and are only moved into place after
they were fsync'd and verified, so an interrupted or corrupt download can never
replace a good file that DVC already tracks.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from pipeline.core.errors import ChecksumMismatch, FetchError, mask_credentials

__all__ = [
    "ChecksumMismatch",
    "FetchError",
    "FetchResult",
    "fetch",
    "file_digests",
    "masked_url",
    "parse_checksum",
    "verify",
]

CHUNK_SIZE = 1024 * 1024
USER_AGENT = "text-classification-pipeline/fetch (+python-urllib)"

# Accepted checksum forms: algorithm name -> number of hex digits.
_HEX_LENGTHS = {"sha256": 64, "md5": 32, "git-blob": 40}
_HEX_RE = re.compile(r"[0-9a-f]+")

# Resolver answers that will not change on a retry.
_UNKNOWN_HOST = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}

# Errors that mean "the connection failed", so trying again may help.
# HTTPError is a URLError subclass but is classified by status code first.
_TRANSIENT_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine
    ConnectionError,
    TimeoutError,
)

# A user without a password is often a token (https://<token>@host/...).
_USER_ONLY = re.compile(r"(://)[^/@:\s'\"]+@")


def masked_url(text: str) -> str:
    """The text with every URL's password (user:***@), lone user (***@) and secret-looking query
    value (?token=***) masked: what outputs, logs and messages may say of a source."""
    return _USER_ONLY.sub(r"\1***@", mask_credentials(text))


@dataclass(frozen=True)
class FetchResult:
    source: str  # the URL (secrets masked) or local path actually used
    size: int
    sha256: str


class _Transient(Exception):
    """Attempt failed in a way worth retrying on the same source."""


class _SourceFailed(Exception):
    """This source cannot deliver the file; move on to the next one."""


# --------------------------------------------------------------------------- checksums


def parse_checksum(spec: str) -> tuple[str, str]:
    """Split ``"<algo>:<hex>"`` into ``(algo, lowercase hex)`` or raise ValueError."""
    algo, sep, digest = spec.strip().partition(":")
    algo, digest = algo.lower(), digest.lower()
    expected_len = _HEX_LENGTHS.get(algo)
    if not sep or expected_len is None or len(digest) != expected_len or not _HEX_RE.fullmatch(digest):
        allowed = ", ".join(f"{name}:<{n} hex>" for name, n in _HEX_LENGTHS.items())
        raise ValueError(f"invalid checksum {spec!r}: expected one of {allowed}")
    return algo, digest


def _new_hashers(algos: Iterable[str], size: int | None) -> dict[str, Any]:
    """Create hash objects; git-blob is skipped when the size is not known yet."""
    hashers: dict[str, Any] = {}
    for algo in algos:
        if algo == "git-blob":
            # git hashes a header containing the size, so it must be known up front.
            if size is not None:
                hashers[algo] = hashlib.sha1(b"blob %d\0" % size)
        elif algo in _HEX_LENGTHS:
            hashers[algo] = hashlib.new(algo)
        else:
            raise ValueError(f"unsupported digest algorithm {algo!r}; use one of {sorted(_HEX_LENGTHS)}")
    return hashers


def file_digests(path: Path, algos: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hash ``path`` once, returning a hex digest for every requested algorithm."""
    path = Path(path)
    hashers = _new_hashers(algos, os.stat(path).st_size)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            for h in hashers.values():
                h.update(chunk)
    return {algo: h.hexdigest() for algo, h in hashers.items()}


def _mismatch_message(label: str, where: str, algo: str, expected: str, actual: str) -> str:
    if label.startswith("table/"):
        # The user's own file, pinned by dataset.table.sha256: the pin, not the dataset, is at issue.
        advice = (f"If this file is the one you mean, set dataset.table.sha256 to {actual} "
                  "(or clear it to take the file unpinned).")
    else:
        advice = ("The source serves a different file (a modified or rebuilt copy: use it as your own "
                  "data with dataset.name: table).")
    return (f"checksum mismatch for {label} ({where}): expected {algo}:{expected}, got {algo}:{actual}. "
            f"The file is complete but is not the pinned one. {advice}")


def verify(path: Path, checksum: str, *, label: str) -> str:
    """Check ``path`` against ``checksum``; return its sha256 or raise ChecksumMismatch."""
    algo, expected = parse_checksum(checksum)
    digests = file_digests(Path(path), {"sha256", algo})
    if digests[algo] != expected:
        raise ChecksumMismatch(_mismatch_message(label, str(path), algo, expected, digests[algo]))
    return digests["sha256"]


# --------------------------------------------------------------------------- sources


def _is_http(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def _local_path(source: str) -> Path:
    """Map a file:// URL or a plain path to a filesystem path."""
    if source.lower().startswith("file://"):
        parsed = urllib.parse.urlparse(source)
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(source).expanduser()


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    try:
        length = int(resp.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def _describe(exc: BaseException) -> str:
    """Short error text; timeouts otherwise stringify to an unhelpful 'timed out'."""
    if isinstance(exc, TimeoutError):
        return f"timed out ({exc})"
    return str(exc) or type(exc).__name__


def _basic_auth(url: str) -> tuple[str, str | None]:
    """The URL without its user:password@ (urllib would take them for the host), and the HTTP basic
    Authorization header they make; without them, the host's login in ~/.netrc ($NETRC), as curl and
    pip read it (None when there is none)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        login = _netrc_login(parts.hostname or "")
        if login is None:
            return url, None
        user, password = login
    else:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])), f"Basic {token}"


def _netrc_login(host: str) -> tuple[str, str] | None:
    import netrc

    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not host or not os.path.isfile(path):
        return None
    try:
        found = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        raise FetchError(f"{path}: cannot be read ({exc}); fix it or remove it") from None
    return (found[0], found[2] or "") if found else None


@contextmanager
def _open_http(url: str, timeout: float) -> Iterator[tuple[IO[bytes], int | None]]:
    """Open ``url``; classify every network error raised while it is being read."""
    url, auth = _basic_auth(url)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if auth:
        # Unredirected: urllib copies the other headers onto a redirect, whatever host it points to.
        request.add_unredirected_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            yield resp, _content_length(resp)
    except urllib.error.HTTPError as exc:
        exc.close()
        # Server overload / rate limiting may clear up; other 4xx will not.
        if exc.code == 429 or exc.code >= 500:
            raise _Transient(str(exc)) from exc
        raise _SourceFailed(str(exc)) from exc
    except urllib.error.URLError as exc:
        # "Name or service not known" is the resolver's final answer (no network, or a wrong
        # host): retrying it only makes an offline user wait. EAI_AGAIN stays transient.
        if isinstance(exc.reason, socket.gaierror) and exc.reason.errno in _UNKNOWN_HOST:
            raise _SourceFailed(_describe(exc)) from exc
        raise _Transient(_describe(exc)) from exc
    except _TRANSIENT_ERRORS as exc:
        raise _Transient(_describe(exc)) from exc


@contextmanager
def _open_local(path: Path) -> Iterator[tuple[IO[bytes], int | None]]:
    """Open a local file; any I/O problem makes this source unusable (no retry)."""
    try:
        with open(path, "rb") as f:
            yield f, os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise _SourceFailed(f"cannot copy local file: {exc.strerror or exc}") from exc


def _open_source(source: str, timeout: float):
    return _open_http(source, timeout) if _is_http(source) else _open_local(_local_path(source))


# --------------------------------------------------------------------------- download


@dataclass(frozen=True)
class _Options:
    label: str
    algo: str | None
    expected: str | None
    retries: int
    timeout: float
    backoff: float
    progress: bool


def _want_progress(progress: bool | None) -> bool:
    if progress is None:
        # Auto mode: bars in CI logs / DVC output captures are just noise.
        return sys.stderr is not None and sys.stderr.isatty()
    return progress


def _pump(stream: IO[bytes], out: IO[bytes], hashers: dict[str, Any], bar: tqdm) -> int:
    """Copy ``stream`` to ``out`` in chunks, hashing on the way; return bytes copied."""
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        out.write(chunk)
        for h in hashers.values():
            h.update(chunk)
        size += len(chunk)
        bar.update(len(chunk))
    return size


def _stream_to(source: str, out: IO[bytes], opts: _Options) -> tuple[int, dict[str, str]]:
    """Stream one source into ``out``; return (size, digests computed on the fly)."""
    algos = {"sha256"} | ({opts.algo} if opts.algo else set())
    with _open_source(source, opts.timeout) as (stream, total):
        hashers = _new_hashers(algos, total)
        with tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024,
            desc=opts.label, file=sys.stderr, disable=not opts.progress, leave=False,
        ) as bar:
            size = _pump(stream, out, hashers, bar)
        if total is not None and size < total and _is_http(source):
            # http.client returns b"" instead of raising when the peer hangs up early.
            raise _Transient(f"connection dropped after {size} of {total} bytes")
    digests = {algo: h.hexdigest() for algo, h in hashers.items()}
    if total != size:
        # The git-blob header used a size that turned out wrong (or none was known).
        digests.pop("git-blob", None)
    return size, digests


def _check(tmp_path: Path, source: str, digests: dict[str, str], opts: _Options) -> None:
    if opts.algo is None:
        return
    if opts.algo not in digests:  # git-blob without an up-front size: hash the temp file
        digests.update(file_digests(tmp_path, [opts.algo]))
    if digests[opts.algo] != opts.expected:
        raise ChecksumMismatch(
            _mismatch_message(opts.label, _shown(source), opts.algo, opts.expected or "", digests[opts.algo])
        )


def _attempt(source: str, dest: Path, opts: _Options) -> FetchResult:
    """One try: download to a temp file, verify, then atomically replace ``dest``."""
    tmp = tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, prefix=f".{dest.name}.", suffix=".part")
    tmp_path = Path(tmp.name)
    try:
        with tmp:
            size, digests = _stream_to(source, tmp, opts)
            tmp.flush()
            os.fsync(tmp.fileno())  # data must be on disk before the rename makes it visible
        _check(tmp_path, source, digests, opts)
        os.replace(tmp_path, dest)
    except BaseException:  # includes KeyboardInterrupt: never leave .part litter behind
        tmp_path.unlink(missing_ok=True)
        raise
    return FetchResult(source=_shown(source), size=size, sha256=digests["sha256"])


def _shown(source: str) -> str:
    """A source as results and messages name it: a URL masked, a local path as it is."""
    return masked_url(source) if _is_http(source) else source


def _fetch_from(source: str, dest: Path, opts: _Options) -> FetchResult:
    """Try one source with retries on transient errors; raise _SourceFailed if it gives up."""
    last_error = "no attempt made"
    for attempt in range(opts.retries + 1):
        try:
            return _attempt(source, dest, opts)
        except _Transient as exc:
            last_error = str(exc)
        except OSError as exc:  # e.g. disk full writing the temp file: not worth retrying
            raise _SourceFailed(_describe(exc)) from exc
        if attempt < opts.retries:
            time.sleep(opts.backoff * 2**attempt)
    raise _SourceFailed(last_error)


def fetch(
    sources: Sequence[str],
    dest: Path,
    *,
    checksum: str | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    label: str | None = None,
    progress: bool | None = None,
) -> FetchResult:
    """Fetch ``dest`` from the first working source; see the module docstring."""
    if isinstance(sources, str):  # a bare string would be iterated char by char
        sources = [sources]
    dest = Path(dest)
    algo, expected = parse_checksum(checksum) if checksum else (None, None)
    opts = _Options(
        label=label or dest.name, algo=algo, expected=expected, retries=max(0, retries),
        timeout=timeout, backoff=backoff, progress=_want_progress(progress),
    )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"could not fetch {opts.label}: cannot create {dest.parent}: {_describe(exc)}") from exc
    failures: list[str] = []
    for source in sources:
        try:
            return _fetch_from(str(source), dest, opts)
        except _SourceFailed as exc:
            failures.append(f"{_shown(str(source))}: {exc}")
    raise FetchError(_all_failed_message(opts.label, dest, failures))


def _all_failed_message(label: str, dest: Path, failures: list[str]) -> str:
    # Callers add the ways around it that fit their context (mirror, placing the file by hand).
    tried = "; ".join(failures) if failures else "no sources were given"
    return f"could not fetch {label}: {tried}"
