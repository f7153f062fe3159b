"""Read a downloaded dataset into one table of documents: id, text, label, split.

`split` is "train" or "test" where the dataset ships an official test set, else "". Labels are
strings. Texts are raw here (normalisation is the tokenize stage's job); an empty cell is "", and a
JSONL record without the text key has no text (None), which the tokenize stage drops as missing.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import tarfile
import unicodedata
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.config import DatasetParams, TableSource
from pipeline.core.errors import DataError, warn

COLUMNS = ["id", "text", "label", "split"]
# pandas.read_csv options for every delimited file: each cell a string as written (ids like 00123,
# labels like 0/1), only an empty cell missing. The predict command reads its input the same way.
DELIMITED = {"dtype": str, "keep_default_na": False, "na_values": [""]}


def load_documents(raw_dir: Path, dataset: DatasetParams) -> pd.DataFrame:
    """Read data/raw (as the download stage left it) for the configured dataset."""
    manifest_path = raw_dir / "manifest.json"
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path}: missing; run the download stage first (dvc repro download)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("dataset") != dataset.name:
        raise DataError(f"{manifest_path}: holds dataset {manifest.get('dataset')!r} but params say "
                        f"{dataset.name!r}; run the download stage again")
    files = {f["name"]: raw_dir / f["path"] for f in manifest["files"]}
    reader = {"seoul120": read_seoul120, "nsmc": read_nsmc, "imdb": read_imdb,
              "reuters": read_reuters}.get(dataset.name)
    if reader is not None:
        return reader(files)
    (path,) = files.values()
    return read_table(path, dataset.table)


def read_seoul120(files: dict[str, Path]) -> pd.DataFrame:
    path = files["seoul-120-text.csv"]
    table = _read_delimited(path, sep=",", encoding="utf-8")
    _require_columns(table, ["번호", "분류", "제목", "내용"], path)
    return _documents(table, ["제목", "내용"], "분류", "번호", split="", path=path)


def read_nsmc(files: dict[str, Path]) -> pd.DataFrame:
    parts = []
    for split, name in (("train", "ratings_train.txt"), ("test", "ratings_test.txt")):
        if name in files:
            table = _read_delimited(files[name], sep="\t", encoding="utf-8")
            _require_columns(table, ["id", "document", "label"], files[name])
            parts.append(_documents(table, ["document"], "label", "id", split=split, path=files[name]))
    return pd.concat(parts, ignore_index=True)


_IMDB_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+_\d+)\.txt$")


def read_imdb(files: dict[str, Path]) -> pd.DataFrame:
    (path,) = files.values()
    rows = []
    # Stream the archive: 50,000 small members, no extraction to disk.
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            m = _IMDB_MEMBER.search(member.name)
            if not m or not member.isfile():
                continue
            raw = archive.extractfile(member).read()
            text = _decode(raw, "utf-8", f"{path}:{member.name}")
            split, label, stem = m.groups()
            rows.append((f"{split}/{label}/{stem}", text, label, split))
    if not rows:
        raise DataError(f"{path}: no aclImdb/{{train,test}}/{{pos,neg}}/*.txt members found")
    return pd.DataFrame(rows, columns=COLUMNS)


def read_reuters(files: dict[str, Path], test_split: float = 0.2, seed: int = 113) -> pd.DataFrame:
    """Decode the Keras integer sequences back to words; Keras's own shuffle and 80/20 split."""
    # The npz stores ragged object arrays (pickles); its sha256 was verified at download.
    with np.load(files["reuters.npz"], allow_pickle=True) as f:
        xs, labels = f["x"], f["y"]
    word_index = json.loads(files["reuters_word_index.json"].read_text(encoding="utf-8"))
    words = {rank: word for word, rank in word_index.items()}
    order = np.arange(len(xs))
    np.random.RandomState(seed).shuffle(order)
    n_train = int(len(xs) * (1 - test_split))
    rows = []
    for pos, i in enumerate(order):
        text = " ".join(words.get(int(w), "") for w in xs[i]).strip()
        rows.append((str(int(i)), text, str(int(labels[i])), "train" if pos < n_train else "test"))
    return pd.DataFrame(rows, columns=COLUMNS)


