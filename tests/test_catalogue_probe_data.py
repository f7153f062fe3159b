"""Probe of the product (issue 36), the data part: inputs a probe gave the download and tokenize stages.

As in tests/test_catalogue_data.py, every case runs the real stage `main()`s in a scratch folder on a
tiny table dataset and checks the exit code, the line the user reads and what the stage wrote.
docs/catalogue.md lists every case.
"""
from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from helpers import httpsite
from helpers.stagecases import Case, frame, run_case, texts, tokens, write_csv


@dataclass
class ProbeCase(Case):
    also: tuple[str, ...] = ()   # further lines the user reads (a warning beside the stage's line)


class Recorder:
    """capsys for run_case, keeping the last output read: the output of the case's last stage."""

    def __init__(self, capsys) -> None:
        self.capsys, self.last = capsys, None

    def readouterr(self):
        self.last = self.capsys.readouterr()
        return self.last


def run(case: Case, root: Path, capsys, monkeypatch) -> str:
    """run_case, then the last stage's stdout + stderr."""
    recorder = Recorder(capsys)
    run_case(case, root, recorder, monkeypatch)
    return recorder.last.out + recorder.last.err


def stats(root: Path) -> dict:
    return json.loads((root / "data" / "tokenize_stats.json").read_text(encoding="utf-8"))


def write_text(name: str, text: str) -> Callable[[Path], str]:
    def write(root: Path) -> str:
        (root / name).write_text(text, encoding="utf-8")
        return name
    return write


def jsonl(records: list[dict]) -> str:
    # ensure_ascii: a lone surrogate is written as the JSON escape "\ud800", as a probe (or a
    # JavaScript program cutting a string between the halves of an emoji) writes it.
    return "".join(json.dumps(r) + "\n" for r in records)


def surrogate_records() -> list[dict]:
    records = [{"id": f"q{i}", "text": t, "label": "ab"[i % 2]} for i, t in enumerate(texts())]
    records[1]["text"] = "\ud800abc " + records[1]["text"]
    records[4]["text"] += " \udfff"
    records[6]["id"] = "q6\udc00"
    return records


def surrogates_are_u_fffd(root: Path) -> None:
    table = tokens(root)
    assert len(table) == 24
    assert table["tokens"].map(list).tolist()[1][0] == "\ufffdabc"
    assert "q6\ufffd" in set(table["id"])


def records_without_text_key() -> list[dict]:
    records: list[dict] = [{"text": t, "label": "ab"[i % 2]} for i, t in enumerate(texts())]
    for i in (4, 8, 11):   # lines 5, 9 and 12
        del records[i]["text"]
    records[13]["text"] = ""
    return records


def dropped_as_missing_not_empty(root: Path) -> None:
    counts = stats(root)
    assert (counts["rows_read"], counts["dropped_missing_text"], counts["dropped_empty_text"],
            counts["documents"]) == (24, 3, 1, 20)


