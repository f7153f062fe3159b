"""train stage: fit the recurrent classifier on data/prepared, under a tf.distribute strategy.

One training loop serves every strategy (none, MirroredStrategy, MultiWorkerMirroredStrategy):
`strategy.run` over a distributed dataset, a GradientTape, `tf.nn.compute_average_loss` and the
Keras optimizer. (Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy: keras-team/keras#20585.)
Each epoch is a fixed number of steps over a dataset shuffled with seed + epoch, so every worker
takes the same steps and an interrupted run resumes exactly where its last epoch ended.

Writes models/: model.keras (best validation loss), vocab.json, labels.json, params.json,
preprocess.json (the bundle `python -m pipeline.predict` loads), history.json, learning_curve.png,
run.json (the MLflow run, and the registered pyfunc model `textclf-<dataset>` that takes raw text).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TF's C++ start-up chatter

import numpy as np  # noqa: E402

from pipeline import paths  # noqa: E402
from pipeline.cli import StageError, run_stage, stage_parser  # noqa: E402
from pipeline.config import ModelParams, Params, ParamsError, TrainParams, override, to_dict  # noqa: E402

READS = ("dataset.name", "train")
MODELS_DIR = Path("models")
EpochHook = Callable[[int, dict], None]


# --- data ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    train: dict
    val: dict
    vocab_size: int
    labels: list[str]
    padding: str
    maxlen: int
    truncating: str = "pre"

    def cut(self, maxlen: int) -> Prepared:
        """The splits as if prepare had used a shorter maxlen (train.maxlen; 0 keeps them)."""
        if not maxlen or maxlen == self.maxlen:
            return self
        if maxlen > self.maxlen:
            raise StageError(f"train.maxlen: {maxlen} is above the prepared length (prepare.maxlen "
                             f"{self.maxlen}): raise prepare.maxlen or lower train.maxlen")
        return dataclasses.replace(
            self, maxlen=maxlen, train=shorten(self.train, maxlen, self.padding, self.truncating),
            val=shorten(self.val, maxlen, self.padding, self.truncating))


def load_prepared(folder: Path = paths.PREPARED_DIR) -> Prepared:
    if not (folder / "train.npz").is_file():
        raise StageError(f"{folder}/train.npz: missing; run the prepare stage first (dvc repro prepare)")
    splits = {s: dict(np.load(folder / f"{s}.npz")) for s in ("train", "val")}
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    prep = json.loads((folder / "params.json").read_text(encoding="utf-8"))["prepare"]
    return Prepared(splits["train"], splits["val"], len(vocab), labels, prep["padding"], prep["maxlen"],
                    prep.get("truncating", "pre"))


def shorten(split: dict, maxlen: int, padding: str, truncating: str) -> dict:
    """A split re-cut to maxlen tokens, exactly as prepare would have cut it (same sides).

    Cutting the already cut rows again from the same side keeps the same tokens as cutting the
    original ones, so a tuned maxlen needs no second prepare run.
    """
    x, n = split["x"], split["length"].astype(np.int64)
    width = x.shape[1]
    if maxlen >= width:
        return split
    kept = np.minimum(n, maxlen)
    first_token = np.zeros_like(n) if padding == "post" else width - n    # where each row's tokens begin
    if truncating == "pre":
        first_token = first_token + (n - kept)                            # keep the last `kept` of them
    first_slot = np.zeros_like(kept) if padding == "post" else maxlen - kept
    offset = np.arange(maxlen)[None, :] - first_slot[:, None]        # token index within the kept run
    inside = (offset >= 0) & (offset < kept[:, None])
    source = np.clip(first_token[:, None] + offset, 0, width - 1)
    out = np.where(inside, np.take_along_axis(x, source, axis=1), 0).astype(x.dtype)
    return {**split, "x": out, "length": kept.astype(split["length"].dtype)}


def read_tuned(best_file: Path = paths.BEST_PARAMS) -> dict:
    """The tune stage's result: study, trial, metric, value and the best `params`."""
    if not best_file.is_file():
        raise StageError(f"{best_file}: missing; run the tune stage first (dvc repro tune), "
                         "or set train.use_tuned: false")
    try:
        best = json.loads(best_file.read_text(encoding="utf-8"))
        best["params"].items()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StageError(f"{best_file}: not a tune result ({exc}); run the tune stage again") from None
    return {k: best.get(k) for k in ("study", "trial", "metric", "value", "params")}


