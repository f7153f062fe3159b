"""train stage: fit the recurrent classifier on data/prepared, under a tf.distribute strategy.

One training loop serves every strategy (none, MirroredStrategy, MultiWorkerMirroredStrategy):
`strategy.run` over a distributed dataset, a GradientTape, `tf.nn.compute_average_loss` and the
Keras optimizer. (Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy: keras-team/keras#20585.)
Each epoch is a fixed number of steps over a dataset shuffled with seed + epoch, so every worker
takes the same steps and an interrupted run resumes exactly where its last epoch ended.

Then it chooses the served model on validation, never on test (pipeline/model/champion.py): the
RNN, the linear model (TF-IDF n-grams + logistic regression, on data/tokens.parquet) or their blend
w * rnn + (1 - w) * linear, by champion.select_by, on the validation split or (champion.folds >= 2)
on out-of-fold predictions over train + val.

Writes models/: model.keras (best validation loss), vocab.json, labels.json, params.json,
preprocess.json (the RNN's bundle), linear.skops + linear.json (the linear model, fitted on
train + val), champion.json (which serves, every candidate's validation figures), champion.png,
history.json, learning_curve.png, run.json (the MLflow run, and the registered pyfunc model
`textclf-<dataset>` that takes raw text: the champion, alias `champion`, and the runner-up, alias
`challenger`). `python -m pipeline.predict` serves the champion from models/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TF's C++ start-up chatter

from pipeline.core import paths, workers  # noqa: E402
from pipeline.core.atomic import atomic_dir, write_json  # noqa: E402
from pipeline.core.cli import run_stage, stage_parser  # noqa: E402
from pipeline.core.config import Params  # noqa: E402
from pipeline.core.errors import StageError  # noqa: E402
from pipeline.core.plotting import blend_png, learning_curve_png  # noqa: E402
from pipeline.data.prepared import Prepared, load_prepared  # noqa: E402
from pipeline.model.champion import Choice, kept_epochs, resolve_folds, rnn_out_of_fold, select  # noqa: E402
from pipeline.model.linear import LinearModel, save_linear  # noqa: E402
from pipeline.model.strategies import is_chief, make_strategy  # noqa: E402
from pipeline.model.training import FitResult, backup_key, fit_ensemble  # noqa: E402
from pipeline.serve.bundle import CHAMPION_FILE, save_bundle  # noqa: E402
from pipeline.tuning.best import read_tuned, resolve_tuned  # noqa: E402

# champion: the served model's choice (the evaluate stage scores the candidates on test); tune.folds: champion.folds 0.
READS = ("dataset.name", "train", "tune.folds", "champion")


def write_models_dir(result: FitResult, data: Prepared, params: Params, run_info: dict, choice: Choice,
                     linear: LinearModel | None, publish: Callable[[Path, Choice], dict] | None = None) -> None:
    """models/: every candidate's parts, champion.json, the history and its plot, run.json.

    `publish` logs the finished bundle to MLflow before it takes models/'s place; what it returns
    (the models' URIs and versions) goes into run.json. When the store fails under it (locked for
    longer than tracking waits), models/ is written all the same, then the stage fails in one line:
    the training is not thrown away, and its backup stays, so the next run only logs it.
    """
    from pipeline.core.tracking import is_store_failure, store_error

    unlogged = None
    with atomic_dir(paths.MODELS_DIR) as tmp:
        save_bundle(tmp, result.model, paths.PREPARED_DIR, params.train)
        if linear is not None:
            save_linear(linear, tmp)
        write_json(tmp / CHAMPION_FILE, choice.as_json())
        blend_png(choice.as_json(), tmp / "champion.png")
        (tmp / "history.json").write_text(json.dumps(result.history, indent=2) + "\n")
        learning_curve_png(result.history, tmp / "learning_curve.png")
        if publish is not None:
            try:
                run_info = {**run_info, **publish(tmp, choice)}
            except Exception as exc:
                if not is_store_failure(exc):
                    raise
                unlogged = exc
        (tmp / "run.json").write_text(json.dumps(run_info, indent=2) + "\n")
    if unlogged is not None:
        raise store_error(unlogged, f"{paths.MODELS_DIR}/ is written but not logged: `dvc repro train` logs it, "
                                    "resuming from the finished training") from unlogged


def publish_model(params: Params, labels: list[str]) -> Callable[[Path, Choice], dict]:
    """Log the champion (and the runner-up) as versions of the registered pyfunc model
    `textclf-<dataset>` (raw text in), with aliases `champion` and `challenger` and a description
    naming their parts. The runner-up is registered first, so `latest` is the champion too."""
    def publish(folder: Path, choice: Choice) -> dict:
        import mlflow

        from pipeline.core.tracking import registered_model_name
        from pipeline.model.champion import describe
        from pipeline.serve import pyfunc

        name = registered_model_name(params.dataset.name)
        preprocess = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
        linear_cfg = params.champion.linear if params.champion.linear.enabled else None
        client = mlflow.MlflowClient()
        out = {"registered_model": name}
        roles = (("challenger", choice.runner_up, "challenger"), ("champion", choice.kind, "model"))
        for role, kind, artifact in roles:
            if kind is None:
                continue
            info = pyfunc.log_model(folder, labels, preprocess.get("examples", []),
                                    preprocess["tokenize"]["analyzer"], name, kind=kind, name=artifact)
            version = info.registered_model_version
            client.update_model_version(name, version, describe(choice, params.train, linear_cfg, kind))
            client.set_registered_model_alias(name, role, version)
            key = "model" if role == "champion" else role
            out.update({f"{key}_uri": info.model_uri, f"{key}_version": version})
        return out
    return publish


def _body(params: Params, args) -> None:
    """$TRAIN_WORKERS > 1: this process is the chief of that many MultiWorkerMirroredStrategy workers
    on 127.0.0.1, the others started here (`--no-track`: only the chief logs and writes outputs)."""
    if args.multi_worker:   # one of the workers a chief started (below)
        return _train(params, args, "multi_worker")
    n = workers.count("TRAIN_WORKERS")
    if n <= 1:
        return _train(params, args, params.train.distribute)
    if os.environ.get("TF_CONFIG"):
        raise StageError(f"TRAIN_WORKERS={n} starts its own workers on this machine, but TF_CONFIG is set too "
                         "(workers on other machines): unset one of them")
    if params.train.distribute not in ("auto", "multi_worker"):
        raise StageError(f"TRAIN_WORKERS={n} trains with MultiWorkerMirroredStrategy: train.distribute must be "
                         f"auto or multi_worker, not {params.train.distribute}")
    addresses = [f"127.0.0.1:{port}" for port in workers.free_ports(n)]

    def tf_config(index: int) -> str:
        return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})

    argv = [sys.executable, "-m", "pipeline.train", "--multi-worker", "--no-track", "--params", args.params]
    others = [(argv, workers.worker_env(TF_CONFIG=tf_config(i))) for i in range(1, n)]
    os.environ["TF_CONFIG"] = tf_config(0)   # read when the strategy is made
    try:
        with workers.spawned(others, "train", fatal=True, hold=True):
            _train(params, args, "multi_worker")
    finally:
        os.environ.pop("TF_CONFIG", None)


def _train(params: Params, args, distribute: str) -> None:
    import tensorflow as tf

    from pipeline.core.seed import set_seed
    from pipeline.core.tracking import is_tracking, log_files
    from pipeline.model.architecture import fused_kernel_blockers  # imports Keras: not for --help

    cfg = params.train
    strategy = make_strategy(distribute, cfg.devices)   # first: MultiWorker must precede other TF ops
    set_seed(cfg.seed, tensorflow=True)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = load_prepared().cut(cfg.maxlen)
    if not (paths.PREPARED_DIR / "preprocess.json").is_file():   # checked now, not after training
        raise StageError(f"{paths.PREPARED_DIR}/preprocess.json: missing (prepared by an older version); "
                         "run tokenize and prepare again (dvc repro)")
    backup = paths.cache_dir() / "train" / backup_key(cfg, paths.PREPARED_DIR)
    backup.mkdir(parents=True, exist_ok=True)
    chief = is_chief(strategy)
    active = None
    if is_tracking():   # stage_run started a run (not --no-track)
        import mlflow

        active = mlflow.active_run()
    tuned = read_tuned() if cfg.use_tuned else {}   # where the merged values came from
    blockers = fused_kernel_blockers(cfg.model, data.padding)
    if blockers and tf.config.list_logical_devices("GPU"):
        print(f"train: warning: the fused cuDNN kernel is ruled out ({'; '.join(blockers)}): the recurrent "
              "layers run the step-by-step loop, several times slower on a GPU", file=sys.stderr)
    if active and chief:
        mlflow.log_params({"train.replicas": strategy.num_replicas_in_sync,
                           "train.strategy": type(strategy).__name__})
        mlflow.set_tag("train.fused_kernel", str(not blockers).lower())
        mlflow.set_tags({f"tune.{k}": str(v) for k, v in tuned.items() if k != "params" and v is not None})

    def log_epoch(epoch: int, row: dict) -> None:
        if active and chief:
            mlflow.log_metrics({k: v for k, v in row.items() if "/" in k}, step=epoch + 1)

    # The run that trained into this backup: a run that resumes it says which one it continues.
    run_file = backup / "mlflow_run_id"
    previous = run_file.read_text(encoding="utf-8").strip() if run_file.is_file() else ""
    if active and chief:
        run_file.write_text(active.info.run_id, encoding="utf-8")
    result = fit_ensemble(data, cfg, strategy, backup_dir=backup, on_epoch_end=log_epoch)
    if result.resumed_from_epoch:
        print(f"train: resumed after epoch {result.resumed_from_epoch} from {backup}", file=sys.stderr)
        if active and chief:
            from pipeline.core.tracking import RESUMES_TAG

            mlflow.set_tags({"train.resumed_from_epoch": str(result.resumed_from_epoch),
                             **({RESUMES_TAG: previous} if previous else {})})
            if not result.members:   # an ensemble's members each log their own curve
                for epoch, row in enumerate(result.history[:result.resumed_from_epoch]):
                    log_epoch(epoch, row)   # the whole learning curve in this run, not only its tail
    # Out-of-fold RNNs for the champion's choice, under the strategy: every worker trains them.
    folds = resolve_folds(params.champion, params.tune.folds)
    oof_rnn = None
    if params.champion.linear.enabled and folds >= 2:
        oof_rnn = rnn_out_of_fold(data, cfg, strategy, folds, kept_epochs(result.kept_epochs))
    if not chief:
        if args.multi_worker:
            # Stay until the chief is done with TensorFlow: a worker gone early is reported by the
            # chief's coordination service as crashed. The chief closes our stdin when it is done.
            sys.stdin.read()
        return
    best = result.best
    run_info = {"run_id": active.info.run_id if active else None, "best_epoch": result.best_epoch,
                "replicas": result.replicas, "strategy": type(strategy).__name__, "tuned_from": tuned,
                "refit_epochs": result.refit_epochs}
    if active:
        mlflow.log_metrics({"best/val_loss": best["val/loss"], "best/val_accuracy": best["val/accuracy"],
                            "best/epoch": result.best_epoch})
        if result.refit_epochs:
            mlflow.set_tag("train.refit_epochs", ",".join(map(str, result.refit_epochs)))
    choice, linear = select(data, result.validated, params.champion, cfg, folds, oof_rnn, paths.PREPARED_DIR,
                            paths.TOKENS)
    run_info["champion"] = {"kind": choice.kind, "weight": choice.weight, "runner_up": choice.runner_up}
    if active:
        mlflow.log_metrics({f"{kind}/{key}": value for kind, figures in choice.candidates.items()
                            for key, value in figures.items()})
        mlflow.set_tags({"champion": choice.kind, "champion.selected_on": choice.selected_on,
                         "champion.select_by": choice.select_by})
    write_models_dir(result, data, params, run_info, choice, linear,
                     publish_model(params, data.labels) if active else None)
    if active:
        log_files([paths.MODELS_DIR / name for name in ("vocab.json", "labels.json", "params.json", "history.json",
                                                  "learning_curve.png")], "train")
    shutil.rmtree(backup, ignore_errors=True)   # done: the next run starts fresh
    kept = f"ensemble of {len(result.members)}" if result.members else f"best epoch {result.best_epoch}"
    if result.refit_epochs:
        kept += f", refit on train + val for {result.refit_epochs} epochs (val is the first fit's)"
    print(f"train: {kept}: val_accuracy {best['val/accuracy']:.4f} "
          f"({result.replicas} replica(s), {result.seconds:.0f} s) -> {paths.MODELS_DIR}/model.keras")
    print(f"train: champion {choice.kind}" + (f" (w = {choice.weight:g})" if choice.kind == "blend" else "")
          + f", by {choice.select_by} on {choice.selected_on} ({choice.rows:,} rows): "
          + ", ".join(f"{k} {v[choice.select_by]:.4f}" for k, v in choice.candidates.items())
          + f" -> {paths.MODELS_DIR}/{CHAMPION_FILE}")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m pipeline.train", __doc__ + """
distribution (train.distribute): auto (MirroredStrategy over every GPU, plain on CPU), mirrored
(train.devices, or all), multi_worker (MultiWorkerMirroredStrategy; each process gets TF_CONFIG),
none. The global batch is train.batch_size x replicas. An interrupted run resumes from
.cache/train/<key>/ when started again with the same params and data.

tuning: with train.use_tuned (the default) the values of the tune stage's best trial
(tune/best_params.json) replace the ones in params.yaml; the MLflow run records the merged values.

local workers: TRAIN_WORKERS=2 trains with MultiWorkerMirroredStrategy over 2 processes on 127.0.0.1,
this one the chief (the others are started and stopped by it; train.distribute auto or multi_worker).""")
    # What the chief gives the workers it starts: MultiWorkerMirroredStrategy whatever train.distribute says.
    parser.add_argument("--multi-worker", action="store_true", help=argparse.SUPPRESS)
    workers.bind_to_parent()   # a worker started by the chief (TRAIN_WORKERS) dies with it
    return run_stage("train", _body, parser, argv, reads=READS, resolve=resolve_tuned)


if __name__ == "__main__":
    sys.exit(main())
