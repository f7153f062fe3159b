"""The tutorials' experiments as named configurations, run with `dvc exp run`, compared in MLflow.

An experiment is a file experiments/<name>.yaml:

    title: what it is, in a line
    seed: {metric: test/accuracy, value: 0.805, source: where the figure comes from}
    notes: what differs from the tutorial and why (optional)
    params: {dotted.params.key: value, ...}      # over params.yaml: the tutorial's settings
    tuned: {tune.n_trials: 10, ...}               # over params: what `--tuned` adds

`run NAME` is `dvc exp run -n NAME -S key=value ...` (the seed's settings, no tuning: tune.n_trials
0, train.use_tuned false); `run NAME --tuned` is the experiment NAME-tuned, where the tune stage
searches first and train uses its best trial. DVC names the experiment in the stages' environment
(DVC_EXP_NAME); every MLflow run the stages start is tagged `pipeline.experiment` with it.
`results` reads those runs back and writes docs/RESULTS.md.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipeline.atomic import atomic_file, write_png
from pipeline.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from pipeline.config import ParamsError, check_params, read_yaml
from pipeline.reference.imdb_onehot import EXPERIMENT_TAG as REFERENCE_TAG

EXPERIMENTS_DIR = Path("experiments")
RESULTS = Path("docs/RESULTS.md")
FIGURE = "results.png"            # beside RESULTS.md
TUNED_SUFFIX = "-tuned"
SEED_METRICS = ("test/accuracy", "val/accuracy")
RESULT_STAGES = ("train", "reference")
# What "the seed's settings" means for the pipeline's own stages: no search, params as given.
UNTUNED = {"tune.n_trials": 0, "train.use_tuned": False}
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_KEY = re.compile(r"[A-Za-z_][\w.]*")
_TOP_KEYS = {"title", "seed", "notes", "params", "tuned"}


class ExperimentError(ValueError):
    """A bad experiment file or name; printed as one line."""


@dataclass(frozen=True)
class SeedFigure:
    metric: str          # test/accuracy | val/accuracy: the split the tutorial reported
    value: float | None  # None: the tutorial gives no figure for this variant
    source: str


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    seed: SeedFigure
    notes: str
    params: Mapping[str, Any]
    tuned: Mapping[str, Any] = field(default_factory=dict)

    def overrides(self, tuned: bool) -> dict[str, Any]:
        """The params.yaml keys this run sets, in the file's order."""
        if tuned:
            return {**self.params, "train.use_tuned": True, **self.tuned}
        return {**self.params, **UNTUNED}

    def run_name(self, tuned: bool) -> str:
        return self.name + TUNED_SUFFIX if tuned else self.name


def read_base(params_file: Path = Path("params.yaml")) -> dict[str, Any]:
    """params.yaml's raw data, which every experiment is applied over (read once per command)."""
    try:
        return read_yaml(params_file) or {}
    except FileNotFoundError:
        raise ExperimentError(f"{params_file}: file not found (run from the repo root)") from None
    except ParamsError as exc:
        raise ExperimentError(str(exc)) from None


