"""Label raw texts with a trained model, through the preprocessing it was trained with.

  python -m pipeline.predict reviews.tsv --text-column document --output predictions.csv

INPUT is CSV, TSV, JSON Lines or plain text (one document per line), told apart by its suffix
(.csv, .tsv, .jsonl/.ndjson/.json, .txt) or by --format. `-` reads standard input; it, a pipe
(/dev/stdin, <(...)) or a FIFO is copied to a temp file first, as the input is read more than once,
and without a suffix it is plain text lines unless --format says otherwise:

  some-command | python -m pipeline.predict - -o predictions.csv
  python -m pipeline.predict - --format jsonl -o predictions.jsonl < reviews.jsonl

It is read in batches, so any size streams through in bounded memory. The output keeps the input's
records in order with their other columns (ids, labels), then adds `predicted` (label name),
`proba_<label>` for each class and `empty_text` (true where nothing was left to read: an empty or
missing text is still given a prediction, from an empty sequence). One output row per input record,
so the output lines up with the input by position: in a .txt file or a one-column CSV/TSV a blank
line is an empty text and gets its row; in a CSV/TSV of several columns a blank line is no record;
in JSON Lines blank lines are skipped (the summary line counts them), and a lone surrogate escape
("\\ud800", no character) is read as U+FFFD, also counted. The output's name says its format: .csv,
.tsv, .jsonl or .ndjson. It is written to a temp file and renamed at the end: an interrupted or
failed run leaves no half-written file, and a previous output as it was.

Refused with one line `predict: error: ...` and exit code 2, before the model is loaded where the
input allows: a missing, empty or header-only input, an output that is the input itself (also
through a link), an unknown output suffix, a bad line (named by its number), a damaged model.
"""
from __future__ import annotations

import argparse
import codecs
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from pipeline.core.cli import EXIT_BAD_INPUT, run_command  # noqa: E402
from pipeline.core.errors import (
    DataError,  # noqa: E402
    StageError,  # noqa: E402
)
from pipeline.data.readers import DELIMITED, SURROGATE_ESCAPE, python_encoding, without_surrogates  # noqa: E402
from pipeline.serve.predictor import EMPTY, PREDICTED  # noqa: E402

FORMATS = ("csv", "tsv", "jsonl", "txt")
SUFFIXES = {"jsonl": (".jsonl", ".ndjson", ".json"), "tsv": (".tsv",), "csv": (".csv",), "txt": (".txt", ".text")}
STDIN = Path("-")
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_MODEL = Path("models")
Predict = Callable[[list], pd.DataFrame]


@dataclass(frozen=True)
class Job:
    """An input and an output that passed every check that needs no model (`check_job`)."""
    source: Path
    target: Path
    fmt: str                  # the input's: csv, tsv, jsonl, txt
    out_fmt: str              # the output's: csv, tsv, jsonl
    text_column: str
    encoding: str
    lines: int                # of the input file
    # pandas.read_csv options beside DELIMITED (a one-column file keeps its blank lines)
    read_options: dict = field(default_factory=dict)


def check_job(source: Path, target: Path, *, text_column: str = "text", fmt: str = "auto",
              encoding: str = "utf-8") -> Job:
    """Everything about the input and output that can be refused before the model is loaded."""
    if source.is_dir():
        raise DataError(f"{source}: is a folder; INPUT is one file (CSV, TSV, JSON Lines or text)")
    if not source.is_file():
        raise DataError(f"{source}: no such file")
    out_fmt = output_format(target)
    if target.is_dir():
        raise DataError(f"{target}: is a folder; --output names the file to write")
    if same_file(source, target):
        raise DataError(f"{target}: is the input file itself; writing the predictions there would replace "
                        "the texts (choose another --output)")
    if source.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty")
    fmt = input_format(source, fmt, text_column, encoding)
    lines = check_encoding(source, encoding)
    options = _delimited_options(source, fmt, text_column, encoding) if fmt in ("csv", "tsv") else {}
    return Job(source, target, fmt, out_fmt, text_column, encoding, lines, options)


