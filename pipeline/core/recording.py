"""What the stages record in MLflow, one adapter per concern, taking the results the stages computed.

A stage body loads, computes (plain functions that return results), writes its outputs, and hands
the results to these adapters. Each adapter is a no-op without an active run (`--no-track`) or off
the chief (core/log.py), so the bodies carry no `if tracking` or `if chief` guards. `record_epoch`
is the training loop's per-epoch callback. The names of params, metrics, tags and artifacts are the
ones docs/tracking.md lists. Results come as the library returns them (a FitResult, a champion
Choice, dicts): read by attribute here, never imported, as core imports no layer above it.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from pipeline.core import log, paths, tracking
from pipeline.core.errors import mask_credentials

F = TypeVar("F", bound=Callable[..., Any])
# The RNN bundle's parts the train run keeps as artifacts (the rest is the registered model's).
MODEL_FILES = ("vocab.json", "labels.json", "params.json", "history.json", "learning_curve.png")
PREPARED_FILES = ("vocab.json", "labels.json", "params.json", "preprocess.json")


def recording() -> bool:
    """Whether this process records: a stage run is active (not --no-track) and it is the chief."""
    return log.is_chief() and tracking.is_tracking()


def _adapter(record: F) -> F:
    """`record`, done only while recording(); None otherwise."""
    @functools.wraps(record)
    def adapter(*args: Any, **kwargs: Any) -> Any:
        return record(*args, **kwargs) if recording() else None
    return adapter  # type: ignore[return-value]


def current_run_id() -> str | None:
    """The id of the run this process records into; None when it records nothing."""
    if not recording():
        return None
    import mlflow

    return mlflow.active_run().info.run_id


def _numbers(metrics: dict) -> dict:
    """The numeric values of a flat metrics dict (a flag is not a measurement)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# download ----------------------------------------------------------------------------------------

@_adapter
def record_download(manifest: dict, dataset: str) -> None:
    import mlflow

    files = manifest["files"]
    mlflow.log_metrics({"download/files": len(files), "download/bytes": sum(f["size"] for f in files)})
    mlflow.log_dict(manifest, "download/manifest.json")
    # The run started with the previous manifest's checksums; these are the files just laid out.
    mlflow.set_tags(tracking.data_tags())
    tracking.log_datasets(("raw",), dataset)   # likewise the dataset input


# tokenize, prepare -------------------------------------------------------------------------------

@_adapter
def record_tokenize(stats: dict) -> None:
    # "params" are the run's params already; as metrics they would only be noise.
    tracking.log_stats({k: v for k, v in stats.items() if k != "params"}, "tokenize")
    tracking.log_files([paths.TOKENIZE_STATS], "tokenize")


@_adapter
def record_prepare(stats: dict, train_raw_lengths, maxlen: int) -> None:
    import mlflow

    from pipeline.core.plotting import histogram_figure

    tracking.log_stats(stats, "prepare")
    tracking.log_files([paths.PREPARE_STATS, paths.LENGTHS_PLOT] + [paths.PREPARED_DIR / f for f in PREPARED_FILES],
                       "prepare")
    mlflow.log_figure(histogram_figure(
        train_raw_lengths, maxlen, f"maxlen {maxlen} (covers {stats['maxlen_covers_train_rows']:.1%})",
        "tokens per row", "Training rows per token length"), "prepare/lengths.png")


# tune --------------------------------------------------------------------------------------------

@_adapter
def record_study(study: str, storage: str, worker: str, role: str, seed: int | None, train_rows: int) -> None:
    """The study this run works on (storage without its password), before its trials."""
    import mlflow

    mlflow.set_tags({"optuna.study": study, "optuna.storage": storage, "optuna.worker": worker, "optuna.role": role})
    mlflow.log_params({"tune.sampler_seed_used": seed, "tune.train_rows": train_rows})


@_adapter
def record_tuning(info: dict, plots: Iterable[str]) -> None:
    """The best trial (tune/study.json's summary) and the stage's files."""
    import mlflow

    best, gain = info["best"], info["gain"]
    mlflow.set_tags({"tune.best_trial": str(best["trial"]), "tune.best_value": f"{best['value']:.6g}",
                     "tune.best_run_id": str(best["mlflow_run_id"])})
    mlflow.log_metrics({"tune/best_value": best["value"],
                        **({"tune/gain_over_params_yaml": gain["improvement"]} if gain else {}),
                        **{f"tune/trials/{k}": v for k, v in info["trials"].items()}})
    tracking.log_files([paths.BEST_PARAMS, paths.TUNE_SUMMARY, paths.TRIALS_CSV], "tune")
    tracking.log_files([paths.TUNE_PLOTS_DIR / f"{p}.png" for p in plots], "tune/plots")


