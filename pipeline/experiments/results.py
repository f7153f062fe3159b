"""docs/RESULTS.md and docs/results.png from the experiments' MLflow runs: the tutorials' figures
beside ours, with the seed's settings and tuned.

docs/results.json keeps every outcome shown, so results accumulate across MLflow stores: a variant
the store holds takes its row from the store; one it lacks keeps the row measured before (with
that run's id and commit) instead of turning into "not run".
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from pipeline.core.atomic import atomic_file, write_json, write_png
from pipeline.core.errors import ExperimentError
from pipeline.experiments.spec import SEED_METRICS, Experiment
from pipeline.reference.imdb_onehot import EXPERIMENT_TAG as REFERENCE_TAG

RESULTS = Path("docs/RESULTS.md")
FIGURE = "results.png"            # beside RESULTS.md
OUTCOMES = "results.json"         # beside RESULTS.md: the outcomes shown, machine-readable
RESULT_STAGES = ("train", "reference")


@dataclass(frozen=True)
class Outcome:
    """What MLflow holds for one variant: the latest evaluated train run tagged with its name."""
    run_id: str
    val_accuracy: float | None
    test_accuracy: float | None
    best_epoch: int | None
    params: Mapping[str, str]
    commit: str
    baseline_accuracy: float | None = None   # the linear model's test accuracy (runs since it exists)
    champion: str | None = None              # the served kind (rnn, linear, blend; runs since the champion)
    champion_accuracy: float | None = None   # the served model's test accuracy

    def accuracy(self, metric: str) -> float | None:
        """On the split `metric` names: test/accuracy or val/accuracy (the best epoch's)."""
        return self.test_accuracy if metric == "test/accuracy" else self.val_accuracy


def find_outcomes(names: Sequence[str]) -> dict[str, Outcome]:
    """name -> the latest FINISHED train run of `dvc exp run -n name` that evaluate scored (or the
    NumPy reference's run, which scores itself)."""
    import mlflow

    from pipeline.core import tracking

    tracking_uri = tracking.tracking_uri()
    tracking.check_reachable(tracking_uri, way_out="")   # in seconds, not after MLflow's minutes of retries
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    try:
        experiment_ids = [e.experiment_id for e in client.search_experiments()
                          if e.name.startswith(tracking.experiment_name(""))]
        if not experiment_ids or not names:
            return {}
        # MLflow's filter has no IN for tags: every finished run, newest first, then sorted out here.
        runs = client.search_runs(experiment_ids, filter_string="attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], max_results=50000)
    except Exception as exc:   # a store that cannot be read: one line, as the stages report it
        raise ExperimentError(f"MLflow tracking at {tracking_uri}: {' '.join(str(exc).split())}") from None
    wanted = set(names)
    found: dict[str, Outcome] = {}
    for run in runs:
        name = run.data.tags.get("pipeline.experiment")
        metrics = run.data.metrics
        if run.data.tags.get("pipeline.stage") not in RESULT_STAGES or name not in wanted or name in found:
            continue
        if "test/accuracy" not in metrics:
            continue   # a train run evaluate never scored is not a result
        epoch = metrics.get("best/epoch")
        found[name] = Outcome(run.info.run_id, metrics.get("best/val_accuracy"), metrics.get("test/accuracy"),
                              None if epoch is None else int(epoch), dict(run.data.params),
                              run.data.tags.get("git.commit", "")[:7],
                              metrics.get("linear/test/accuracy", metrics.get("baseline/test/accuracy")),
                              run.data.tags.get("champion"), metrics.get("champion/test/accuracy"))
    return found


def read_outcomes(path: Path) -> dict[str, Outcome]:
    """name -> Outcome as write_outcomes wrote them; {} when there is no such file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: Outcome(**fields) for name, fields in data.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:   # one line, as the stages report it
        raise ExperimentError(f"{path}: not a results file ({exc}); fix it, or pass --fresh") from None


def write_outcomes(path: Path, outcomes: Mapping[str, Outcome]) -> None:
    write_json(path, {name: dataclasses.asdict(outcome) for name, outcome in outcomes.items()})


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _ours(outcome: Outcome | None, metric: str) -> str:
    if outcome is None:
        return "not run"
    other = next(m for m in SEED_METRICS if m != metric)
    # An ensemble has no one best epoch: train logs best/epoch 0 for it (each member stops on its own).
    when = f"epoch {outcome.best_epoch}" if outcome.best_epoch else "ensemble"
    return f"**{_figure(outcome.accuracy(metric))}** ({other.split('/')[0]} {_figure(outcome.accuracy(other))}, {when})"


def _baseline(seed: Outcome | None, tuned: Outcome | None) -> str:
    """The linear baseline's test accuracy of the runs shown: one figure when they agree (the same
    prepared data), else each; "—" for a run made before the baseline existed."""
    runs = {"ours": seed, "tuned": tuned}
    values = {name: run.baseline_accuracy for name, run in runs.items() if run is not None}
    if len(set(values.values())) <= 1:
        return _figure(next(iter(values.values()), None))
    return " / ".join(f"{name} {_figure(value)}" for name, value in values.items())


def _champion(seed: Outcome | None, tuned: Outcome | None) -> str:
    """The served model's kind and test accuracy, as _baseline shows the linear model's."""
    runs = {"ours": seed, "tuned": tuned}
    values = {name: "—" if run.champion_accuracy is None else f"{run.champion} {run.champion_accuracy:.4f}"
              for name, run in runs.items() if run is not None}
    if len(set(values.values())) <= 1:
        return next(iter(values.values()), "—")
    return " / ".join(f"{name} {value}" for name, value in values.items())


def _tuned_summary(experiment: Experiment, tuned: Outcome | None, seed: Outcome | None) -> str:
    """The train values the tuned run used that differ from the seed run's (or the file's)."""
    if tuned is None:
        return ""
    if seed is not None:
        base = seed.params
    else:
        base = {k: str(v) for k, v in experiment.params.items() if k.startswith("train.")}
    prepared = str(experiment.params.get("prepare.maxlen", ""))
    changed = []
    for key, value in sorted(tuned.params.items()):
        if not key.startswith("train.") or key == "train.use_tuned" or key not in base or base[key] == value:
            continue
        if key == "train.maxlen" and base[key] == "0" and value == prepared:
            continue   # 0 means "as prepared": the same length
        changed.append(f"{key.removeprefix('train.')} {_short(value)}")
    return ", ".join(changed) or "the seed's settings"


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() else f"{number:.3g}"


def render_results(experiments: Sequence[Experiment], outcomes: Mapping[str, Outcome]) -> str:
    lines = [
        "# Results: the tutorials' experiments, reproduced",
        "",
        "Generated by `python -m pipeline.experiments results` from the MLflow store (do not edit by",
        "hand). Each experiment is a file in `experiments/`; `python -m pipeline.experiments run NAME`",
        "runs it with `dvc exp run`, and `--tuned` runs the tune stage first (see docs/experiments.md).",
        f"Rows come from the store or, when the store lacks them, from [{OUTCOMES}]({OUTCOMES}) beside",
        "this file: earlier measurements, with their MLflow run id and commit (`--fresh`: the store only).",
        "",
        "The bold figure is on the split the tutorial reported (its metric column); the other split",
        "is in brackets. *Ours* uses the tutorial's settings; *tuned* is the same experiment after an",
        "Optuna study, and *tuned values* lists the train values it used that differ from the seed",
        "run's. \"not run\" means neither holds an evaluated run. The last two columns are the test",
        "accuracy of the linear model the train stage fits beside every RNN (TF-IDF n-grams of the same",
        "tokens + LogisticRegression, on train + val) and of the champion it served (the RNN, the linear",
        "model or their blend, chosen on validation; see docs/models.md); \"—\" for runs made before them.",
        "",
        f"![The tutorials' figures, ours, ours tuned]({FIGURE})",
        "",
        "| experiment | metric | tutorial | ours | ours, tuned | tuned values | linear model (test) "
        "| champion (test) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in experiments:
        seed, tuned = outcomes.get(e.run_name(False)), outcomes.get(e.run_name(True))
        lines.append(f"| `{e.name}`: {e.title} | {e.seed.metric} | {_figure(e.seed.value)} | "
                     f"{_ours(seed, e.seed.metric)} | {_ours(tuned, e.seed.metric)} | "
                     f"{_tuned_summary(e, tuned, seed)} | {_baseline(seed, tuned)} | {_champion(seed, tuned)} |")
    lines += ["", "## The from-scratch NumPy RNN", ""]
    reference = outcomes.get(REFERENCE_TAG)
    if reference is None:
        lines.append("Not run (`python -m pipeline.reference.imdb_onehot`, see docs/experiments.md).")
    else:
        p = reference.params
        lines.append(f"`pipeline/reference/numpy_rnn.py`: SimpleRNN({p.get('reference.hidden')}) written in NumPy, "
                     f"SGD at {p.get('reference.learning_rate')} with gradient-norm clipping at "
                     f"{p.get('reference.clip_norm')}, batch {p.get('reference.batch_size')}, "
                     f"{p.get('reference.epochs')} epochs, on the data of `imdb-onehot-simplernn`. Validation "
                     f"accuracy **{_figure(reference.val_accuracy)}** (best epoch {reference.best_epoch}), test "
                     f"{_figure(reference.test_accuracy)}; MLflow run `{reference.run_id}` "
                     f"(commit {reference.commit}).")
    lines += ["", "## Notes per experiment", ""]
    for e in experiments:
        lines.append(f"- **`{e.name}`** ({e.seed.source or 'source not given'}).")
        if e.notes:
            lines.append("  " + " ".join(e.notes.split()))
        for variant in (False, True):
            outcome = outcomes.get(e.run_name(variant))
            if outcome:
                lines.append(f"  `{e.run_name(variant)}`: MLflow run `{outcome.run_id}` (commit {outcome.commit}).")
    return "\n".join(lines) + "\n"


def _accuracy(outcome: Outcome | None, metric: str) -> float:
    value = None if outcome is None else outcome.accuracy(metric)
    return math.nan if value is None else value


def results_figure(experiments: Sequence[Experiment], outcomes: Mapping[str, Outcome]):
    """Grouped bars per experiment: the tutorial's figure, ours, ours tuned (on the seed's metric)."""
    from matplotlib.figure import Figure

    series = {"tutorial": [math.nan if e.seed.value is None else e.seed.value for e in experiments],
              "ours": [_accuracy(outcomes.get(e.run_name(False)), e.seed.metric) for e in experiments],
              "ours, tuned": [_accuracy(outcomes.get(e.run_name(True)), e.seed.metric) for e in experiments]}
    figure = Figure(figsize=(10, 0.55 * len(experiments) + 1.5), dpi=100)
    axes = figure.subplots()
    height = 0.27
    for i, (label, values) in enumerate(series.items()):
        rows = [n + (i - 1) * height for n in range(len(experiments))]
        bars = axes.barh(rows, [0 if math.isnan(v) else v for v in values], height, label=label,
                         color=("#999999", "#4c72b0", "#55a868")[i])
        for bar, value in zip(bars, values):
            if not math.isnan(value):
                axes.text(value + 0.005, bar.get_y() + height / 2, f"{value:.3f}", va="center", fontsize=7)
    axes.set_yticks(range(len(experiments)),
                    [f"{e.name} ({e.seed.metric.split('/')[0]})" for e in experiments], fontsize=8)
    axes.invert_yaxis()
    shown = [v for values in series.values() for v in values if not math.isnan(v)]
    axes.set(xlim=(min([0.4, *shown]) - 0.02, 1.0), xlabel="accuracy (the split the tutorial reported)",
             title="The tutorials' figures, ours with their settings, ours tuned")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def write_results(target: Path, experiments: Sequence[Experiment], fresh: bool = False) -> dict[str, Outcome]:
    """RESULTS.md and, beside it, results.png and results.json; each written atomically. The store's
    outcomes replace results.json's of the same name; the others stay (unless `fresh`)."""
    names = [e.run_name(t) for e in experiments for t in (False, True)] + [REFERENCE_TAG]
    earlier = {} if fresh else read_outcomes(target.with_name(OUTCOMES))
    merged = {**earlier, **find_outcomes(names)}
    outcomes = {name: merged[name] for name in names if name in merged}
    target.parent.mkdir(parents=True, exist_ok=True)
    write_outcomes(target.with_name(OUTCOMES), outcomes)
    write_png(results_figure(experiments, outcomes), target.with_name(FIGURE))
    with atomic_file(target) as tmp:
        tmp.write_text(render_results(experiments, outcomes), encoding="utf-8")
    return outcomes