def resolve_tuned(params: Params, best_file: Path = paths.BEST_PARAMS) -> Params:
    """params with the tune stage's best values merged over train (train.use_tuned)."""
    if not params.train.use_tuned:
        return params
    try:
        return dataclasses.replace(params, train=override(params.train, read_tuned(best_file)["params"],
                                                          str(best_file)))
    except ParamsError as exc:
        raise StageError(str(exc)) from None


def bucket_boundaries(lengths: np.ndarray, buckets: int = 8) -> list[int]:
    """Length quantiles: each bucket holds about the same number of rows."""
    qs = np.quantile(lengths, np.linspace(0, 1, buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in qs if q >= 1})


def trim_padding(x, n, padding: str):
    """Keep the n columns that hold tokens: the first n (post-padding) or the last n (pre).

    Works on NumPy arrays and TF tensors alike (x's second dimension must be known).
    """
    return x[:, :n] if padding == "post" else x[:, x.shape[1] - n:]


def make_dataset(split: dict, global_batch: int, *, seed: int, epoch: int, bucket: bool, padding: str,
                 shuffle: bool = True):
    """(x, y) batches; with bucketing, similar lengths together and padded only to the batch's longest.

    The order is a NumPy permutation seeded by seed + epoch: unlike tf.data's shuffle it does not
    depend on TF's global seed, so a resumed run sees exactly the batches the interrupted one would.
    """
    import tensorflow as tf

    x, y, lengths = split["x"], split["y"], np.maximum(split["length"], 1)
    if shuffle:
        order = np.random.default_rng(seed + epoch).permutation(len(y))
        x, y, lengths = x[order], y[order], lengths[order]
    ds = tf.data.Dataset.from_tensor_slices((x, y, lengths))
    if bucket:
        bounds = bucket_boundaries(lengths)
        ds = ds.bucket_by_sequence_length(lambda x_, y_, n: n, bounds, [global_batch] * (len(bounds) + 1))

        def trim(xb, yb, nb):
            return trim_padding(xb, tf.reduce_max(nb), padding), yb
        ds = ds.map(trim, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.batch(global_batch).map(lambda xb, yb, nb: (xb, yb))
    return ds


def steps_per_epoch(n: int, global_batch: int) -> int:
    return max(1, math.ceil(n / global_batch))


# --- distribution -------------------------------------------------------------------------------

def make_strategy(distribute: str, devices: tuple[str, ...] = ()):
    import tensorflow as tf

    if distribute == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise StageError("train.distribute: multi_worker needs TF_CONFIG (the cluster and this "
                             "worker's index), see README")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy(list(devices) or None)
    if distribute == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        # Measured here: MirroredStrategy over CPU devices is 1.2-2x slower than none.
        return tf.distribute.MirroredStrategy([g.name for g in gpus]) if gpus else tf.distribute.get_strategy()
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    """The one worker that writes outputs and logs to MLflow: `chief`, else worker 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


# --- the loop -----------------------------------------------------------------------------------

@dataclass
class FitResult:
    model: object
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    resumed_from_epoch: int = 0
    replicas: int = 1
    seconds: float = 0.0


def make_optimizer(name: str, learning_rate: float):
    import keras

    return {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,
            "sgd": keras.optimizers.SGD}[name](learning_rate=learning_rate)


def class_weights(y: np.ndarray, num_classes: int, mode: str) -> np.ndarray:
    if mode == "none":
        return np.ones(num_classes, dtype=np.float32)
    counts = np.bincount(y, minlength=num_classes).astype(np.float32)
    return (len(y) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


class Backup:
    """Resumable state of one training run in a folder: BackupAndRestore for any strategy.

    A tf.train.Checkpoint holds the model, the optimizer, the epoch and the early-stopping counters;
    beside it lie the best weights so far and the history. Non-chief workers write their
    (identical) copy to a folder of their own, as multi-worker checkpointing requires.
    """

    def __init__(self, folder: Path | None, checkpoint, strategy) -> None:
        import tensorflow as tf

        self.folder, self.checkpoint, self.manager = folder, checkpoint, None
        if folder is not None:
            target = folder if is_chief(strategy) else folder / f"worker-{strategy.cluster_resolver.task_id}"
            self.manager = tf.train.CheckpointManager(checkpoint, str(target), max_to_keep=1)

    def restore(self) -> tuple[list[dict], list[np.ndarray] | None]:
        """The saved history and best weights (empty, None when there is nothing to resume)."""
        if self.manager is None or not self.manager.latest_checkpoint:
            return [], None
        self.checkpoint.restore(self.manager.latest_checkpoint)
        best = None
        if (self.folder / "best_weights.npz").is_file():
            with np.load(self.folder / "best_weights.npz") as f:
                best = [f[f"w{i}"] for i in range(len(f.files))]
        history_file = self.folder / "history.json"
        return (json.loads(history_file.read_text()) if history_file.is_file() else []), best

    def save(self, history: list[dict], best_weights: list[np.ndarray] | None) -> None:
        if self.manager is None:
            return
        self.manager.save()
        if best_weights is not None:
            np.savez(self.folder / "best_weights.npz", **{f"w{i}": w for i, w in enumerate(best_weights)})
        (self.folder / "history.json").write_text(json.dumps(history))


def _per_example(binary: bool):
    """Loss and 0/1 correctness per row, for sigmoid (1 unit) or softmax outputs."""
    import keras
    import tensorflow as tf

    def per_example(y, p):
        if binary:
            loss = keras.losses.binary_crossentropy(tf.cast(tf.reshape(y, [-1, 1]), p.dtype), p)
            predicted = tf.cast(p[:, 0] > 0.5, y.dtype)
        else:
            loss = keras.losses.sparse_categorical_crossentropy(y, p)
            predicted = tf.cast(tf.argmax(p, -1), y.dtype)
        return loss, tf.cast(tf.equal(predicted, y), tf.float32)

    return per_example


def _step_functions(model, optimizer, strategy, binary: bool, class_weight, element_spec):
    """The distributed train step and the local eval step, each returning (loss sum, correct, rows)."""
    import tensorflow as tf

    per_example = _per_example(binary)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            p = model(x, training=True)
            loss, correct = per_example(y, p)
            avg = tf.nn.compute_average_loss(loss * tf.gather(class_weight, y))
        grads = tape.gradient(avg, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.reduce_sum(loss), tf.reduce_sum(correct), tf.cast(tf.size(y), tf.float32)

    def distributed_step(batch):
        sums = strategy.run(replica_step, args=batch)
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None) for s in sums]

    @tf.function(reduce_retracing=True)
    def eval_step(x, y):
        loss, correct = per_example(y, model(x, training=False))
        return tf.reduce_sum(loss), tf.reduce_sum(correct), tf.cast(tf.size(y), tf.float32)

    # One trace for every batch shape: the time dimension varies with bucketing.
    return tf.function(distributed_step, input_signature=[element_spec]), eval_step


def _sums(step, batches) -> np.ndarray:
    totals = np.zeros(3)
    for batch in batches:
        totals += [float(t) for t in step(*batch)]
    return totals


def fit(data: Prepared, cfg: TrainParams, strategy, backup_dir: Path | None = None,
        on_epoch_end: EpochHook | None = None, progress: bool | None = None) -> FitResult:
    """Train with early stopping on val loss; resume from backup_dir when it holds a checkpoint."""
    import tensorflow as tf
    from tqdm import tqdm

    from pipeline.models import build_model, output_spec

    num_classes = len(data.labels)
    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    lr = cfg.learning_rate * (replicas if cfg.scale_learning_rate else 1)
    with strategy.scope():
        model = build_model(cfg.model, data.vocab_size, num_classes)
        optimizer = make_optimizer(cfg.optimizer, lr)
        # Create the slot variables now: made lazily inside the replicated, traced step they send
        # tf.function down its variable-initialisation path, which fails under MirroredStrategy.
        optimizer.build(model.trainable_variables)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        best_loss = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        wait = tf.Variable(0, dtype=tf.int64, trainable=False)

    def epoch_iterator(epoch: int):
        ds = make_dataset(data.train, global_batch, seed=cfg.seed, epoch=epoch, bucket=cfg.bucket_by_length,
                          padding=data.padding).repeat()
        return iter(strategy.experimental_distribute_dataset(ds.prefetch(tf.data.AUTOTUNE)))

    weights = tf.constant(class_weights(data.train["y"], num_classes, cfg.class_weight))
    train_step, eval_step = _step_functions(model, optimizer, strategy, output_spec(num_classes)[0] == 1,
                                            weights, epoch_iterator(0).element_spec)
    best_weights = [v.numpy() for v in model.weights]
    backup = Backup(backup_dir, tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var,
                                                    best_loss=best_loss, wait=wait), strategy)
    history, saved_best = backup.restore()
    best_weights = saved_best or best_weights
    result = FitResult(model=model, resumed_from_epoch=int(epoch_var.numpy()), replicas=replicas)
    result.history = history[: result.resumed_from_epoch]
    n_steps = steps_per_epoch(len(data.train["y"]), global_batch)
    # The validation batches are the same every epoch: built once, then served from the cache.
    val = make_dataset(data.val, 4 * global_batch, seed=cfg.seed, epoch=0, bucket=cfg.bucket_by_length,
                       padding=data.padding, shuffle=False).cache().prefetch(tf.data.AUTOTUNE)
    started = time.perf_counter()
    for epoch in range(result.resumed_from_epoch, cfg.epochs):
        it = epoch_iterator(epoch)
        bar = tqdm(range(n_steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False,
                   disable=None if progress is None else not progress, file=sys.stderr)
        train = _sums(train_step, ((next(it),) for _ in bar))
        bar.close()
        # Every worker evaluates the whole validation split itself: same weights, same numbers,
        # so every worker takes the same early-stopping decision.
        valid = _sums(eval_step, val)
        row = {"epoch": epoch + 1, "train/loss": float(train[0] / train[2]),
               "train/accuracy": float(train[1] / train[2]),
               "val/loss": float(valid[0] / valid[2]), "val/accuracy": float(valid[1] / valid[2]),
               "seconds": round(time.perf_counter() - started, 2)}
        if not np.isfinite(row["train/loss"]):
            raise StageError(f"train: the loss became {row['train/loss']} in epoch {epoch + 1}; "
                             "lower train.learning_rate")
        result.history.append(row)
        improved = row["val/loss"] < float(best_loss.numpy())
        if improved:
            best_loss.assign(row["val/loss"])
            wait.assign(0)
            best_weights = [v.numpy() for v in model.weights]
        else:
            wait.assign_add(1)
        epoch_var.assign(epoch + 1)
        backup.save(result.history, best_weights if improved else None)
        print(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train/loss']:.4f} acc {row['train/accuracy']:.4f} "
              f"val_loss {row['val/loss']:.4f} val_acc {row['val/accuracy']:.4f}"
              f"{' *' if improved else ''}", file=sys.stderr)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if cfg.early_stopping_patience and int(wait.numpy()) >= cfg.early_stopping_patience:
            break
    for v, w in zip(model.weights, best_weights):
        v.assign(w)
    result.best_epoch = 1 + int(np.argmin([r["val/loss"] for r in result.history])) if result.history else 0
    result.seconds = time.perf_counter() - started
    return result


def data_fingerprint(prepared_dir: Path) -> str:
    """A digest of what training reads from the prepared data."""
    h = hashlib.sha256()
    for name in ("train.npz", "val.npz", "vocab.json"):
        h.update((prepared_dir / name).read_bytes())
    return h.hexdigest()


def backup_key(cfg: TrainParams, prepared_dir: Path) -> str:
    """A resumable backup belongs to one config and one prepared dataset."""
    h = hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode())
    h.update(data_fingerprint(prepared_dir).encode())
    return h.hexdigest()[:16]


# --- outputs ------------------------------------------------------------------------------------

def learning_curve_png(history: list[dict], target: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    best = epochs[int(np.argmin([r["val/loss"] for r in history]))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [r[f"train/{metric}"] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"val/{metric}"] for r in history], "o-", label="val")
        ax.axvline(best, ls=":", color="grey", label=f"kept (epoch {best})")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)


def save_bundle(folder: Path, model, prepared_dir: Path, cfg: TrainParams) -> None:
    """What pipeline/predictor.py needs to label raw text: the model and how its input was made."""
    model.save(folder / "model.keras")
    for name in ("vocab.json", "labels.json", "preprocess.json"):
        shutil.copyfile(prepared_dir / name, folder / name)
    (folder / "params.json").write_text(json.dumps(
        {"train": to_dict(cfg), "prepared": json.loads((prepared_dir / "params.json").read_text(encoding="utf-8"))},
        ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_models_dir(result: FitResult, data: Prepared, params: Params, run_info: dict,
                     publish: Callable[[Path], dict] | None = None) -> None:
    """models/: the bundle predictor.py loads, the history and its plot, run.json.

    `publish` logs the finished bundle to MLflow before it takes models/'s place; what it returns
    (the model's URI and version) goes into run.json.
    """
    from pipeline.atomic import atomic_dir

    with atomic_dir(MODELS_DIR) as tmp:
        save_bundle(tmp, result.model, paths.PREPARED_DIR, params.train)
        (tmp / "history.json").write_text(json.dumps(result.history, indent=2) + "\n")
        learning_curve_png(result.history, tmp / "learning_curve.png")
        if publish is not None:
            run_info = {**run_info, **publish(tmp)}
        (tmp / "run.json").write_text(json.dumps(run_info, indent=2) + "\n")


def publish_model(dataset: str, labels: list[str]) -> Callable[[Path], dict]:
    """Log the bundle as the registered pyfunc model `textclf-<dataset>` (raw text in)."""
    def publish(folder: Path) -> dict:
        from pipeline import pyfunc
        from pipeline.tracking import registered_model_name

        preprocess = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
        info = pyfunc.log_model(folder, labels, preprocess.get("examples", []),
                                preprocess["tokenize"]["analyzer"], registered_model_name(dataset))
        return {"model_uri": info.model_uri, "registered_model": registered_model_name(dataset),
                "model_version": info.registered_model_version}
    return publish


def _body(params: Params, args) -> None:
    import tensorflow as tf

    from pipeline.seed import set_seed
    from pipeline.tracking import is_tracking, log_files

    cfg = params.train
    strategy = make_strategy(cfg.distribute, cfg.devices)   # first: MultiWorker must precede other TF ops
    set_seed(cfg.seed)
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
    if active and chief:
        mlflow.log_params({"train.replicas": strategy.num_replicas_in_sync,
                           "train.strategy": type(strategy).__name__})
        mlflow.set_tags({f"tune.{k}": str(v) for k, v in tuned.items() if k != "params" and v is not None})

    def log_epoch(epoch: int, row: dict) -> None:
        if active and chief:
            mlflow.log_metrics({k: v for k, v in row.items() if "/" in k}, step=epoch + 1)

    result = fit(data, cfg, strategy, backup_dir=backup, on_epoch_end=log_epoch)
    if result.resumed_from_epoch:
        print(f"train: resumed after epoch {result.resumed_from_epoch} from {backup}", file=sys.stderr)
    if not chief:
        return
    best = result.history[result.best_epoch - 1]
    run_info = {"run_id": active.info.run_id if active else None, "best_epoch": result.best_epoch,
                "replicas": result.replicas, "strategy": type(strategy).__name__, "tuned_from": tuned}
    if active:
        mlflow.log_metrics({"best/val_loss": best["val/loss"], "best/val_accuracy": best["val/accuracy"],
                            "best/epoch": result.best_epoch})
    write_models_dir(result, data, params, run_info,
                     publish_model(params.dataset.name, data.labels) if active else None)
    if active:
        log_files([MODELS_DIR / name for name in ("vocab.json", "labels.json", "params.json", "history.json",
                                                  "learning_curve.png")], "train")
    shutil.rmtree(backup, ignore_errors=True)   # done: the next run starts fresh
    print(f"train: best epoch {result.best_epoch}: val_accuracy {best['val/accuracy']:.4f} "
          f"({result.replicas} replica(s), {result.seconds:.0f} s) -> {MODELS_DIR}/model.keras")


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("python -m pipeline.train", __doc__ + """
distribution (train.distribute): auto (MirroredStrategy over every GPU, plain on CPU), mirrored
(train.devices, or all), multi_worker (MultiWorkerMirroredStrategy; each process gets TF_CONFIG),
none. The global batch is train.batch_size x replicas. An interrupted run resumes from
.cache/train/<key>/ when started again with the same params and data.

tuning: with train.use_tuned (the default) the values of the tune stage's best trial
(tune/best_params.json) replace the ones in params.yaml; the MLflow run records the merged values.""")
    return run_stage("train", _body, parser, argv, reads=READS, resolve=resolve_tuned)


if __name__ == "__main__":
    sys.exit(main())