@contextmanager
def regular_input(source: Path) -> Iterator[Path]:
    """`source` as a regular file: the checks and the batches read the input more than once, which a
    stream cannot be, so standard input (`-`), a pipe or a FIFO is copied to a temp file first, named
    like it plus .txt where its name has no format suffix. Messages about the copy name the source."""
    if source != STDIN and (not source.exists() or source.is_dir() or source.is_file()):
        yield source   # a file, or nothing there: check_job says which
        return
    name = "stdin" if source == STDIN else source.name
    if not any(s.lower() in endings for s in Path(name).suffixes for endings in SUFFIXES.values()):
        name += ".txt"
    with tempfile.TemporaryDirectory(prefix="predict-") as folder:
        copy = Path(folder) / name
        with copy.open("wb") as out, (nullcontext(sys.stdin.buffer) if source == STDIN
                                      else source.open("rb")) as stream:
            shutil.copyfileobj(stream, out, 1 << 20)
        try:
            yield copy
        except DataError as exc:
            raise DataError(str(exc).replace(str(copy), str(source))) from None


def output_format(target: Path) -> str:
    suffix = target.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        hint = " (JSON Lines is .jsonl)" if suffix == ".json" else ""
        raise DataError(f"{target}: cannot write {suffix or 'a file without a suffix'}{hint}; name the output "
                        f"{', '.join(list(OUTPUT_FORMATS)[:-1])} or {list(OUTPUT_FORMATS)[-1]}")
    return OUTPUT_FORMATS[suffix]


def same_file(source: Path, target: Path) -> bool:
    """Whether target is source, also through a symlink, a hard link or another spelling of the path."""
    try:
        if target.exists():
            return os.path.samefile(source, target)
    except OSError:
        pass
    return source.resolve() == target.resolve()


def input_format(path: Path, fmt: str, text_column: str = "text", encoding: str = "utf-8") -> str:
    if fmt != "auto":
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    for fmt, endings in SUFFIXES.items():
        if any(s in endings for s in suffixes):
            header = _first_line(path, encoding).split("\t") if fmt == "txt" else []
            if len(header) > 1 and text_column in header:
                return "tsv"   # NSMC's ratings_*.txt: a tab-separated header naming the text column
            return fmt
    raise DataError(f"{path}: cannot tell the format from the file name; pass --format "
                    f"{' | '.join(FORMATS)}")


def _first_line(path: Path, encoding: str) -> str:
    with path.open("rb") as f:
        return f.readline().decode(python_encoding(encoding), errors="replace").rstrip("\r\n")


def check_encoding(path: Path, encoding: str) -> int:
    """Decode the file line by line; its number of lines, or an error naming the first bad line.

    Line by line is exact for UTF-8 and the Korean legacy encodings (cp949, euc-kr), whose
    multi-byte characters never contain a newline byte.
    """
    import codecs

    try:
        decoder = codecs.getincrementaldecoder(python_encoding(encoding))()
    except LookupError:
        raise DataError(f"--encoding: unknown encoding {encoding!r}") from None
    lines = 0
    with path.open("rb") as f:
        for lines, raw in enumerate(f, 1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: line {lines}: bytes {raw[exc.start:exc.end]!r} are not valid "
                                f"{encoding} (pass --encoding, e.g. cp949 for many Korean Windows "
                                "files)") from None
    return lines


def _delimited_options(path: Path, fmt: str, text_column: str, encoding: str) -> dict:
    """Check the header (the text column is there) and that a data row follows; the read options.

    A file of one column keeps its blank lines: each is an empty text, so the output has a row for
    every input line and lines up with it by position (pandas would drop them).
    """
    columns = list(_read_csv(path, fmt, encoding, {}, nrows=0).columns)
    if text_column not in columns:
        raise DataError(_no_text_column(path, text_column, columns))
    options: dict = {}
    if len(columns) == 1:
        options = {"skip_blank_lines": False, "skiprows": _leading_blank_lines(path)}
    if _read_csv(path, fmt, encoding, options, nrows=1).empty:
        raise DataError(f"{path}: no data rows, only a header")
    return options


