"""evaluate stage: every candidate the train stage made, on the test split, and which one serves.

The train stage chose the champion on validation (models/champion.json: the RNN, the linear model or
their blend w * rnn + (1 - w) * linear); this stage reads the test split for the first time and
scores each candidate on it, beside its validation figures. The RNN's own figures come first and
keep their plain names: test/loss, test/accuracy, test/macro_f1, test/roc_auc and per class. The
others are prefixed: linear/test/*, blend/test/*, and champion/test/* (the served model's).
metrics.json holds them all and a `candidates` table; scores.json (the DVC metrics) the few that
compare models. plots/evaluate/: confusion.csv, roc.csv (DVC plots) and mistakes.csv of the served
model, confusion.png and roc.png (one curve per candidate), per_class.png. Everything goes to this
stage's MLflow run, and the test metrics to the train run too (models/run.json links them).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.core import log, paths, recording  # noqa: E402
from pipeline.core.atomic import write_json  # noqa: E402
from pipeline.core.cli import run_stage, stage_parser  # noqa: E402
from pipeline.core.config import Params  # noqa: E402
from pipeline.core.records import read_champion  # noqa: E402
from pipeline.model.champion import blend  # noqa: E402
from pipeline.model.evaluation import (  # noqa: E402
    MISTAKE_COLUMNS,
    evaluate,
    mistakes,
    per_class_png,
    raw_texts,
    roc_points,
    scores,
    write_mistakes,
    write_plots,
)
from pipeline.model.linear import load_linear, read_token_lists, split_rows  # noqa: E402

# dataset.*: the raw texts of the mistakes are read as the tokenize stage read them.
READS = ("dataset.name", "dataset.table.format", "dataset.table.text_columns", "dataset.table.label_column",
         "dataset.table.id_column", "dataset.table.encoding", "champion.batch_size", "evaluate.mistakes")
PLOTS = ("confusion.csv", "roc.csv", "confusion.png", "roc.png")
FIGURES = ("accuracy", "macro_f1", "loss")
# scores.json (the DVC metrics): the served model's first, as `dvc exp show` opens with the first column of
# each file when the table is wider than the terminal; then each candidate's test accuracy, the RNN's others.
SCORED = ("champion/test/accuracy", "champion/val/accuracy", "test/accuracy", "linear/test/accuracy",
          "blend/test/accuracy", "test/macro_f1", "test/loss")


def _prefixed(kind: str, metrics: dict) -> dict:
    """A candidate's scores() under its prefix; the RNN's keep their plain names."""
    return metrics if kind == "rnn" else {f"{kind}/{k}": v for k, v in metrics.items()}


def _body(params: Params, args) -> None:
    # Everything is computed before anything is written: a failure leaves every output as it was.
    result, y, rnn, labels = evaluate(paths.MODELS_DIR, paths.PREPARED_DIR, params.champion.batch_size)
    choice = read_champion(paths.MODELS_DIR, required=True).as_json()   # validated, as the train stage wrote it
    tokens = read_token_lists(paths.TOKENS)
    test = split_rows(paths.PREPARED_DIR, "test", tokens, paths.TOKENS)
    proba = _probabilities(rnn, choice, test.tokens)
    tested = {k: scores(y, p, labels) for k, p in proba.items()}
    auc = {k: roc_points(y, p)[2] for k, p in proba.items()}
    table = _candidate_rows(choice, tested, auc)
    wrong, texts_from = _mistakes(test.ids, y, proba["champion"], labels, tokens, params)
    metrics = _metrics(result, tested, auc, choice, table)
    _write(y, proba, labels, tested, wrong, metrics, choice)
    # Not with --no-track: that records nothing, the train run included.
    recording.record_evaluation(metrics, wrong, _logged_files())
    recording.record_on_train_run(metrics, params.dataset.name)
    _report(table, choice, y, proba["champion"], metrics, wrong, texts_from)


def _probabilities(rnn, choice: dict, test_tokens) -> dict:
    """Each candidate's test probabilities, and the served model's again as "champion"."""
    proba = {"rnn": rnn}
    if "linear" in choice["candidates"]:
        proba["linear"] = load_linear(paths.MODELS_DIR, "rebuild it with `dvc repro train`").predict_proba(test_tokens)
        proba["blend"] = blend(rnn, proba["linear"], choice["candidates"]["blend"]["weight"])
    proba["champion"] = proba[choice["kind"]]
    return proba


def _candidate_rows(choice: dict, tested: dict, auc: dict) -> dict:
    """metrics.json's `candidates`: each candidate's validation figures (the train stage's) beside its test ones."""
    return {k: {**{key: choice["candidates"][k][key] for key in ("val/accuracy", "val/loss")},
                **{f"test/{f}": tested[k][f"test/{f}"] for f in FIGURES}, "test/roc_auc": auc[k],
                **({"weight": choice["candidates"][k]["weight"]} if k == "blend" else {})}
            for k in choice["candidates"]}


def _mistakes(ids, y, served, labels: list[str], tokens, params: Params):
    """The served model's most confident mistakes with their raw texts, and where the texts came from."""
    wrong = mistakes(ids, y, served, labels, {}, params.evaluate.mistakes)
    if not len(wrong):
        return wrong, ""
    texts, from_raw = raw_texts(wrong["id"].to_numpy(), paths.RAW_DIR, params.dataset, tokens)
    wrong["text"] = wrong["id"].map(texts)
    return wrong, f"texts from {paths.RAW_DIR}" if from_raw else f"{paths.RAW_DIR} absent: tokens as texts"


def _metrics(result: dict, tested: dict, auc: dict, choice: dict, table: dict) -> dict:
    """metrics.json: the RNN's figures under their plain names, the other candidates' prefixed, the served model's."""
    kind = choice["kind"]
    metrics = {**result, "test/roc_auc": auc["rnn"]}
    for k in tested:
        if k != "rnn":
            metrics.update(_prefixed(k, tested[k]))
            metrics[f"{k}/test/roc_auc"] = auc[k]
    metrics.update({"champion": kind, "champion/val/accuracy": choice["candidates"][kind]["val/accuracy"],
                    "champion/val/loss": choice["candidates"][kind]["val/loss"],
                    "champion/weight": choice["weight"], "selected_on": choice["selected_on"],
                    "select_by": choice["select_by"], "candidates": table})
    return metrics


def _write(y, proba: dict, labels: list[str], tested: dict, wrong, metrics: dict, choice: dict) -> None:
    import pandas as pd

    candidates = [k for k in proba if k != "champion"]
    write_plots(y, proba["champion"], labels, paths.EVALUATE_PLOTS_DIR, f"{_name(choice)}, test",
                {k: proba[k] for k in candidates})
    per_class_png({k: tested[k]["test/per_class"] for k in candidates}, paths.PER_CLASS_PNG)
    write_mistakes(wrong if len(wrong) else pd.DataFrame(columns=MISTAKE_COLUMNS), paths.MISTAKES_CSV)
    write_json(paths.METRICS, metrics)
    write_json(paths.SCORES, {k: metrics[k] for k in SCORED if k in metrics})


def _logged_files() -> list[Path]:
    """What the run keeps of the stage's outputs: metrics.json, the plots, the mistakes."""
    plots = (*PLOTS, paths.PER_CLASS_PNG.name, paths.MISTAKES_CSV.name)
    return [paths.METRICS, *(paths.EVALUATE_PLOTS_DIR / n for n in plots)]


def _report(table: dict, choice: dict, y, served, metrics: dict, wrong, texts_from: str) -> None:
    import numpy as np

    log.note(candidate_table(table, choice["kind"], choice))
    wrong_predictions = int((served.argmax(1) != np.asarray(y)).sum())
    log.info(f"evaluate: served model {_name(choice)}: test accuracy {metrics['champion/test/accuracy']:.4f}, "
             f"macro-F1 {metrics['champion/test/macro_f1']:.4f} on {len(y):,} rows -> {paths.METRICS}")
    log.info(f"evaluate: {len(wrong):,} most confident of {wrong_predictions:,} wrong predictions of the served "
             f"model{f' ({texts_from})' if texts_from else ''} -> {paths.MISTAKES_CSV}")


def _name(choice: dict) -> str:
    return f"blend (w = {choice['weight']:g})" if choice["kind"] == "blend" else choice["kind"]


def candidate_table(table: dict, kind: str, choice: dict) -> str:
    """Every candidate's validation and test figures side by side, the served one marked."""
    lines = [f"evaluate: candidates (val: {choice['select_by']} on {choice['selected_on']}; test: this stage)",
             f"  {'candidate':<16}{'val acc':>9}{'val loss':>10}{'test acc':>10}{'macro-F1':>10}{'test loss':>11}"]
    for k, row in table.items():
        name = f"blend w={row['weight']:g}" if k == "blend" else k
        lines.append(f"  {name:<16}{row['val/accuracy']:9.4f}{row['val/loss']:10.4f}{row['test/accuracy']:10.4f}"
                     f"{row['test/macro_f1']:10.4f}{row['test/loss']:11.4f}" + ("   <- champion" if k == kind else ""))
    best, lead = choice.get("best"), choice.get("lead_se", {}).get(kind)
    if best and best != kind:
        if choice.get("named"):
            lines.append(f"  (champion.serve names {kind}; the best on validation was {best})")
        elif lead is not None:
            lines.append(f"  ({best} led {kind} on validation by {lead:g} standard errors, within "
                         f"champion.simpler_within: the simpler model serves)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_stage("evaluate", _body, stage_parser("python -m pipeline.evaluate", __doc__), argv, reads=READS)


if __name__ == "__main__":
    sys.exit(main())