def read_table(path: Path, source: TableSource) -> pd.DataFrame:
    fmt = source.format if source.format != "auto" else _guess_format(path)
    if fmt == "parquet":
        table = pd.read_parquet(path)
    elif fmt == "jsonl":
        table, keys = _read_json_lines(_decode(_file_bytes(path), source.encoding, str(path)), path)
    else:
        table = _read_delimited(path, sep="\t" if fmt == "tsv" else ",", encoding=source.encoding)
    needed = [*source.text_columns, source.label_column] + ([source.id_column] if source.id_column else [])
    _require_columns(table, needed, path)
    docs = _documents(table, list(source.text_columns), source.label_column, source.id_column or None,
                      split="", path=path)
    if fmt == "jsonl":
        # A record without the text key is missing, not empty: None, dropped and counted as such.
        no_text = np.array([not any(c in k for c in source.text_columns) for k in keys], dtype=bool)
        if no_text.any():
            names = " or ".join(map(repr, source.text_columns))
            warn(f"{path}: {int(no_text.sum()):,} record(s) have no {names} key (first: line "
                 f"{table.index[no_text][0]}): dropped as missing")
            docs.loc[no_text, "text"] = None
    return docs


def format_from_name(path: Path) -> str | None:
    """A table's format told by its file name (csv, tsv, jsonl, parquet), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    if ".jsonl" in suffixes or ".ndjson" in suffixes or ".json" in suffixes:
        return "jsonl"
    if ".tsv" in suffixes or ".txt" in suffixes:   # NSMC's ratings_*.txt are tab-separated
        return "tsv"
    if ".csv" in suffixes:
        return "csv"
    return None


UNKNOWN_FORMAT = ("cannot tell the format from the file name; set dataset.table.format to csv, tsv, jsonl "
                  "or parquet")


def _guess_format(path: Path) -> str:
    fmt = format_from_name(path)
    if fmt is None:
        raise DataError(f"{path}: {UNKNOWN_FORMAT}")
    return fmt


# A lone surrogate (U+D800-U+DFFF) can only come from a JSON escape ("\\ud800"): no decoder used here
# makes one. Python keeps it, but it is not text: UTF-8 (Parquet, SQLite) refuses to encode it.
_SURROGATE = re.compile("[\ud800-\udfff]")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _read_json_lines(text: str, path: Path) -> tuple[pd.DataFrame, list[set[str]]]:
    """One JSON object a line; nested objects become dotted columns ({"q": {"title": ..}} -> q.title).

    The table is indexed by line number; beside it, each record's (dotted) keys, which tell an absent
    key from one set to null. Lone surrogates become U+FFFD, with one warning.
    """
    records, numbers, surrogates = [], [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}: line {number}: not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number}: not a JSON object: {line.strip()[:80]}")
        if "\\u" in line and SURROGATE_ESCAPE.search(line):
            cleaned = without_surrogates(record)
            if cleaned != record:
                surrogates.append(number)
                record = cleaned
        records.append(record)
        numbers.append(number)
    if not records:
        raise DataError(f"{path}: no records, the file is empty or only blank lines")
    if surrogates:
        warn(f"{path}: {len(surrogates):,} record(s) hold a lone surrogate (an unpaired \\ud800-\\udfff "
             f"escape, not a character), the first on line {surrogates[0]}: read as U+FFFD")
    if any(isinstance(v, dict) for r in records for v in r.values()):
        table = pd.json_normalize(records, sep=".")
    else:
        table = pd.DataFrame.from_records(records)
    table.index = numbers
    return table, [set(_dotted_keys(r)) for r in records]


def without_surrogates(value: object) -> object:
    """A text, or a decoded JSON value (keys too), with every lone surrogate replaced by U+FFFD;
    anything else as it is. (The readers, predict and serving use it alike.)"""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    return value


def _dotted_keys(record: dict, prefix: str = "") -> Iterator[str]:
    """A record's keys as json_normalize names its columns: {"q": {"title": ..}} gives q and q.title."""
    for key, value in record.items():
        yield prefix + key
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def _file_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when they are gzip's (a .csv that is really .csv.gz)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: starts as a gzip file but does not decompress ({exc})") from None


