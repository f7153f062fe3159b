"""Trials per hour of the tune stage with pruning, against the same study without pruning.

Both studies run in this one process, one after the other, on the prepared data in data/prepared
(the default dataset: run `make repro` or `dvc repro prepare` first) with params.yaml's space,
the same seeded TPE sampler and the same number of trials; only tune.pruner differs. Storage is
in memory and MLflow is off, so the figure is the training work alone.

    python bench/tune_speed.py [--trials 20] [--pruner median]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.record import command_line, figure, record  # noqa: E402


def run(params, pruner: str, trials: int) -> dict:
    import optuna

    from pipeline.core.config import override
    from pipeline.data.prepared import load_prepared
    from pipeline.model.strategies import make_strategy
    from pipeline.tuning import study as studies
    from pipeline.tuning.objective import Objective, run_trials, subsample

    cfg = params.tune.model_copy(update={"pruner": pruner, "n_trials": trials, "timeout": 0})
    data = load_prepared()
    data = dataclasses.replace(data, train=subsample(data.train, cfg.subsample, cfg.sampler_seed))
    epochs = cfg.epochs or params.train.epochs
    base = override(params.train, {"epochs": epochs}, "tune.epochs")
    study = optuna.create_study(sampler=studies.make_sampler(cfg, cfg.sampler_seed),
                                pruner=studies.make_pruner(cfg, epochs), direction=studies.direction(cfg.metric))
    objective = Objective(data, base, params.model_copy(update={"tune": cfg}), make_strategy("none"),
                          track=False, progress=False)
    started = time.perf_counter()
    run_trials(study, objective, cfg, worker=True)
    seconds = time.perf_counter() - started
    done = study.get_trials(deepcopy=False)
    return {"pruner": pruner, "trials": len(done), "seconds": round(seconds, 1),
            "trials_per_hour": round(len(done) / seconds * 3600, 1),
            "complete": sum(t.state.name == "COMPLETE" for t in done),
            "pruned": sum(t.state.name == "PRUNED" for t in done),
            "epochs_trained": sum(t.user_attrs.get("epochs", 0) for t in done),
            "best_value": study.best_value}


def main() -> int:
    import optuna

    from pipeline.core.config import load_params

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--pruner", default="median", choices=("median", "hyperband"))
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results/tune.json")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = load_params(args.params)
    pruned = run(params, args.pruner, args.trials)
    print(json.dumps(pruned), flush=True)
    unpruned = run(params, "none", args.trials)
    print(json.dumps(unpruned), flush=True)
    ratio = pruned["trials_per_hour"] / unpruned["trials_per_hour"]
    print(f"trials/hour: {pruned['trials_per_hour']:.0f} with {args.pruner} pruning, "
          f"{unpruned['trials_per_hour']:.0f} without: {ratio:.2f}x; epochs trained "
          f"{pruned['epochs_trained']} vs {unpruned['epochs_trained']}; best {params.tune.metric} "
          f"{pruned['best_value']:.4f} vs {unpruned['best_value']:.4f}")
    if not args.no_record:   # the figures just printed (the JSON lines), as printed
        rows = []
        for name, study, times in (("no pruning", unpruned, 1), (f"{args.pruner} pruner", pruned, round(ratio, 2))):
            rows += [figure(name, study["seconds"], "s"), figure(name, study["trials_per_hour"], "trials/hour", times),
                     figure(name, study["complete"], "trials complete"), figure(name, study["pruned"], "trials pruned"),
                     figure(name, study["epochs_trained"], "epochs trained"),
                     figure(name, study["best_value"], f"best {params.tune.metric}")]
        record("tune", rows, command_line(),
               notes=[f"{args.trials} trials per study, the same seeded sampler, in-memory storage, no MLflow"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
