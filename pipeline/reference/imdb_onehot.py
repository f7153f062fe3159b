"""The NumPy RNN on the one-hot IMDB data of the experiment imdb-onehot-simplernn.

    dvc exp apply imdb-onehot-simplernn      # its data/prepared into the workspace (or run it there)
    python -m pipeline.reference.imdb_onehot

It trains `NumpyRNN` (token ids read as one-hot vectors, BPTT, mini-batch SGD with gradient-norm
clipping) on data/prepared's train split, keeps the epoch with the best validation accuracy, and
scores it on the test split: the same rows the Keras SimpleRNN of that experiment sees. The run is
logged to MLflow (experiment textclf-<dataset>, tag pipeline.experiment numpy-rnn-onehot), so
`python -m pipeline.experiments results` lists it beside the Keras runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from pipeline.core import paths
from pipeline.core.atomic import write_json
from pipeline.core.cli import run_command
from pipeline.core.errors import DataError
from pipeline.core.records import read_prepared_record
from pipeline.reference.numpy_rnn import NumpyRNN

EXPERIMENT_TAG = "numpy-rnn-onehot"


def load_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    path = folder / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: missing; run the imdb-onehot-simplernn experiment and "
                        "`dvc exp apply imdb-onehot-simplernn` first (see docs/experiments.md)")
    with np.load(path) as data:
        return data["x"].astype(np.int64), data["y"].astype(np.float64)


def check_binary(folder: Path) -> list[str]:
    if not (folder / "labels.json").is_file():
        raise DataError(f"{folder}/labels.json: missing; run the prepare stage (or the imdb-onehot-simplernn "
                        "experiment) first")
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    if len(labels) != 2:
        raise DataError(f"{folder}/labels.json: {len(labels)} classes; the NumPy RNN is a binary classifier")
    return labels


def train_reference(folder: Path, hidden: int, learning_rate: float, clip_norm: float | None, epochs: int,
                    batch_size: int, truncate: int | None, seed: int, log_epoch=None) -> tuple[NumpyRNN, dict]:
    """Fit on train, keep the best validation epoch's weights, score test; (model, summary)."""
    x_train, y_train = load_split(folder, "train")
    x_val, y_val = load_split(folder, "val")
    vocab_size = len(json.loads((folder / "vocab.json").read_text(encoding="utf-8")))
    model = NumpyRNN(vocab_size, hidden, learning_rate=learning_rate, truncate=truncate, seed=seed,
                     clip_norm=clip_norm)
    best = {"val_accuracy": -1.0}
    started = time.perf_counter()

    def keep_best(row: dict) -> None:
        if row["val_accuracy"] > best["val_accuracy"]:
            best.update(row, params={k: v.copy() for k, v in model.params.items()})
        if log_epoch is not None:
            log_epoch(row)

    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, validation=(x_val, y_val),
              verbose=True, on_epoch_end=keep_best)
    model.params = best.pop("params")
    x_test, y_test = load_split(folder, "test")
    summary = {"best_epoch": best["epoch"], "val_accuracy": best["val_accuracy"],
               "test_accuracy": model.score(x_test, y_test), "seconds": time.perf_counter() - started,
               "rows": {"train": len(y_train), "val": len(y_val), "test": len(y_test)},
               "vocab_size": vocab_size, "maxlen": int(x_train.shape[1]), "history": model.history}
    return model, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.reference.imdb_onehot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", type=Path, default=paths.PREPARED_DIR, help="default: %(default)s")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units (default: %(default)s, as the seed)")
    parser.add_argument("--learning-rate", type=float, default=0.03, help="SGD step (default: %(default)s)")
    parser.add_argument("--clip-norm", type=float, default=1.0,
                        help="gradient global-norm cap; 0: none (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=40, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--truncate", type=int, default=0, help="BPTT steps; 0: full BPTT (default)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and shuffling (default: %(default)s)")
    parser.add_argument("-o", "--output", type=Path, default=Path("reference/numpy_rnn_imdb.json"),
                        help="summary and per-epoch history (default: %(default)s)")
    parser.add_argument("--no-track", action="store_true", help="don't log to MLflow")
    args = parser.parse_args(argv)
    options = {"hidden": args.hidden, "learning_rate": args.learning_rate, "clip_norm": args.clip_norm or None,
               "epochs": args.epochs, "batch_size": args.batch_size, "truncate": args.truncate or None,
               "seed": args.seed}

    def run() -> None:
        labels = check_binary(args.prepared)
        tracked = nullcontext() if args.no_track else _mlflow_run(args.prepared, options)
        with tracked as active:
            if active:
                import mlflow

                mlflow.set_tag("pipeline.experiment", EXPERIMENT_TAG)
                mlflow.log_params({f"reference.{k}": str(v) for k, v in options.items()})
            log_epoch = _epoch_logger() if active else None
            _, summary = train_reference(args.prepared, log_epoch=log_epoch, **options)
            summary.update(options=options, labels=labels)
            if active:
                mlflow.log_metrics({"best/val_accuracy": summary["val_accuracy"], "best/epoch": summary["best_epoch"],
                                    "test/accuracy": summary["test_accuracy"], "seconds": summary["seconds"]})
            args.output.parent.mkdir(parents=True, exist_ok=True)
            write_json(args.output, summary)
            if active:
                mlflow.log_artifact(str(args.output), "reference")
        print(f"reference: NumPy SimpleRNN({args.hidden}) best epoch {summary['best_epoch']}: val accuracy "
              f"{summary['val_accuracy']:.4f}, test accuracy {summary['test_accuracy']:.4f} "
              f"({summary['seconds']:.0f} s) -> {args.output}")

    return run_command("reference", run)


def _mlflow_run(folder: Path, options: dict):
    """The stages' own run wrapper: FINISHED, FAILED on an error, KILLED on Ctrl-C or SIGTERM."""
    from pipeline.core.config import parse_params
    from pipeline.core.tracking import stage_run

    dataset = read_prepared_record(folder).dataset.get("name")
    if not dataset:
        raise DataError(f"{folder}/params.json: no dataset.name (not written by the prepare stage?)")
    return stage_run("reference", parse_params({}), reads=(), dataset=dataset, run_name="reference numpy-rnn")


def _epoch_logger():
    import mlflow

    def log(row: dict) -> None:
        mlflow.log_metrics({"train/loss": row["loss"], "train/accuracy": row["accuracy"],
                            "val/loss": row["val_loss"], "val/accuracy": row["val_accuracy"]}, step=row["epoch"])
    return log


if __name__ == "__main__":
    sys.exit(main())