# Byte-order marks that say the file's encoding whatever dataset.table.encoding says (UTF-32 first:
# its little-endian mark begins with UTF-16's).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def python_encoding(encoding: str) -> str:
    """utf-8 also accepts a byte-order mark (files saved by Excel and Notepad start with one)."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding


def _decode(raw: bytes, encoding: str, where: str) -> str:
    """Text of a file; NUL bytes (which end a C string mid-row) become spaces, and a file that is
    mostly NULs is UTF-16 without its byte-order mark, said as such."""
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), encoding)
    nuls = raw.count(b"\0")
    if nuls * 4 > len(raw) and not encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32")):
        raise DataError(f"{where}: {nuls:,} NUL bytes in {len(raw):,}: this looks like UTF-16 without a "
                        "byte-order mark; set dataset.table.encoding to utf-16-le (or utf-16-be)")
    try:
        text = raw.decode(python_encoding(encoding))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{where}: line {line}: bytes {raw[exc.start:exc.end]!r} are not valid "
                        f"{encoding} (set dataset.table.encoding, e.g. cp949 for many Korean "
                        "Windows files)") from None
    except LookupError:
        raise DataError(f"{where}: unknown encoding {encoding!r} (dataset.table.encoding)") from None
    # No zero byte, no NUL character (in every encoding read here): the text needs no second scan.
    nuls = text.count("\0") if nuls else 0
    if nuls:
        line = text[: text.index("\0")].count("\n") + 1
        warn(f"{where}: {nuls:,} NUL character(s), the first on line {line}: read as spaces")
        text = text.replace("\0", " ")
    return text


def _read_delimited(path: Path, sep: str, encoding: str) -> pd.DataFrame:
    text = _decode(_file_bytes(path), encoding, str(path))
    _refuse_duplicate_columns(text, sep, path)
    try:
        # Everything as strings: ids like 00123 and labels like 0/1 stay as written.
        return pd.read_csv(io.StringIO(text), sep=sep, engine="c", **DELIMITED)
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {exc}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None


def _refuse_duplicate_columns(text: str, sep: str, path: Path) -> None:
    """pandas renames a repeated column name to "name.1", so the first would be read and the second
    dropped in silence. Blank names (a header's trailing separators) are left to pandas."""
    end = text.find("\n")
    header = next(csv.reader([text[: end if end >= 0 else len(text)].rstrip("\r")], delimiter=sep), [])
    seen: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        if name.strip() and name in seen:
            raise DataError(f"{path}: column {name!r} appears twice in the header (columns {seen[name]} and "
                            f"{number}); rename or remove one")
        seen.setdefault(name, number)


# A table read with the wrong separator arrives as one column named like the whole header.
_SEPARATORS = (("\t", "tab", "set dataset.table.format: tsv"), (",", "comma", "set dataset.table.format: csv"),
               (";", "semicolon", "save it with commas or tabs"))


def _require_columns(table: pd.DataFrame, needed: list[str], path: Path) -> None:
    missing = [c for c in needed if c not in table.columns]
    if missing and len(table.columns) == 1:
        only = str(table.columns[0])
        for sep, name, advice in _SEPARATORS:
            if sep in only:
                raise DataError(f"{path}: no column {missing[0]!r}; the only column is {only!r}: the file "
                                f"looks {name}-separated; {advice}")
    if missing:
        nested = any("." in str(c) for c in table.columns) and not any("." in c for c in missing)
        raise DataError(f"{path}: no column {missing[0]!r}; the columns present are: "
                        f"{', '.join(map(str, table.columns))}"
                        + (" (nested JSON keys are joined with '.')" if nested else ""))


# Where each built-in dataset keeps its labels, for messages about rows without one.
LABEL_COLUMNS = {"seoul120": "분류", "nsmc": "label", "imdb": "the pos/neg folder", "reuters": "y"}


def label_column(dataset: DatasetParams) -> str:
    return dataset.table.label_column if dataset.name == "table" else LABEL_COLUMNS.get(dataset.name, "label")


def _require_text(table: pd.DataFrame, column: str, path: Path | None) -> None:
    """A text column must hold text: numbers would become "0.5"-like tokens no one meant.

    Parquet and JSON keep types, so a column of numbers (or a mix) arrives as numbers; CSV and TSV
    are read as strings. Missing cells are fine (an empty text).
    """
    values = table[column]
    where = f"{path}: " if path else ""
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        raise DataError(f"{where}text column {column!r} holds {values.dtype}, not text; point "
                        "dataset.table.text_columns at a text column, or write this one as strings")
    odd = values.map(lambda v: v is not None and not isinstance(v, str) and not (isinstance(v, float) and v != v))
    if odd.any():
        row = int(np.flatnonzero(odd.to_numpy())[0])
        value = values.iloc[row]
        raise DataError(f"{where}row {row + 1}: text column {column!r} holds {_kind(value)} "
                        f"{_short(value)}, not text; write the column as strings")


def _kind(value: object) -> str:
    """A value's type as the user wrote it: Parquet's and JSON's lists are lists, not ndarrays."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: object) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."


# C0 and C1 control characters; in a label they are read as whitespace.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _labels(values: pd.Series, column: str, path: Path | None) -> pd.Series:
    """Labels as text classes: stripped, NFC (a label typed on macOS arrives decomposed), numbers
    written as integers where they are (JSON's 1, 1.0 and "1" are one class); missing stays missing.
    Whitespace runs (newlines, tabs, control characters included) become one space, as in texts: a
    newline in a label would split predict's CSV header and the console lines. A list or object is
    not a label."""
    where = f"{path}: " if path else ""
    numbers = strings = 0
    respaced: list[tuple[int, str]] = []

    def one(row: int, v: object) -> object:
        nonlocal numbers, strings
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            return None
        if isinstance(v, (list, tuple, dict, np.ndarray)):
            raise DataError(f"{where}row {row + 1}: label column {column!r} holds {_kind(v)} {_short(v)}, "
                            "not a label; write one label a row")
        if isinstance(v, str):
            strings += 1
            label = unicodedata.normalize("NFC", v).strip()
            spaced = " ".join(_CONTROL.sub(" ", label).split())
            if spaced != label:
                respaced.append((row, v))
            return spaced
        if isinstance(v, (bool, np.bool_)):
            strings += 1
            return str(bool(v))
        if isinstance(v, (int, float, np.integer, np.floating)):
            numbers += 1
            return str(int(v)) if float(v).is_integer() else str(v)
        return str(v).strip()

    labels = pd.Series([one(i, v) for i, v in enumerate(values.tolist())], index=values.index, dtype=object)
    if numbers and strings:
        warn(f"{where}label column {column!r} mixes numbers ({numbers:,} rows) and strings ({strings:,}): "
             "compared as text, so 1, 1.0 and \"1\" are one class")
    if respaced:
        row, v = respaced[0]
        warn(f"{where}label column {column!r}: {len(respaced):,} label(s) hold line breaks, tabs, control "
             f"characters or runs of spaces (the first on row {row + 1}: {_short(v)}): each run is read as "
             "one space")
    return labels


def _documents(table: pd.DataFrame, text_columns: list[str], label_column: str,
               id_column: str | None, split: str, path: Path | None = None) -> pd.DataFrame:
    for column in text_columns:
        _require_text(table, column, path)
    texts = table[text_columns[0]].fillna("").astype(str)
    for col in text_columns[1:]:
        texts = texts + " " + table[col].fillna("").astype(str)
    ids = table[id_column].astype(str) if id_column else pd.Series(
        [str(i) for i in range(1, len(table) + 1)], index=table.index)
    labels = _labels(table[label_column], label_column, path)
    return pd.DataFrame({"id": ids.values, "text": texts.values, "label": labels.values,
                         "split": split})