def labels_with_line_breaks() -> pd.DataFrame:
    # Every second label is class "b c", written four ways; three of them need the run collapsed.
    spellings = ["b c", "b\nc", "b\r\nc", "b \t c"]
    return frame(labels=lambda i: "a" if i % 2 == 0 else spellings[(i // 2) % 4])


def labels_are(expected: set[str]) -> Callable[[Path], None]:
    def check(root: Path) -> None:
        assert set(tokens(root)["label"]) == expected
        assert set(stats(root)["labels"]) == expected
    return check


CSV = frame().to_csv(index=False)

CASES = [
    # 7: a lone surrogate made tokenize fail with a pyarrow traceback writing tokens.parquet.
    ProbeCase("jsonl-lone-surrogate", write_text("table.jsonl", jsonl(surrogate_records())),
              ("download", "tokenize"), 0,
              "table.jsonl: 3 record(s) hold a lone surrogate (an unpaired \\ud800-\\udfff escape, not a "
              "character), the first on line 2: read as U+FFFD",
              table={"id_column": "id"}, check=surrogates_are_u_fffd, also=("tokenize: 24 documents",)),
    # 8: records without the text key were counted as empty texts.
    ProbeCase("jsonl-records-without-text-key", write_text("table.jsonl", jsonl(records_without_text_key())),
              ("download", "tokenize"), 0,
              "table.jsonl: 3 record(s) have no 'text' key (first: line 5): dropped as missing",
              check=dropped_as_missing_not_empty, also=("dropped 3 without a text key, 1 empty",)),
    # 9: the first of two same-named columns was read, the second dropped in silence.
    ProbeCase("csv-duplicate-column", write_text("table.csv", CSV.replace("text,label", "text,label,text", 1)),
              ("download", "tokenize"), 2,
              "table.csv: column 'text' appears twice in the header (columns 1 and 3); rename or remove one"),
    ProbeCase("tsv-duplicate-column", write_text("table.tsv", "label\ttext\tlabel\n" + "".join(
        f"a\t{t}\tb\n" for t in texts())), ("download", "tokenize"), 2,
        "table.tsv: column 'label' appears twice in the header (columns 1 and 3); rename or remove one"),
    # 10: a tab-separated file named .csv said only that the column was missing.
    ProbeCase("tsv-named-csv", write_text("table.csv", frame().to_csv(index=False, sep="\t")),
              ("download", "tokenize"), 2,
              "table.csv: no column 'text'; the only column is 'text\\tlabel': the file looks tab-separated; "
              "set dataset.table.format: tsv"),
    ProbeCase("tsv-named-csv-format-tsv", write_text("table.csv", frame().to_csv(index=False, sep="\t")),
              ("download", "tokenize"), 0, "tokenize: 24 documents", table={"format": "tsv"}),
    ProbeCase("semicolon-csv", write_text("table.csv", frame().to_csv(index=False, sep=";")),
              ("download", "tokenize"), 2,
              "table.csv: no column 'text'; the only column is 'text;label': the file looks semicolon-separated; "
              "save it with commas or tabs"),
    ProbeCase("csv-named-tsv", write_text("table.tsv", CSV), ("download", "tokenize"), 2,
              "table.tsv: no column 'text'; the only column is 'text,label': the file looks comma-separated; "
              "set dataset.table.format: csv"),
    # 11: a label holding a newline split predict's CSV header and the console lines.
    ProbeCase("label-with-newline-cr-tab", write_csv(labels_with_line_breaks()), ("download", "tokenize"), 0,
              "table.csv: label column 'label': 9 label(s) hold line breaks, tabs, control characters or runs "
              "of spaces (the first on row 4: 'b\\nc'): each run is read as one space",
              check=labels_are({"a", "b c"}), also=("tokenize: 24 documents",)),
    ProbeCase("jsonl-label-with-control-characters", write_text("table.jsonl", jsonl(
        [{"text": t, "label": "a" if i % 2 else "b\u0007c\u0085"} for i, t in enumerate(texts())])),
        ("download", "tokenize"), 0,
        "table.jsonl: label column 'label': 12 label(s) hold line breaks, tabs, control characters or runs "
        "of spaces (the first on row 1: 'b\\x07c\\x85'): each run is read as one space",
        check=labels_are({"a", "b c"})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_catalogue_probe_data(case: ProbeCase, in_tmp: Path, capsys, monkeypatch):
    said = run(case, in_tmp, capsys, monkeypatch)
    for line in case.also:
        assert line in said, said
    if case.code == 2:
        assert not (in_tmp / "data" / "tokens.parquet").exists()
        assert (in_tmp / "data" / "raw" / "manifest.json").is_file()   # download's output as it was


# --- 14: a table URL with user:password@, or a presigned URL ------------------------------------

USER, PASSWORD = "reader", "s3cret%2Fpw"        # the password is "s3cret/pw", percent-encoded in the URL
SIGNATURE, TOKEN = "0d1e2a3d4b5e6e7f8secret", "tok-456-secret"


@pytest.fixture
def auth_site(monkeypatch) -> Iterator[httpsite.Site]:
    """The `site` server, answering 401 to a request without HTTP basic auth for USER and PASSWORD."""
    expected = "Basic " + base64.b64encode(f"{USER}:s3cret/pw".encode()).decode()
    plain = httpsite.make_handler

    def make_handler(site: httpsite.Site):
        class Handler(plain(site)):
            def do_GET(self) -> None:
                if self.path.startswith("/private/") and self.headers.get("Authorization") != expected:
                    site.hits["unauthorised"] += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="data"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()
        return Handler

    monkeypatch.setattr(httpsite, "make_handler", make_handler)
    yield from httpsite.serve()


def with_password(url: str, password: str = PASSWORD) -> str:
    return url.replace("http://", f"http://{USER}:{password}@", 1)


def secrets_left(root: Path, *secrets: str) -> list[str]:
    """Every file under root, but the user's own params.yaml, that holds one of the secrets."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.name != "params.yaml":
            data = path.read_bytes()
            found += [f"{path.relative_to(root)}: {s}" for s in secrets if s.encode() in data]
    return found


def run_tracked(stage: str) -> int:
    return importlib.import_module(f"pipeline.stages.{stage}").main([])


def test_a_table_url_with_user_and_password_uses_basic_auth_and_writes_no_password(
        auth_site, in_tmp, capsys, monkeypatch):
    auth_site.files["/private/table.csv"] = CSV.encode()
    url = with_password(auth_site.url("/private/table.csv"))
    said = run(ProbeCase("table-url-basic-auth", lambda root: url, ("download", "tokenize"), 0,
                         "tokenize: 24 documents"), in_tmp, capsys, monkeypatch)
    assert auth_site.hits["/private/table.csv"] == 1 and auth_site.hits["unauthorised"] == 0
    manifest = json.loads((in_tmp / "data" / "raw" / "manifest.json").read_text(encoding="utf-8"))
    masked = auth_site.url("/private/table.csv").replace("http://", f"http://{USER}:***@")
    assert manifest["files"][0]["source"] == masked
    assert stats(in_tmp)["params"]["dataset"]["table"]["source"] == masked
    assert secrets_left(in_tmp, PASSWORD, "s3cret/pw") == [] and "s3cret" not in said


def test_a_wrong_password_is_one_line_without_it(auth_site, in_tmp, capsys, monkeypatch):
    auth_site.files["/private/table.csv"] = CSV.encode()
    url = with_password(auth_site.url("/private/table.csv"), "wrong-pw")
    run(ProbeCase("table-url-wrong-password", lambda root: url, ("download",), 2,
                  f"download: error: could not fetch table/table.csv: "
                  f"{auth_site.url('/private/table.csv').replace('http://', f'http://{USER}:***@')}: "
                  "HTTP Error 401: Unauthorized -- dataset.table.source may also be a local path"),
        in_tmp, capsys, monkeypatch)
    assert auth_site.hits["unauthorised"] == 1      # a 401 is not retried
    assert not (in_tmp / "data").exists() and secrets_left(in_tmp, "wrong-pw") == []


def presigned(site: httpsite.Site) -> tuple[str, str]:
    """A presigned URL's path and the URL as the outputs must record it."""
    path = f"/bucket/table.csv?X-Amz-Expires=600&X-Amz-Signature={SIGNATURE}&token={TOKEN}"
    site.files[path] = CSV.encode()
    return site.url(path), site.url("/bucket/table.csv?X-Amz-Expires=600&X-Amz-Signature=***&token=***")


def test_a_presigned_url_is_recorded_without_its_signature(site, in_tmp, capsys, monkeypatch):
    url, masked = presigned(site)
    said = run(ProbeCase("table-url-presigned", lambda root: url, ("download", "tokenize"), 0,
                         "tokenize: 24 documents"), in_tmp, capsys, monkeypatch)
    manifest = json.loads((in_tmp / "data" / "raw" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"][0]["source"] == masked and manifest["description"] == f"your table {masked}"
    assert manifest["files"][0]["name"] == "table.csv"
    assert stats(in_tmp)["params"]["dataset"]["table"]["source"] == masked
    assert secrets_left(in_tmp, SIGNATURE, TOKEN) == [] and TOKEN not in said


def test_a_password_in_the_table_url_is_nowhere_in_mlflow(auth_site, in_tmp, mlflow_store, capsys, monkeypatch):
    """Tracked: the run's params (masked by core.errors.mask_credentials), the logged manifest and
    tokenize_stats.json, the dataset inputs: no byte of the store holds the password."""
    auth_site.files["/private/table.csv"] = CSV.encode()
    run(ProbeCase("table-url-basic-auth", lambda root: with_password(auth_site.url("/private/table.csv")),
                  ("download", "tokenize"), 0, "tokenize: 24 documents"), in_tmp, capsys, monkeypatch)
    assert run_tracked("download") == 0 and run_tracked("tokenize") == 0, capsys.readouterr().err
    assert list((in_tmp / "mlruns").rglob("manifest.json")), "the manifest was logged"
    assert secrets_left(in_tmp, PASSWORD, "s3cret/pw") == []


def test_a_presigned_url_is_nowhere_in_mlflow(site, in_tmp, mlflow_store, capsys, monkeypatch):
    url, _ = presigned(site)
    run(ProbeCase("table-url-presigned", lambda root: url, ("download",), 0, "download:"),
        in_tmp, capsys, monkeypatch)
    assert run_tracked("download") == 0 and run_tracked("tokenize") == 0, capsys.readouterr().err
    assert secrets_left(in_tmp, SIGNATURE, TOKEN) == []


@pytest.mark.parametrize(("url", "recorded"), [
    ("https://u:pw@h/t.csv", "https://u:***@h/t.csv"),
    ("https://ghp_token@h/t.csv", "https://***@h/t.csv"),
    ("https://h/t.csv?X-Amz-Date=1&X-Amz-Credential=AKIA%2Fx&X-Amz-Signature=ab", "https://h/t.csv?X-Amz-Date=1&"
     "X-Amz-Credential=***&X-Amz-Signature=***"),
    ("https://a.blob.core.windows.net/c/t.csv?sv=1&sig=ab%3D", "https://a.blob.core.windows.net/c/t.csv?sv=1&sig=***"),
    ("https://h/t.csv?api_key=1&access_token=2&password=3&page=4", "https://h/t.csv?api_key=***&access_token=***&"
     "password=***&page=4"),
    ("내 데이터/질문 목록.csv", "내 데이터/질문 목록.csv"),
])
def test_masked_url(url, recorded):
    from pipeline.data.fetch import masked_url

    assert masked_url(url) == recorded


def test_a_password_in_the_table_url_is_not_in_data_prepared(auth_site, in_tmp, capsys, monkeypatch):
    auth_site.files["/private/table.csv"] = CSV.encode()
    run(ProbeCase("table-url-basic-auth", lambda root: with_password(auth_site.url("/private/table.csv")),
                  ("download", "tokenize", "prepare"), 0, "prepare:"), in_tmp, capsys, monkeypatch)
    assert secrets_left(in_tmp, PASSWORD, "s3cret/pw") == []


def test_a_login_in_netrc_is_used_and_a_password_in_the_url_is_warned_about(auth_site, in_tmp, capsys, monkeypatch):
    """Credentials belong in ~/.netrc ($NETRC): params.yaml and dvc.lock keep a URL's as written."""
    auth_site.files["/private/table.csv"] = CSV.encode()
    netrc = in_tmp.parent / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password s3cret/pw\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    url = auth_site.url("/private/table.csv")
    run(ProbeCase("table-url-netrc", lambda root: url, ("download",), 0, "download:"), in_tmp, capsys, monkeypatch)
    assert auth_site.hits["unauthorised"] == 0 and auth_site.hits["/private/table.csv"] == 1
    monkeypatch.delenv("NETRC")
    (in_tmp / "params.yaml").unlink()
    recorder = Recorder(capsys)
    run_case(ProbeCase("table-url-basic-auth", lambda root: with_password(url), ("download",), 0, "download:"),
             in_tmp, recorder, monkeypatch)
    masked = url.replace("http://", f"http://{USER}:***@")
    assert (f"warning: dataset.table.source holds a secret (shown masked: {masked}); params.yaml and dvc.lock "
            "keep it as written: put a login in ~/.netrc") in recorder.last.err
    assert "s3cret" not in recorder.last.err + recorder.last.out
