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

from pipeline.core import log, paths, recording, workers  # noqa: E402
from pipeline.core.atomic import atomic_dir, write_json  # noqa: E402
from pipeline.core.cli import run_stage, stage_parser  # noqa: E402
from pipeline.core.config import Params, TrainParams  # noqa: E402
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


def publish_model(params: Params, labels: list[str]) -> Callable[[Path, Choice], dict] | None:
    """Log the champion (and the runner-up) as versions of the registered pyfunc model
    `textclf-<dataset>` (raw text in), with aliases `champion` and `challenger` and a description
    naming their parts. The runner-up is registered first, so `latest` is the champion too.
    None when nothing is recorded (`--no-track`, or not the chief): models/ is written unpublished."""
    if not recording.recording():
        return None

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
    strategy = make_strategy(distribute, params.train.devices)   # first: MultiWorker must precede other TF ops
    with log.ranked(is_chief(strategy)):   # the chief alone prints, writes and records
        _run(params, args, strategy)


def _run(params: Params, args, strategy) -> None:
    """Every worker trains, the out-of-fold RNNs too (each step needs them all); the chief then
    chooses the champion, writes models/ and records. Each result is recorded as it comes."""
    cfg = params.train
    data, backup, tuned, fused_kernel = _load(cfg)
    recording.record_setup(strategy, fused_kernel, tuned)
    previous = recording.claim_backup(backup)   # the run that trained into this backup before
    result = _fit(data, cfg, strategy, backup)
    recording.record_resume(result, previous)
    folds = resolve_folds(params.champion, params.tune.folds)
    oof_rnn = _out_of_fold(data, params, strategy, folds, result)
    if not log.is_chief():
        return _wait_for_chief(args)
    recording.record_training(result)
    choice, linear = select(data, result.validated, params.champion, cfg, folds, oof_rnn, paths.PREPARED_DIR,
                            paths.TOKENS)
    recording.record_champion(choice)
    write_models_dir(result, data, params, _run_info(result, strategy, tuned, choice), choice, linear,
                     publish_model(params, data.labels))
    recording.record_models()
    shutil.rmtree(backup, ignore_errors=True)   # done: the next run starts fresh
    _report(result, choice)


def _load(cfg: TrainParams) -> tuple[Prepared, Path, dict, bool]:
    """Seeded TensorFlow, the prepared data cut to train.maxlen, the backup folder, the tuned values'
    origin, and whether the fused cuDNN kernel can run (a warning from every worker when not)."""
    import tensorflow as tf

    from pipeline.core.seed import set_seed
    from pipeline.model.architecture import fused_kernel_blockers  # imports Keras: not for --help

    set_seed(cfg.seed, tensorflow=True)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = load_prepared().cut(cfg.maxlen)
    if not (paths.PREPARED_DIR / "preprocess.json").is_file():   # checked now, not after training
        raise StageError(f"{paths.PREPARED_DIR}/preprocess.json: missing (prepared by an older version); "
                         "run tokenize and prepare again (dvc repro)")
    backup = paths.cache_dir() / "train" / backup_key(cfg, paths.PREPARED_DIR)
    backup.mkdir(parents=True, exist_ok=True)
    tuned = read_tuned() if cfg.use_tuned else {}   # where the merged values came from
    blockers = fused_kernel_blockers(cfg.model, data.padding)
    if blockers and tf.config.list_logical_devices("GPU"):
        print(f"train: warning: the fused cuDNN kernel is ruled out ({'; '.join(blockers)}): the recurrent "
              "layers run the step-by-step loop, several times slower on a GPU", file=sys.stderr)
    return data, backup, tuned, not blockers


def _fit(data: Prepared, cfg: TrainParams, strategy, backup: Path) -> FitResult:
    """The RNN (or the ensemble), resumed from the backup when one is there; each epoch recorded."""
    result = fit_ensemble(data, cfg, strategy, backup_dir=backup, on_epoch_end=recording.record_epoch)
    if result.resumed_from_epoch:   # said by every worker
        print(f"train: resumed after epoch {result.resumed_from_epoch} from {backup}", file=sys.stderr)
    return result


def _out_of_fold(data: Prepared, params: Params, strategy, folds: int, result: FitResult):
    """Out-of-fold RNNs for the champion's choice (champion.folds >= 2 with the linear model), under
    the strategy: every worker trains them. None when the choice is made on the validation split."""
    if not (params.champion.linear.enabled and folds >= 2):
        return None
    return rnn_out_of_fold(data, params.train, strategy, folds, kept_epochs(result.kept_epochs))


def _wait_for_chief(args) -> None:
    """A worker that is not the chief writes and records nothing. One the chief started stays until
    the chief is done with TensorFlow: a worker gone early is reported by the chief's coordination
    service as crashed. The chief closes our stdin when it is done."""
    if args.multi_worker:
        sys.stdin.read()


def _run_info(result: FitResult, strategy, tuned: dict, choice: Choice) -> dict:
    """models/run.json before the published models' URIs and versions join it."""
    return {"run_id": recording.current_run_id(), "best_epoch": result.best_epoch, "replicas": result.replicas,
            "strategy": type(strategy).__name__, "tuned_from": tuned, "refit_epochs": result.refit_epochs,
            "champion": {"kind": choice.kind, "weight": choice.weight, "runner_up": choice.runner_up}}


def _report(result: FitResult, choice: Choice) -> None:
    best = result.best
    kept = f"ensemble of {len(result.members)}" if result.members else f"best epoch {result.best_epoch}"
    if result.refit_epochs:
        kept += f", refit on train + val for {result.refit_epochs} epochs (val is the first fit's)"
    log.info(f"train: {kept}: val_accuracy {best['val/accuracy']:.4f} "
             f"({result.replicas} replica(s), {result.seconds:.0f} s) -> {paths.MODELS_DIR}/model.keras")
    log.info(f"train: champion {choice.kind}" + (f" (w = {choice.weight:g})" if choice.kind == "blend" else "")
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