def load_experiment(path: Path, base: Mapping[str, Any]) -> Experiment:
    """Read and check one experiment file: both of its variants, applied over `base` (params.yaml's
    data, see read_base), must make a valid params.yaml."""
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such experiment (see python -m pipeline.experiments list)") from None
    except ParamsError as exc:
        raise ExperimentError(str(exc)) from None
    name = path.stem
    if not _NAME.fullmatch(name) or name.endswith(TUNED_SUFFIX):
        raise ExperimentError(f"{path}: the name must be lower-case letters, digits and '-', "
                              f"not ending in {TUNED_SUFFIX}")
    if not isinstance(raw, dict):
        raise ExperimentError(f"{path}: expected a mapping with {', '.join(sorted(_TOP_KEYS))}")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ExperimentError(f"{path}: {unknown[0]}: unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
    experiment = Experiment(name=name, title=str(raw.get("title") or name), seed=_seed(raw.get("seed"), path),
                            notes=str(raw.get("notes") or "").strip(), params=_overrides(raw, "params", path),
                            tuned=_overrides(raw, "tuned", path))
    if not experiment.tuned.get("tune.n_trials"):
        raise ExperimentError(f"{path}: tuned: tune.n_trials: required (> 0) for the tuned variant")
    for tuned in (False, True):
        where = f"{path} ({'tuned' if tuned else 'params'})"
        try:
            check_params(apply(base, experiment.overrides(tuned), where), where)
        except ParamsError as exc:
            raise ExperimentError(str(exc)) from None
    return experiment


def _seed(raw: Any, path: Path) -> SeedFigure:
    if not isinstance(raw, dict) or raw.get("metric") not in SEED_METRICS:
        raise ExperimentError(f"{path}: seed: needs metric ({' | '.join(SEED_METRICS)}), value and source")
    value = raw.get("value")
    if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise ExperimentError(f"{path}: seed.value: expected an accuracy in [0, 1] or null, got {value!r}")
    return SeedFigure(raw["metric"], None if value is None else float(value), str(raw.get("source") or ""))


def _overrides(raw: dict, section: str, path: Path) -> dict[str, Any]:
    values = raw.get(section) or {}
    if not isinstance(values, dict):
        raise ExperimentError(f"{path}: {section}: expected a mapping of dotted params.yaml keys")
    for key in values:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ExperimentError(f"{path}: {section}: {key!r}: expected a dotted params.yaml key")
    return dict(values)


def apply(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """params.yaml's data with dotted keys replaced, as `dvc exp run -S` replaces them."""
    data = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        target = data
        for part in parents:
            target = target.get(part) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                raise ExperimentError(f"{where}: {key}: no such section in params.yaml")
        if leaf not in target:
            # DVC refuses a key params.yaml lacks; say so here, with the file's name.
            raise ExperimentError(f"{where}: {key}: unknown key (not in params.yaml)")
        target[leaf] = value
    return data


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar, which `dvc exp run -S` parses."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExperimentError(f"{value!r}: not a finite number")
        return repr(value)
    if isinstance(value, str):
        # Quoted always: unquoted Hydra strings cannot hold Hangul, spaces or most punctuation.
        # Inside quotes Hydra reads a backslash as an escape only before a quote (or before more
        # backslashes and then a quote), so only those runs are doubled: regexes keep their \d.
        # Double quotes, so the shell line printed with single quotes around each argument reads well.
        quoted = re.sub(r'(\\*)"', lambda m: m.group(1) * 2 + '\\"', value)
        return '"' + re.sub(r"(\\+)$", lambda m: m.group(1) * 2, quoted) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise ExperimentError(f"{key!r}: a mapping key in an override must be a plain name")
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise ExperimentError(f"{value!r}: unsupported value type {type(value).__name__}")


def set_param_args(overrides: Mapping[str, Any]) -> list[str]:
    """`-S` arguments for `dvc exp run`. A mapping (tune.space) replaces params.yaml's whole, as a
    list does; a plain `key={...}` would merge into it (Hydra), keeping dimensions the file left out."""
    args: list[str] = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            args += ["-S", f"~{key}", "-S", f"+{key}={hydra_value(value)}"]
        else:
            args += ["-S", f"{key}={hydra_value(value)}"]
    return args


def dvc_command(experiment: Experiment, tuned: bool, mode: str = "temp") -> list[str]:
    """The `dvc exp run` line for one variant; mode: temp (a copy; the workspace stays as it is),
    queue (for `dvc queue start`) or workspace (results land in the workspace, params.yaml too)."""
    flags = {"temp": ["--temp"], "queue": ["--queue"], "workspace": []}[mode]
    return ["dvc", "exp", "run", *flags, "--force", "-n", experiment.run_name(tuned),
            *set_param_args(experiment.overrides(tuned))]


def discover(folder: Path = EXPERIMENTS_DIR, params_file: Path = Path("params.yaml")) -> list[Experiment]:
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ExperimentError(f"{folder}/: no experiment files (*.yaml)")
    base = read_base(params_file)
    return [load_experiment(f, base) for f in files]


def select(experiments: Sequence[Experiment], names: Sequence[str]) -> list[Experiment]:
    by_name = {e.name: e for e in experiments}
    chosen = []
    for name in names:
        if name not in by_name:
            raise ExperimentError(f"{name}: no experiment {EXPERIMENTS_DIR}/{name}.yaml "
                                  f"(have: {', '.join(by_name)})")
        chosen.append(by_name[name])
    return chosen


# --- results ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What MLflow holds for one variant: the latest evaluated train run tagged with its name."""
    run_id: str
    val_accuracy: float | None
    test_accuracy: float | None
    best_epoch: int | None
    params: Mapping[str, str]
    commit: str

    def accuracy(self, metric: str) -> float | None:
        """On the split `metric` names: test/accuracy or val/accuracy (the best epoch's)."""
        return self.test_accuracy if metric == "test/accuracy" else self.val_accuracy


def find_outcomes(names: Sequence[str]) -> dict[str, Outcome]:
    """name -> the latest FINISHED train run of `dvc exp run -n name` that evaluate scored (or the
    NumPy reference's run, which scores itself)."""
    import mlflow

    from pipeline import tracking

    tracking_uri = tracking.tracking_uri()
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
                              run.data.tags.get("git.commit", "")[:7])
    return found


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _ours(outcome: Outcome | None, metric: str) -> str:
    if outcome is None:
        return "not run"
    other = next(m for m in SEED_METRICS if m != metric)
    return (f"**{_figure(outcome.accuracy(metric))}** ({other.split('/')[0]} {_figure(outcome.accuracy(other))}, "
            f"epoch {outcome.best_epoch})")


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
        "runs it with `dvc exp run`, and `--tuned` runs the tune stage first (see the README).",
        "",
        "The bold figure is on the split the tutorial reported (its metric column); the other split",
        "is in brackets. *Ours* uses the tutorial's settings; *tuned* is the same experiment after an",
        "Optuna study, and the last column lists the train values it used that differ from the seed",
        "run's. \"not run\" means MLflow holds no evaluated run.",
        "",
        f"![The tutorials' figures, ours, ours tuned]({FIGURE})",
        "",
        "| experiment | metric | tutorial | ours | ours, tuned | tuned values |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in experiments:
        seed, tuned = outcomes.get(e.run_name(False)), outcomes.get(e.run_name(True))
        lines.append(f"| `{e.name}`: {e.title} | {e.seed.metric} | {_figure(e.seed.value)} | "
                     f"{_ours(seed, e.seed.metric)} | {_ours(tuned, e.seed.metric)} | "
                     f"{_tuned_summary(e, tuned, seed)} |")
    lines += ["", "## The from-scratch NumPy RNN", ""]
    reference = outcomes.get(REFERENCE_TAG)
    if reference is None:
        lines.append("Not run (`python -m pipeline.reference.imdb_onehot`, see the README).")
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


def write_results(target: Path, experiments: Sequence[Experiment]) -> dict[str, Outcome]:
    """RESULTS.md and, beside it, results.png; each written atomically."""
    names = [e.run_name(t) for e in experiments for t in (False, True)] + [REFERENCE_TAG]
    outcomes = find_outcomes(names)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_png(results_figure(experiments, outcomes), target.with_name(FIGURE))
    with atomic_file(target) as tmp:
        tmp.write_text(render_results(experiments, outcomes), encoding="utf-8")
    return outcomes


# --- command line ----------------------------------------------------------------------------

def _run(args: argparse.Namespace) -> int:
    experiments = discover(args.dir)
    chosen = experiments if args.all else select(experiments, args.names)
    if not chosen:
        raise ExperimentError("name one or more experiments, or --all")
    variants = {"seed": (False,), "tuned": (True,), "both": (False, True)}[args.variant]
    failed: list[str] = []
    for experiment in chosen:
        for tuned in variants:
            cmd = dvc_command(experiment, tuned, args.mode)
            print("$ " + shlex.join(cmd), flush=True)
            if args.dry_run:
                continue
            done = subprocess.run(cmd, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
            if done.returncode != 0:
                print(f"experiments: {experiment.run_name(tuned)} failed (dvc exit {done.returncode}); "
                      "its MLflow runs are marked FAILED", file=sys.stderr)
                failed.append(experiment.run_name(tuned))
                if not args.keep_going:
                    return done.returncode
    if failed:
        print(f"experiments: {len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.mode == "queue" and not args.dry_run:
        print("experiments: queued; run them with `dvc queue start` (see `dvc queue status`)")
    return 0


def _list(args: argparse.Namespace) -> int:
    experiments = discover(args.dir)
    width = max(len(e.name) for e in experiments)
    for e in experiments:
        print(f"{e.name:<{width}}  {e.seed.metric} {_figure(e.seed.value):>6}  {e.title}")
    return 0


def _results(args: argparse.Namespace) -> int:
    experiments = discover(args.dir)
    outcomes = write_results(args.output, experiments)
    done = sum(1 for e in experiments for t in (False, True) if e.run_name(t) in outcomes)
    print(f"experiments: {done} of {2 * len(experiments)} variants have results -> {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=EXPERIMENTS_DIR,
                        help="experiment files (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments and the tutorials' figures").set_defaults(func=_list)
    run = sub.add_parser("run", help="run experiments with dvc exp run")
    run.add_argument("names", nargs="*", help="experiment names (file names without .yaml)")
    run.add_argument("--all", action="store_true", help="every experiment, in file-name order")
    run.add_argument("--variant", choices=("seed", "tuned", "both"), default="seed",
                     help="seed: the tutorial's settings (default); tuned: tune stage first; both")
    run.add_argument("--tuned", dest="variant", action="store_const", const="tuned",
                     help="same as --variant tuned")
    run.add_argument("--mode", choices=("temp", "queue", "workspace"), default="temp",
                     help="temp: in a copy, the workspace untouched (default); queue: queue for "
                          "`dvc queue start`; workspace: in the workspace (params.yaml changes)")
    run.add_argument("--keep-going", action="store_true", help="go on after a failed experiment")
    run.add_argument("--dry-run", action="store_true", help="print the dvc commands only")
    run.set_defaults(func=_run)
    results = sub.add_parser("results", help="write docs/RESULTS.md from the MLflow store")
    results.add_argument("-o", "--output", type=Path, default=RESULTS, help="default: %(default)s")
    results.set_defaults(func=_results)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ExperimentError as exc:
        print(f"experiments: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("experiments: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
