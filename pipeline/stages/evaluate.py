"""evaluate stage: the trained model on the test split.

Writes metrics.json (DVC metrics: test/loss, test/accuracy, test/macro_f1, and precision, recall,
F1 and support per class), plots/evaluate/confusion.csv and roc.csv (DVC plots; ROC one-vs-rest,
micro-averaged when there are more than two classes) with PNGs beside them. Everything is logged
to this stage's MLflow run, and the test metrics to the train run too (models/run.json links them).
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
from pipeline.model.evaluation import evaluate, write_plots  # noqa: E402

READS = ("evaluate",)


def _body(params: Params, args) -> None:
    from pipeline.core import tracking

    result, y, proba, labels = evaluate(paths.MODELS_DIR, paths.PREPARED_DIR, params.evaluate.batch_size)
    result["test/roc_auc"] = write_plots(y, proba, labels, paths.EVALUATE_PLOTS_DIR)
    write_json(paths.METRICS, result)
    if tracking.is_tracking():   # not with --no-track: that records nothing, the train run included
        import mlflow

        flat = {k: v for k, v in result.items() if isinstance(v, (int, float))}
        mlflow.log_metrics(flat)
        plots = ("confusion.csv", "roc.csv", "confusion.png", "roc.png")
        tracking.log_files([paths.METRICS, *(paths.EVALUATE_PLOTS_DIR / n for n in plots)], "evaluate")
        train_run_id = json.loads((paths.MODELS_DIR / "run.json").read_text(encoding="utf-8")).get("run_id")
        if train_run_id:
            mlflow.set_tag("pipeline.train_run_id", train_run_id)
            # The train run gets the test figures too, so one row in the MLflow UI has them all.
            client = mlflow.MlflowClient()
            for key, value in flat.items():
                client.log_metric(train_run_id, key, value)
    print(f"evaluate: test accuracy {result['test/accuracy']:.4f}, macro-F1 {result['test/macro_f1']:.4f}, "
          f"ROC AUC {result['test/roc_auc']:.4f} on {result['test/rows']:,} rows -> {paths.METRICS}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("evaluate", _body, stage_parser("python -m pipeline.evaluate", __doc__), argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