def _read_csv(path: Path, fmt: str, encoding: str, options: dict, **kwargs: Any):
    try:
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", encoding=python_encoding(encoding),
                           **DELIMITED, **options, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse as {fmt.upper()}: {' '.join(str(exc).split())}") from None


def _leading_blank_lines(path: Path) -> int:
    with path.open("rb") as f:
        for n, raw in enumerate(f):
            if raw.removeprefix(codecs.BOM_UTF8).strip():
                return n
    return 0


def _no_text_column(path: Path, text_column: str, columns) -> str:
    return (f"{path}: no text column {text_column!r}; the columns present are: {', '.join(map(str, columns))} "
            "(choose one with --text-column)")


def read_batches(path: Path, fmt: str, encoding: str, rows: int, options: dict | None = None,
                 stats: Counter | None = None, text_column: str = "text") -> Iterator[pd.DataFrame]:
    """The input in DataFrames of at most `rows` rows; every delimited cell a string or missing.

    `options`: more pandas.read_csv options for CSV and TSV (Job.read_options); `stats` counts the
    blank lines JSON Lines skips; a JSON Lines `text_column` value must be a string or null.
    """
    enc = python_encoding(encoding)
    try:
        if fmt == "txt":
            yield from _text_lines(path, enc, rows)
        elif fmt == "jsonl":
            yield from _json_lines(path, enc, rows, Counter() if stats is None else stats, text_column)
        else:
            with _read_csv(path, fmt, encoding, options or {}, chunksize=rows) as reader:
                yield from reader
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot parse as {fmt.upper()}: {' '.join(str(exc).split())}") from None


