"""Label raw texts with a trained model, through the preprocessing it was trained with.

  python -m pipeline.predict reviews.tsv --text-column document --output predictions.csv

INPUT is CSV, TSV, JSON Lines or plain text (one document per line), told apart by its suffix
(.csv, .tsv, .jsonl/.json, .txt) or by --format. It is read in batches, so any size streams through in
bounded memory. The output keeps the input's rows in order with their other columns (ids, labels),
then adds `predicted` (label name), `proba_<label>` for each class and `empty_text` (true where
nothing was left to read: an empty or missing text is still given a prediction, from an empty
sequence). The output is written to a temp file and renamed at the end: an interrupted run leaves
no half-written file.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd  # noqa: E402

from pipeline.core.cli import EXIT_BAD_INPUT, run_command  # noqa: E402
from pipeline.core.errors import (
    DataError,  # noqa: E402
    StageError,  # noqa: E402
)
from pipeline.data.readers import DELIMITED, python_encoding  # noqa: E402
from pipeline.serve.predictor import EMPTY, PREDICTED  # noqa: E402

FORMATS = ("csv", "tsv", "jsonl", "txt")
DEFAULT_MODEL = Path("models")
Predict = Callable[[list], pd.DataFrame]


def input_format(path: Path, fmt: str, text_column: str = "text", encoding: str = "utf-8") -> str:
    if fmt != "auto":
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    for fmt, endings in (("jsonl", (".jsonl", ".ndjson", ".json")), ("tsv", (".tsv",)), ("csv", (".csv",)),
                         ("txt", (".txt", ".text"))):
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


def read_batches(path: Path, fmt: str, encoding: str, rows: int) -> Iterator[pd.DataFrame]:
    """The input in DataFrames of at most `rows` rows; every cell a string or missing."""
    enc = python_encoding(encoding)
    try:
        if fmt == "txt":
            yield from _text_lines(path, enc, rows)
        elif fmt == "jsonl":
            with pd.read_json(path, lines=True, chunksize=rows, dtype=False, encoding=enc) as reader:
                yield from reader
        else:
            with pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", chunksize=rows, encoding=enc,
                             **DELIMITED) as reader:
                yield from reader
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse as {fmt.upper()}: {' '.join(str(exc).split())}") from None


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

    from pipeline.core.tracking import _no_env_export, tracking_uri

    with _no_env_export():
        mlflow.set_tracking_uri(tracking_uri())
    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as exc:   # not found, no access, not a pyfunc model: one line with the URI
        raise StageError(f"--model {uri}: MLflow could not load it: {' '.join(str(exc).split())[:500]}") from None
    return lambda texts: model.predict(pd.Series(texts, dtype=object).to_frame("text"))


def predict_file(source: Path, target: Path, predict: Predict, *, text_column: str = "text",
                 fmt: str = "auto", encoding: str = "utf-8", batch_rows: int = 2000, keep_text: bool = False,
                 progress: bool | None = None) -> dict:
    """Stream source through the model into target (atomically); counts and timings."""
    from tqdm import tqdm

    from pipeline.core.atomic import atomic_file

    if not source.is_file():
        raise DataError(f"{source}: no such file")
    fmt = input_format(source, fmt, text_column, encoding)
    out_fmt = {".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(target.suffix.lower(), "csv")
    lines = check_encoding(source, encoding)
    started = time.perf_counter()
    counts: Counter = Counter()
    rows = empty = 0
    bar = tqdm(total=max(lines - (fmt in ("csv", "tsv")), 0), unit="doc", desc="predict", file=sys.stderr,
               disable=None if progress is None else not progress)
    with atomic_file(target) as tmp, tmp.open("w", encoding="utf-8", newline="") as out:
        for batch in read_batches(source, fmt, encoding, batch_rows):
            if text_column not in batch.columns:
                raise DataError(f"{source}: no text column {text_column!r}; the columns present are: "
                                f"{', '.join(map(str, batch.columns))} (choose one with --text-column)")
            predictions = predict(batch[text_column].tolist())
            kept = batch if keep_text else batch.drop(columns=[text_column])
            # An input column named like an output one (e.g. `predicted`) keeps its values, renamed.
            kept = kept.rename(columns={c: f"input_{c}" for c in kept.columns if c in predictions.columns})
            result = pd.concat([kept.reset_index(drop=True), predictions.reset_index(drop=True)], axis=1)
            _write(result, out, out_fmt, header=rows == 0)
            rows += len(result)
            empty += int(predictions[EMPTY].sum())
            counts.update(predictions[PREDICTED].astype(str))
            bar.update(len(result))
    bar.close()
    seconds = time.perf_counter() - started
    return {"rows": rows, "empty": empty, "seconds": seconds, "docs_per_second": rows / seconds if seconds else 0.0,
            "predicted": dict(sorted(counts.items()))}


def _write(frame: pd.DataFrame, out, fmt: str, header: bool) -> None:
    if fmt == "jsonl":
        frame.to_json(out, orient="records", lines=True, force_ascii=False)   # ends with a newline
    else:
        frame.to_csv(out, sep="\t" if fmt == "tsv" else ",", header=header, index=False, lineterminator="\n")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="CSV, TSV, JSONL or text file (one document per line)")
    p.add_argument("--output", "-o", type=Path, required=True,
                   help="where to write the predictions: .csv (default), .tsv or .jsonl")
    p.add_argument("--text-column", default="text",
                   help="the column that holds the documents (default: %(default)s; NSMC: document)")
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help="a model bundle folder (default: %(default)s, what the last `dvc repro` trained), "
                        "an MLflow model folder, runs:/<run_id>/model or models:/<name>/<version|alias>, "
                        "e.g. models:/textclf-nsmc/latest (the store: $MLFLOW_TRACKING_URI, else mlruns/)")
    p.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                   help="input format (default: from the suffix: .csv, .tsv, .jsonl/.json, .txt)")
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
    if not args.input.is_file():
        raise DataError(f"{args.input}: no such file")
    predict = open_model(args.model)
    summary = predict_file(args.input, args.output, predict, text_column=args.text_column, fmt=args.format,
                           encoding=args.encoding, batch_rows=args.batch_size, keep_text=args.keep_text)
    shares = ", ".join(f"{label} {n / max(summary['rows'], 1):.1%}" for label, n in summary["predicted"].items())
    print(f"predict: {summary['rows']:,} documents ({summary['empty']:,} empty) in {summary['seconds']:.1f} s "
          f"({summary['docs_per_second']:,.0f} docs/s); predicted {shares} -> {args.output}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
