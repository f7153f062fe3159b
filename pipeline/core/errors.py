"""One base class for every failure the user can cause and fix.

The command-line frame (core/cli.py) catches `PipelineError` in one place, prints its message as one
line and exits 2; anything else is a bug and keeps its traceback. Each subclass says what kind of
input was wrong, and its message names the file, row, key or parameter.
"""
from __future__ import annotations

import re
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# user:password@ in any text: a URL (postgresql://optuna:pw@db/optuna, http://me:pw@host), a URL
# missing its "://", an error that quotes the URL it could not parse. The password ends at "@", so
# one holding "/" is masked too; "scheme:" followed by "//" is a scheme, not a user.
_USERINFO = re.compile(r"((?://|^|[\s'\"/])[^/:@\s'\"]*:)(?!//)[^@\s'\"]*@")


# Query parameters whose values are secrets: presigned URLs' signatures and credentials
# (X-Amz-Signature, X-Amz-Credential, X-Goog-Signature, Azure's sig), tokens, API keys, passwords.
_SECRET_QUERY = re.compile(
    r"([?&;][^=&#\s'\"]*(?:token|sig|key|pass|pwd|secret|credential|auth)[^=&#\s'\"]*=)[^&#\s'\"]+", re.I)


def mask_credentials(text: str) -> str:
    """The text with the password of every user:password@ in it, and every secret-looking query
    value (?token=, &X-Amz-Signature=), replaced by ***."""
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


def warn(message: str) -> None:
    """A line the user should see on stderr (a stage's output goes to stdout); the work goes on."""
    print(f"warning: {message}", file=sys.stderr)


class PipelineError(Exception):
    """Bad input or a missing prerequisite: printed as one line, exit code 2."""


class ParamsError(PipelineError, ValueError):
    """A bad params.yaml (or experiment file, or tune space): the message names the dotted key."""


class DataError(PipelineError, ValueError):
    """Bad input data: the message names the file, and the row or column where it can."""


class FetchError(PipelineError, RuntimeError):
    """A download failed; the message says where from and what to do."""


class ChecksumMismatch(FetchError):
    """Downloaded bytes differ from the pinned checksum."""


class StageError(PipelineError, RuntimeError):
    """A failure the user can act on (a missing earlier output, an impossible setting)."""


class TrackingError(PipelineError, RuntimeError):
    """The tracking store cannot be reached or used."""


class ExperimentError(PipelineError, ValueError):
    """A bad experiment file or experiments command line."""


@contextmanager
def reading(path: Path, writer: str, checkout: Path | None = None, hint: str = "",
            error: type[PipelineError] = DataError) -> Iterator[None]:
    """Read an output of the `writer` stage: one cut short (a full disk, an interrupted copy) or not
    of its kind is one `error` naming it and how to get it back, not numpy's BadZipFile or pyarrow's
    ArrowInvalid (a ValueError) with a traceback. `checkout`: what `dvc checkout` restores (the file);
    `hint`: another way to get it back (a model bundle's own, core/records.py)."""
    hint = hint or f"rebuild it with `dvc repro {writer}` or `dvc checkout {checkout or path}`"
    try:
        yield
    except PipelineError:
        raise
    except FileNotFoundError:
        raise error(f"{path}: missing; run the {writer} stage (dvc repro {writer})") from None
    except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise error(f"{path}: damaged or not what the {writer} stage writes ({reason}); {hint}") from None