def _json_lines(path: Path, encoding: str, rows: int, stats: Counter,
                text_column: str = "text") -> Iterator[pd.DataFrame]:
    """One JSON object per line; a bad line is named by its number. Blank lines are skipped.

    The text must be a string (or null: an empty text), as the served model requires: a number
    would otherwise be read as the word "5".
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    batch: list[dict] = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            line = decoder.decode(raw).rstrip("\r\n")
            if not line.strip():
                stats["blank_lines"] += 1
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number}: not valid JSON: {exc.msg} at column {exc.colno}: "
                                f"{_clip(line)}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {number}: not a JSON object: {_clip(line)}")
            if SURROGATE_ESCAPE.search(line):   # "\ud800" alone: no character, and no UTF-8 output holds it
                fixed = without_surrogates(record)
                stats["surrogates"] += fixed != record
                record = fixed
            text = record.get(text_column)
            if text is not None and not isinstance(text, str):
                raise DataError(f"{path}: line {number}: {text_column!r} is {type(text).__name__} "
                                f"{_clip(json.dumps(text, ensure_ascii=False), 40)}, not a string")
            batch.append(record)
            if len(batch) == rows:
                yield pd.DataFrame(batch)
                batch = []
    if batch:
        yield pd.DataFrame(batch)


def _clip(line: str, width: int = 80) -> str:
    line = " ".join(line.split())
    return line if len(line) <= width else line[:width - 3] + "..."


def _text_lines(path: Path, encoding: str, rows: int) -> Iterator[pd.DataFrame]:
    with path.open(encoding=encoding, newline=None) as f:
        batch: list[str] = []
        first = 1
        for line in f:
            batch.append(line.rstrip("\n"))
            if len(batch) == rows:
                yield pd.DataFrame({"line": range(first, first + len(batch)), "text": batch})
                first, batch = first + len(batch), []
        if batch:
            yield pd.DataFrame({"line": range(first, first + len(batch)), "text": batch})


def open_model(uri: str) -> Predict:
    """A function texts -> predictions, for a bundle folder, an MLflow model folder or an MLflow URI."""
    path = Path(uri)
    if ":/" not in uri:   # not runs:/ , models:/ , file:// , http://
        if not path.exists():
            hint = " (run `make repro` or `dvc repro` first, or pass --model)" if path == DEFAULT_MODEL else ""
            raise StageError(f"{path}: no such model folder{hint}")
        if not (path / "MLmodel").is_file():
            from pipeline.serve.predictor import Classifier

            classifier = Classifier.load(path)
            classifier.warm_up()   # the JVM starts before the clock does, as a pyfunc model's does
            return classifier.predict
    return _mlflow_model(uri)


def _mlflow_model(uri: str) -> Predict:
    import mlflow

    from pipeline.core.tracking import _no_env_export, check_reachable, tracking_uri
    from pipeline.serve.pyfunc import refusing_pickles

    store = tracking_uri()
    with _no_env_export():
        mlflow.set_tracking_uri(store)
    if uri.split(":", 1)[0] in ("models", "runs"):   # through the tracking server: fail in seconds
        check_reachable(store, "without --model, models/ serves what the last dvc repro trained")
    try:
        with refusing_pickles():   # a model that is a pickle would run its code on load
            model = mlflow.pyfunc.load_model(uri)
    except Exception as exc:   # not found, no access, not a pyfunc model: one line with the URI
        raise StageError(f"--model {uri}: MLflow could not load it: {' '.join(str(exc).split())[:500]}") from None
    return lambda texts: model.predict(pd.Series(texts, dtype=object).to_frame("text"))


def predict_file(source: Path, target: Path, predict: Predict, *, text_column: str = "text",
                 fmt: str = "auto", encoding: str = "utf-8", batch_rows: int = 2000, keep_text: bool = False,
                 progress: bool | None = None) -> dict:
    """Stream source through the model into target (atomically); counts and timings."""
    with regular_input(source) as readable:
        job = check_job(readable, target, text_column=text_column, fmt=fmt, encoding=encoding)
        return run_job(job, predict, batch_rows=batch_rows, keep_text=keep_text, progress=progress)


def run_job(job: Job, predict: Predict, *, batch_rows: int = 2000, keep_text: bool = False,
            progress: bool | None = None) -> dict:
    """Stream a checked job through the model into its target (atomically); counts and timings."""
    from tqdm import tqdm

    from pipeline.core.atomic import atomic_file

    started = time.perf_counter()
    counts: Counter = Counter()    # "rows", "empty", "blank_lines", "surrogates" (records with one replaced)
    bar = tqdm(total=max(job.lines - (job.fmt in ("csv", "tsv")), 0), unit="doc", desc="predict",
               file=sys.stderr, disable=None if progress is None else not progress)
    try:
        with atomic_file(job.target) as tmp, tmp.open("w", encoding="utf-8", newline="") as out:
            predicted = _stream(job, predict, out, batch_rows, keep_text, counts, bar.update)
    except BaseException:
        bar.leave = False   # on a terminal, the error is the one line left
        bar.close()
        raise
    bar.close()
    seconds = time.perf_counter() - started
    rows = counts["rows"]
    return {"rows": rows, "empty": counts["empty"], "blank_lines": counts["blank_lines"],
            "surrogates": counts["surrogates"], "seconds": seconds,
            "docs_per_second": rows / seconds if seconds else 0.0, "predicted": dict(sorted(predicted.items()))}


def _stream(job: Job, predict: Predict, out, batch_rows: int, keep_text: bool, counts: Counter,
            advance: Callable[[int], Any]) -> Counter:
    """Write every batch's predictions to `out`; the counts per predicted label."""
    source, text_column = job.source, job.text_column
    predicted: Counter = Counter()
    columns: list | None = None   # a CSV/TSV output's header, fixed by the first batch
    for batch in read_batches(source, job.fmt, job.encoding, batch_rows, job.read_options, counts, text_column):
        if text_column not in batch.columns:
            if job.fmt != "jsonl" or counts["rows"] == 0:
                raise DataError(_no_text_column(source, text_column, batch.columns))
            # JSON Lines: a record without the key is an empty text, also in a batch of such records.
            batch = batch.assign(**{text_column: None})
        predictions = predict(batch[text_column].tolist())
        kept = batch if keep_text else batch.drop(columns=[text_column])
        # An input column named like an output one (e.g. `predicted`) keeps its values, renamed.
        kept = kept.rename(columns={c: f"input_{c}" for c in kept.columns if c in predictions.columns})
        result = pd.concat([kept.reset_index(drop=True), predictions.reset_index(drop=True)], axis=1)
        if job.out_fmt != "jsonl":
            columns = _same_columns(result, columns, source, counts["rows"], job.out_fmt)
            result = result.reindex(columns=columns)
        _write(result, out, job.out_fmt, header=counts["rows"] == 0)
        counts["rows"] += len(result)
        counts["empty"] += int(predictions[EMPTY].sum())
        predicted.update(predictions[PREDICTED].astype(str))
        advance(len(result))
    if counts["rows"] == 0:   # raised inside atomic_file: nothing is written
        nothing = {"jsonl": "no records, only blank lines", "txt": "the file is empty"}
        raise DataError(f"{source}: {nothing.get(job.fmt, 'no data rows, only a header')}")
    return predicted


