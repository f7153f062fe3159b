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
`results` reads those runs back and writes docs/RESULTS.md; a variant the store lacks keeps its
earlier outcome from docs/results.json, which it rewrites (`--fresh`: the store only). It then
writes docs/BENCHMARKS.md from the benches' bench/results/*.json (`--no-benchmarks`: not).
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.core.cli import run_command
from pipeline.core.errors import ExperimentError
from pipeline.experiments.benchmarks import BENCH_RESULTS, BENCHMARKS, write_benchmarks
from pipeline.experiments.commands import dvc_command
from pipeline.experiments.results import FIGURE, OUTCOMES, RESULTS, _figure, write_results
from pipeline.experiments.spec import EXPERIMENTS_DIR, discover, select


def _run(args: argparse.Namespace) -> int:
    experiments = discover(args.dir)
    chosen = experiments if args.all else select(experiments, args.names)
    if not chosen:
        raise ExperimentError("name one or more experiments, or --all")
    variants = {"seed": (False,), "tuned": (True,), "both": (False, True)}[args.variant]
    if not args.dry_run and shutil.which("dvc") is None:
        # dvc repro runs the stages with the first `python` on PATH too, so the fix is the venv's PATH.
        raise ExperimentError("dvc is not on PATH; activate the project's environment (`. .venv/bin/activate`) "
                              "and run it again")
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
    outcomes = write_results(args.output, experiments, fresh=args.fresh)
    done = sum(1 for e in experiments for t in (False, True) if e.run_name(t) in outcomes)
    print(f"experiments: {done} of {2 * len(experiments)} variants have results -> {args.output}")
    if args.no_benchmarks:
        return 0
    if not args.bench_results.is_dir():   # a project without the benches (a test's copy): nothing to render
        print(f"experiments: no {args.bench_results}/ here; {args.benchmarks} not written")
        return 0
    records = write_benchmarks(args.bench_results, args.benchmarks)
    print(f"experiments: {len(records)} benches' figures ({', '.join(r.bench for r in records)}) "
          f"-> {args.benchmarks}")
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
    results = sub.add_parser(
        "results", help=f"write {RESULTS} from the MLflow store, then {BENCHMARKS} from {BENCH_RESULTS}/*.json",
        description=f"Write {RESULTS} (with {FIGURE} and {OUTCOMES} beside it) from the experiments' MLflow "
                    f"runs, then {BENCHMARKS} from the figures the benches recorded in {BENCH_RESULTS}/*.json. "
                    "`make results` runs this; both pages are generated, not edited by hand.")
    results.add_argument("-o", "--output", type=Path, default=RESULTS,
                         help="the results page (default: %(default)s)")
    results.add_argument("--fresh", action="store_true",
                         help=f"the MLflow store only: ignore the earlier outcomes in {OUTCOMES} beside the output")
    results.add_argument("--benchmarks", type=Path, default=BENCHMARKS, metavar="PATH",
                         help="the benchmarks page (default: %(default)s)")
    results.add_argument("--bench-results", type=Path, default=BENCH_RESULTS, metavar="DIR",
                         help="what the benches recorded, one <bench>.json each (default: %(default)s)")
    results.add_argument("--no-benchmarks", action="store_true",
                         help="the results page only: leave the benchmarks page as it is")
    results.set_defaults(func=_results)
    args = parser.parse_args(argv)
    return run_command("experiments", lambda: args.func(args))