# train -------------------------------------------------------------------------------------------

@_adapter
def record_setup(strategy, fused_kernel: bool, tuned: dict) -> None:
    """How this run trains: the strategy and its replicas, the cuDNN kernel, where tuned values came from."""
    import mlflow

    mlflow.log_params({"train.replicas": strategy.num_replicas_in_sync, "train.strategy": type(strategy).__name__})
    mlflow.set_tag("train.fused_kernel", str(fused_kernel).lower())
    mlflow.set_tags({f"tune.{k}": str(v) for k, v in tuned.items() if k != "params" and v is not None})


@_adapter
def claim_backup(backup: Path) -> str | None:
    """The run that trained into this backup before ('' if none), this run's id put in its place:
    a run that resumes the backup says which one it continues (record_resume)."""
    run_file = backup / "mlflow_run_id"
    previous = run_file.read_text(encoding="utf-8").strip() if run_file.is_file() else ""
    run_file.write_text(current_run_id(), encoding="utf-8")
    return previous


@_adapter
def record_epoch(epoch: int, row: dict) -> None:
    """The training loop's per-epoch callback: the epoch's split/metric figures, at step epoch + 1."""
    import mlflow

    mlflow.log_metrics({k: v for k, v in row.items() if "/" in k}, step=epoch + 1)


@_adapter
def record_resume(result, previous: str | None) -> None:
    """A fit resumed from its backup: from which epoch, the run it continues, and the epochs before
    it, so this run holds the whole learning curve, not only its tail."""
    if not result.resumed_from_epoch:
        return
    import mlflow

    mlflow.set_tags({"train.resumed_from_epoch": str(result.resumed_from_epoch),
                     **({tracking.RESUMES_TAG: previous} if previous else {})})
    if not result.members:   # an ensemble's members each log their own curve
        for epoch, row in enumerate(result.history[:result.resumed_from_epoch]):
            record_epoch(epoch, row)


@_adapter
def record_training(result) -> None:
    """The kept model's validation figures, and the epochs of a refit on train + val."""
    import mlflow

    best = result.best
    mlflow.log_metrics({"best/val_loss": best["val/loss"], "best/val_accuracy": best["val/accuracy"],
                        "best/epoch": result.best_epoch})
    if result.refit_epochs:
        mlflow.set_tag("train.refit_epochs", ",".join(map(str, result.refit_epochs)))


@_adapter
def record_champion(choice) -> None:
    """Every candidate's validation figures, and which one serves, chosen how."""
    import mlflow

    mlflow.log_metrics({f"{kind}/{key}": value for kind, figures in choice.candidates.items()
                        for key, value in figures.items()})
    mlflow.set_tags({"champion": choice.kind, "champion.selected_on": choice.selected_on,
                     "champion.select_by": choice.select_by})


@_adapter
def record_models() -> None:
    """The RNN bundle's small parts and its learning curve, from models/ as written."""
    tracking.log_files([paths.MODELS_DIR / name for name in MODEL_FILES], "train")


# evaluate ----------------------------------------------------------------------------------------

@_adapter
def record_evaluation(metrics: dict, mistakes, files: Iterable[Path]) -> None:
    """The test figures (metrics.json's numbers), the served model, the plots and the mistakes."""
    import mlflow

    mlflow.log_metrics(_numbers(metrics))
    mlflow.set_tags({"champion": metrics["champion"], "champion.selected_on": metrics["selected_on"]})
    tracking.log_files(files, "evaluate")
    if len(mistakes):
        mlflow.log_table(mistakes, "evaluate/mistakes.json")


@_adapter
def record_on_train_run(metrics: dict, dataset: str) -> None:
    """The train run of models/ (models/run.json) gets the test figures and the test data too, so one
    row in the MLflow UI has them all; this run links it. Nothing when it is in another store."""
    import mlflow

    client = mlflow.MlflowClient()
    train_run_id = json.loads((paths.MODELS_DIR / "run.json").read_text(encoding="utf-8")).get("run_id")
    if train_run_id and not _in_store(client, train_run_id):
        # models/ trained against another store (a new $MLFLOW_TRACKING_URI, a removed mlruns/).
        log.note(f"evaluate: the train run of models/ ({train_run_id}) is not in this MLflow store "
                 f"({mask_credentials(mlflow.get_tracking_uri())}): the test figures are logged on this run only")
        return
    if not train_run_id:
        return
    mlflow.set_tag("pipeline.train_run_id", train_run_id)
    tracking.log_datasets(("test",), dataset, run_id=train_run_id)   # trained on, tested on
    for key, value in _numbers(metrics).items():
        client.log_metric(train_run_id, key, value)


def _in_store(client, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
        return True
    except MlflowException:
        return False
