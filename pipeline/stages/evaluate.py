"""evaluate stage: the trained model on the test split, beside a linear baseline.

Writes metrics.json (test/loss, test/accuracy, test/macro_f1, test/roc_auc, and precision, recall,
F1 and support per class; the baseline's baseline/test/* and the differences
rnn_minus_baseline/test/*), scores.json (the DVC metrics: the few of these that compare models),
plots/evaluate/confusion.csv and roc.csv (DVC plots; ROC one-vs-rest, micro-averaged when there
are more than two classes) with PNGs beside them, per_class.png, and mistakes.csv: the most
confident wrong predictions with their text. The baseline (TF-IDF n-grams of the same tokens +
LogisticRegression, fitted on train + val) is evaluate.baseline. Everything is logged to this
stage's MLflow run, and the test metrics to the train run too (models/run.json links them).
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.core import paths  # noqa: E402
from pipeline.core.atomic import write_json  # noqa: E402
from pipeline.core.cli import run_stage, stage_parser  # noqa: E402
from pipeline.core.config import Params  # noqa: E402
from pipeline.model.baseline import read_token_lists, run_baseline, split_rows  # noqa: E402
from pipeline.model.evaluation import (  # noqa: E402
    MISTAKE_COLUMNS,
    evaluate,
    mistakes,
    per_class_png,
    raw_texts,
    write_mistakes,
    write_plots,
)

# dataset.*: the raw texts of the mistakes are read as the tokenize stage read them.
READS = ("dataset.name", "dataset.table.format", "dataset.table.text_columns", "dataset.table.label_column",
         "dataset.table.id_column", "dataset.table.encoding", "evaluate")
PLOTS = ("confusion.csv", "roc.csv", "confusion.png", "roc.png")
COMPARED = ("accuracy", "macro_f1")
SCORED = ("test/accuracy", "test/macro_f1", "test/loss", "baseline/test/accuracy")   # scores.json


def _body(params: Params, args) -> None:
    import pandas as pd

    from pipeline.core import tracking

    cfg = params.evaluate
    # Everything is computed before anything is written: a failure leaves every output as it was.
    result, y, proba, labels = evaluate(paths.MODELS_DIR, paths.PREPARED_DIR, cfg.batch_size)
    baseline, wrong, texts_from = None, pd.DataFrame(columns=MISTAKE_COLUMNS), ""
    if cfg.baseline.enabled or cfg.mistakes:
        tokens = read_token_lists(paths.TOKENS)
        test = split_rows(paths.PREPARED_DIR, "test", tokens, paths.TOKENS)
        if cfg.baseline.enabled:
            baseline = run_baseline(cfg.baseline, paths.TOKENS, paths.PREPARED_DIR, labels, tokens)
        wrong = mistakes(test.ids, y, proba, labels, {}, cfg.mistakes)
        if len(wrong):
            texts, from_raw = raw_texts(wrong["id"].to_numpy(), paths.RAW_DIR, params.dataset, tokens)
            wrong["text"] = wrong["id"].map(texts)
            texts_from = f"texts from {paths.RAW_DIR}" if from_raw else f"{paths.RAW_DIR} absent: tokens as texts"
    versus = {}
    if baseline is not None:
        versus = {f"baseline/test/{k}": baseline.metrics[f"test/{k}"] for k in ("loss", "accuracy", "macro_f1", "rows")}
        versus.update({f"rnn_minus_baseline/test/{k}": result[f"test/{k}"] - baseline.metrics[f"test/{k}"]
                       for k in COMPARED})

    result = {**result, "test/roc_auc": write_plots(y, proba, labels, paths.EVALUATE_PLOTS_DIR), **versus}
    per_class_png(result["test/per_class"], paths.PER_CLASS_PNG,
                  baseline.metrics["test/per_class"] if baseline is not None else None)
    write_mistakes(wrong, paths.MISTAKES_CSV)
    write_json(paths.METRICS, result)
    write_json(paths.SCORES, {k: result[k] for k in SCORED if k in result})
    if tracking.is_tracking():   # not with --no-track: that records nothing, the train run included
        import mlflow

        flat = {k: v for k, v in result.items() if isinstance(v, (int, float))}
        mlflow.log_metrics(flat)
        plots = (*PLOTS, paths.PER_CLASS_PNG.name, paths.MISTAKES_CSV.name)
        tracking.log_files([paths.METRICS, *(paths.EVALUATE_PLOTS_DIR / n for n in plots)], "evaluate")
        if len(wrong):
            mlflow.log_table(wrong, "evaluate/mistakes.json")
        train_run_id = json.loads((paths.MODELS_DIR / "run.json").read_text(encoding="utf-8")).get("run_id")
        if train_run_id:
            mlflow.set_tag("pipeline.train_run_id", train_run_id)
            tracking.log_datasets(("test",), params.dataset.name, run_id=train_run_id)   # trained on, tested on
            # The train run gets the test figures too, so one row in the MLflow UI has them all.
            client = mlflow.MlflowClient()
            for key, value in flat.items():
                client.log_metric(train_run_id, key, value)
    print(f"evaluate: test accuracy {_versus(result, 'accuracy')}, macro-F1 {_versus(result, 'macro_f1')}, "
          f"ROC AUC {result['test/roc_auc']:.4f} on {result['test/rows']:,} rows -> {paths.METRICS}")
    print(f"evaluate: {len(wrong):,} most confident of {int((proba.argmax(1) != y).sum()):,} wrong predictions"
          f"{f' ({texts_from})' if texts_from else ''} -> {paths.MISTAKES_CSV}")


def _versus(result: dict, key: str) -> str:
    """Like "0.8224 (baseline 0.8551, -0.0327)"; the figure alone without a baseline."""
    ours = f"{result[f'test/{key}']:.4f}"
    if f"baseline/test/{key}" not in result:
        return ours
    return f"{ours} (baseline {result[f'baseline/test/{key}']:.4f}, {result[f'rnn_minus_baseline/test/{key}']:+.4f})"


def main(argv: list[str] | None = None) -> int:
    return run_stage("evaluate", _body, stage_parser("python -m pipeline.evaluate", __doc__), argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