def _same_columns(result: pd.DataFrame, columns: list | None, source: Path, rows: int, out_fmt: str) -> list:
    """A CSV/TSV output has one header: JSON Lines records whose keys first appear after the first
    batch cannot be written under it (and a key missing from a whole batch is left empty)."""
    if columns is None:
        return list(result.columns)
    extra = [str(c) for c in result.columns if c not in columns]
    if extra:
        raise DataError(f"{source}: key(s) {', '.join(extra)} first appear after record {rows:,}, when the "
                        f"{out_fmt.upper()} header is already written; write .jsonl, or pass a --batch-size "
                        "above the number of records")
    return columns


def _write(frame: pd.DataFrame, out, fmt: str, header: bool) -> None:
    if fmt == "jsonl":
        frame.to_json(out, orient="records", lines=True, force_ascii=False)   # ends with a newline
    else:
        frame.to_csv(out, sep="\t" if fmt == "tsv" else ",", header=header, index=False, lineterminator="\n")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="CSV, TSV, JSONL or text file (one document per line); `-` reads "
                   "standard input, a pipe or FIFO is read too (without a suffix: text lines unless --format)")
    p.add_argument("--output", "-o", type=Path, required=True,
                   help="where to write the predictions; its suffix says the format: .csv, .tsv, "
                        ".jsonl or .ndjson (not the input file itself)")
    p.add_argument("--text-column", default="text",
                   help="the column that holds the documents (default: %(default)s; NSMC: document)")
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help="a model bundle folder (default: %(default)s, what the last `dvc repro` trained), "
                        "an MLflow model folder, runs:/<run_id>/model or models:/<name>/<version|alias>, "
                        "e.g. models:/textclf-nsmc/latest (the store: $MLFLOW_TRACKING_URI, else mlruns/)")
    p.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                   help="input format (default: from the suffix: .csv, .tsv, .jsonl/.ndjson/.json, .txt; "
                        "txt for `-` and for a pipe without one)")
    p.add_argument("--encoding", default="utf-8", help="input encoding (default: %(default)s; e.g. cp949)")
    p.add_argument("--batch-size", type=int, default=2000,
                   help="documents read, analysed and written per batch (default: %(default)s)")
    p.add_argument("--keep-text", action="store_true", help="copy the text column into the output too")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.batch_size < 1:
        print("predict: error: --batch-size must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run_command("predict", lambda: _predict(args), interrupted=f"{args.output} was not written")


def _predict(args: argparse.Namespace) -> None:
    with regular_input(args.input) as source:
        job = check_job(source, args.output, text_column=args.text_column, fmt=args.format,
                        encoding=args.encoding)   # before the model: a bad input costs no model loading
        predict = open_model(args.model)
        summary = run_job(job, predict, batch_rows=args.batch_size, keep_text=args.keep_text)
    shares = ", ".join(f"{label} {n / max(summary['rows'], 1):.1%}" for label, n in summary["predicted"].items())
    blank = summary["blank_lines"]
    blank = f", {blank:,} blank line{'s' if blank > 1 else ''} skipped" if blank else ""
    if summary["surrogates"]:
        blank += f", {summary['surrogates']:,} with a lone surrogate read as U+FFFD"
    print(f"predict: {summary['rows']:,} documents ({summary['empty']:,} empty{blank}) in "
          f"{summary['seconds']:.1f} s ({summary['docs_per_second']:,.0f} docs/s); predicted {shares} "
          f"-> {args.output}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
