"""The training loop: one loop for every tf.distribute strategy, resumable, with early stopping.

`strategy.run` over a distributed dataset, a GradientTape, `tf.nn.compute_average_loss` and the
Keras optimizer. (Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy: keras-team/keras#20585.)
Each epoch is a fixed number of steps over a dataset shuffled with seed + epoch, so every worker
takes the same steps and an interrupted run resumes exactly where its last epoch ended.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.core.atomic import atomic_file, write_json
from pipeline.core.config import TrainParams, to_dict
from pipeline.core.errors import StageError
from pipeline.data.prepared import Prepared, data_fingerprint
from pipeline.data.sequences import bucket_boundaries, trim_padding
from pipeline.model.strategies import is_chief

EpochHook = Callable[[int, dict], None]


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


def epoch_batches(split: dict, global_batch: int, strategy, *, seed: int, bucket: bool, padding: str):
    """epoch -> an iterator over that epoch's distributed (x, y) batches (make_dataset's order for
    seed + epoch), repeating, so a loop can take a fixed number of steps from it."""
    import tensorflow as tf

    def batches(epoch: int):
        ds = make_dataset(split, global_batch, seed=seed, epoch=epoch, bucket=bucket, padding=padding).repeat()
        return iter(strategy.experimental_distribute_dataset(ds.prefetch(tf.data.AUTOTUNE)))
    return batches


def steps_per_epoch(n: int, global_batch: int) -> int:
    return max(1, math.ceil(n / global_batch))


@dataclass
class FitResult:
    model: object
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    resumed_from_epoch: int = 0
    replicas: int = 1
    seconds: float = 0.0
    members: list[FitResult] = field(default_factory=list)   # an ensemble's, each with its own history
    refit_epochs: list[int] = field(default_factory=list)   # train.refit: each member's epochs on train + val
    ensemble_val: dict | None = None    # an ensemble's own val/loss and val/accuracy
    # The model the validation figures are of, when train.refit replaced it by one trained on val too.
    first_fit: object | None = None

    @property
    def validated(self):
        """The model whose validation figures are honest: the first fits' (never trained on val)."""
        return self.first_fit if self.first_fit is not None else self.model

    @property
    def kept_epochs(self) -> list[int]:
        """The epoch each fit kept (one per ensemble member)."""
        return [m.best_epoch for m in self.members] if self.members else [self.best_epoch]

    @property
    def best(self) -> dict:
        """The validation figures of the model kept: the best epoch's, or the averaged ensemble's."""
        return self.ensemble_val if self.ensemble_val is not None else self.history[self.best_epoch - 1]


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

    def has_checkpoint(self) -> bool:
        return self.manager is not None and self.manager.latest_checkpoint is not None

    def restore(self) -> tuple[list[dict], list[np.ndarray] | None]:
        """The saved history and best weights (empty, None when there is nothing to resume)."""
        if not self.has_checkpoint():
            return [], None
        self.checkpoint.restore(self.manager.latest_checkpoint)
        best = None
        if (self.folder / "best_weights.npz").is_file():
            with np.load(self.folder / "best_weights.npz") as f:
                best = [f[f"w{i}"] for i in range(len(f.files))]
        history_file = self.folder / "history.json"
        return (json.loads(history_file.read_text()) if history_file.is_file() else []), best

    def save(self, history: list[dict], best_weights: list[np.ndarray] | None) -> None:
        """The files beside the checkpoint first, each written whole (a kill -9 in the middle of a plain
        write left an empty history.json the resumed run could not read), then the checkpoint, the
        commit point: killed before it, the run resumes from the previous epoch, and restore's caller
        cuts the history to that epoch."""
        if self.manager is None:
            return
        if best_weights is not None:
            with atomic_file(self.folder / "best_weights.npz") as tmp, tmp.open("wb") as out:
                np.savez(out, **{f"w{i}": w for i, w in enumerate(best_weights)})
        write_json(self.folder / "history.json", history)
        self.manager.save()


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


def _step_functions(model, optimizer, strategy, binary: bool, class_weight, element_spec, eval_spec):
    """The distributed train step and the local eval step, each returning (loss sum, correct, rows).

    Each is traced once, for every batch shape (`element_spec`, `eval_spec`: the time dimension varies
    with bucketing); without a signature each new length traced the eval step again until TF relaxed
    it, with a retracing warning in every trial."""
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

    return tf.function(distributed_step, input_signature=[element_spec]), _eval_step(model, per_example, eval_spec)


def _eval_step(model, per_example, spec):
    """(loss sum, correct, rows) of one local batch, traced once for every batch shape of `spec`."""
    import tensorflow as tf

    def eval_step(x, y):
        loss, correct = per_example(y, model(x, training=False))
        return tf.reduce_sum(loss), tf.reduce_sum(correct), tf.cast(tf.size(y), tf.float32)
    return tf.function(eval_step, input_signature=list(spec))


def _score(row: dict, monitor: str) -> float:
    """The monitored validation figure as one to minimise: the loss, or the accuracy negated."""
    return row[monitor] if monitor == "val/loss" else -row[monitor]


def _sums(step, batches) -> np.ndarray:
    totals = np.zeros(3)
    for batch in batches:
        totals += [float(t) for t in step(*batch)]
    return totals


class _EarlyStopping:
    """Early stopping on cfg.monitor: the best figure so far and the epochs waited since it (both in
    the checkpoint, so a resumed run goes on counting), and the best epoch's weights.

    With `keep_last` (a refit's) nothing is scored: every epoch counts as one waited, and the last
    weights are the ones kept."""

    def __init__(self, model, monitor: str, patience: int, keep_last: bool) -> None:
        import tensorflow as tf

        self.model, self.monitor, self.patience, self.keep_last = model, monitor, patience, keep_last
        # The monitored figure as one to minimise (accuracy negated), the best so far.
        self.best_score = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_weights: list[np.ndarray] | None = None

    def patience_spent(self) -> bool:
        return bool(self.patience) and int(self.wait.numpy()) >= self.patience

    def update(self, row: dict) -> bool:
        """Whether the epoch of `row` improved on the best: then its weights are kept, else one more is waited."""
        improved = not self.keep_last and _score(row, self.monitor) < float(self.best_score.numpy())
        if improved:
            self.best_score.assign(_score(row, self.monitor))
            self.wait.assign(0)
            self.best_weights = [v.numpy() for v in self.model.weights]
        else:
            self.wait.assign_add(1)
        return improved

    def kept_epoch(self, history: list[dict]) -> int:
        """The epoch kept, its weights put back in the model: the best one, or with keep_last the last."""
        if self.keep_last:
            return len(history)
        for v, w in zip(self.model.weights, self.best_weights):
            v.assign(w)
        scores = [_score(r, self.monitor) for r in history]
        return 1 + int(np.argmin(scores)) if scores else 0   # the first best, as `update` keeps


class _Training:
    """One fit's model, optimizer, early stopping and steps, made in the strategy's scope; `run_epoch`
    trains one epoch and validates it."""

    def __init__(self, data: Prepared, cfg: TrainParams, strategy, keep_last: bool) -> None:
        import tensorflow as tf

        from pipeline.model.architecture import build_model, output_spec

        num_classes = len(data.labels)
        replicas = strategy.num_replicas_in_sync
        global_batch = cfg.batch_size * replicas
        lr = cfg.learning_rate * (replicas if cfg.scale_learning_rate else 1)
        self.cfg, self.keep_last = cfg, keep_last
        self.n_steps = steps_per_epoch(len(data.train["y"]), global_batch)
        with strategy.scope():
            self.model = build_model(cfg.model, data.vocab_size, num_classes)
            self.optimizer = make_optimizer(cfg.optimizer, lr)
            # Create the slot variables now: made lazily inside the replicated, traced step they send
            # tf.function down its variable-initialisation path, which fails under MirroredStrategy.
            self.optimizer.build(self.model.trainable_variables)
            self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.stopping = _EarlyStopping(self.model, cfg.monitor, cfg.early_stopping_patience, keep_last)

        self.epoch_iterator = epoch_batches(data.train, global_batch, strategy, seed=cfg.seed,
                                            bucket=cfg.bucket_by_length, padding=data.padding)
        # The validation batches are the same every epoch: built once, then served from the cache.
        self.val = make_dataset(data.val, 4 * global_batch, seed=cfg.seed, epoch=0, bucket=cfg.bucket_by_length,
                                padding=data.padding, shuffle=False).cache().prefetch(tf.data.AUTOTUNE)
        weights = tf.constant(class_weights(data.train["y"], num_classes, cfg.class_weight))
        self.train_step, self.eval_step = _step_functions(
            self.model, self.optimizer, strategy, output_spec(num_classes)[0] == 1, weights,
            self.epoch_iterator(0).element_spec, self.val.element_spec)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, epoch=self.epochs_done,
                                              best_score=self.stopping.best_score, wait=self.stopping.wait)

    def run_epoch(self, epoch: int, started: float, progress: bool | None) -> dict:
        """The figures of one epoch: its training steps, then (but in a refit) the validation split."""
        from tqdm import tqdm

        it = self.epoch_iterator(epoch)
        bar = tqdm(range(self.n_steps), desc=f"epoch {epoch + 1}/{self.cfg.epochs}", unit="step", leave=False,
                   disable=None if progress is None else not progress, file=sys.stderr)
        train = _sums(self.train_step, ((next(it),) for _ in bar))
        bar.close()
        row = {"epoch": epoch + 1, "train/loss": float(train[0] / train[2]),
               "train/accuracy": float(train[1] / train[2])}
        if not self.keep_last:   # a refit trains on val: nothing to score, nothing to keep but the last weights
            # Every worker evaluates the whole validation split itself: same weights, same numbers,
            # so every worker takes the same early-stopping decision.
            valid = _sums(self.eval_step, self.val)
            row.update({"val/loss": float(valid[0] / valid[2]), "val/accuracy": float(valid[1] / valid[2])})
        row["seconds"] = round(time.perf_counter() - started, 2)
        if not np.isfinite(row["train/loss"]):
            raise StageError(f"train: the loss became {row['train/loss']} in epoch {epoch + 1}; "
                             "lower train.learning_rate")
        return row


def _print_epoch(row: dict, of: int, improved: bool, keep_last: bool) -> None:
    if keep_last:
        print(f"epoch {row['epoch']}/{of} (a fixed count, the last kept): loss {row['train/loss']:.4f} "
              f"acc {row['train/accuracy']:.4f}",
              file=sys.stderr)
    else:
        print(f"epoch {row['epoch']}/{of}: loss {row['train/loss']:.4f} acc {row['train/accuracy']:.4f} "
              f"val_loss {row['val/loss']:.4f} val_acc {row['val/accuracy']:.4f}"
              f"{' *' if improved else ''}", file=sys.stderr)


def fit(data: Prepared, cfg: TrainParams, strategy, backup_dir: Path | None = None,
        on_epoch_end: EpochHook | None = None, progress: bool | None = None, *,
        stop_after: int | None = None, keep_last: bool = False) -> FitResult:
    """Train with early stopping on cfg.monitor (val loss or accuracy), keeping its best epoch's
    weights; resume from backup_dir when it holds a checkpoint.

    `stop_after` ends training after that many epochs and `keep_last` keeps the last epoch's weights
    instead of the best: a refit's."""
    training = _Training(data, cfg, strategy, keep_last)
    model, stopping = training.model, training.stopping
    backup = Backup(backup_dir, training.checkpoint, strategy)
    initial_weights = [v.numpy() for v in model.weights]
    history, saved_best = backup.restore()
    stopping.best_weights = saved_best or initial_weights
    result = FitResult(model=model, resumed_from_epoch=int(training.epochs_done.numpy()),
                       replicas=strategy.num_replicas_in_sync)
    result.history = history[: result.resumed_from_epoch]
    started = time.perf_counter()
    last = min(cfg.epochs, stop_after or cfg.epochs)
    for epoch in range(result.resumed_from_epoch, last):
        # Checked before the epoch, not after it: a run resumed after it had stopped early stops here too.
        if stopping.patience_spent():
            break
        row = training.run_epoch(epoch, started, progress)
        result.history.append(row)
        improved = stopping.update(row)
        training.epochs_done.assign(epoch + 1)
        backup.save(result.history, stopping.best_weights if improved else None)
        _print_epoch(row, last if keep_last else cfg.epochs, improved, keep_last)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    result.best_epoch = stopping.kept_epoch(result.history)
    result.seconds = time.perf_counter() - started
    return result


def backup_key(cfg: TrainParams, prepared_dir: Path) -> str:
    """A resumable backup belongs to one config and one prepared dataset."""
    h = hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode())
    h.update(data_fingerprint(prepared_dir).encode())
    return h.hexdigest()[:16]


def average_members(members: list):
    """One Keras model whose output is the mean of the members' probabilities: saved, loaded,
    evaluated and served as any single model is."""
    import keras

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # Each member as a model of its own name: their inner layer names repeat, theirs must not.
    named = [keras.Model(m.input, m.output, name=f"member_{i}") for i, m in enumerate(members)]
    output = keras.layers.Average(name="output")([m(tokens) for m in named])
    return keras.Model(tokens, output, name="ensemble")


def refit(data: Prepared, cfg: TrainParams, strategy, epochs: int, backup_dir: Path | None = None,
          progress: bool | None = None):
    """train.refit: the model trained again from its seed on train + val for `epochs` epochs (the
    count early stopping kept), its last weights kept. It learns from every row the linear baseline
    does; nothing is left to stop on, so the epoch count comes from the first fit."""
    from pipeline.core.seed import set_seed

    print(f"train: refit on train + val for {epochs} epoch(s) (seed {cfg.seed})", file=sys.stderr)
    set_seed(cfg.seed, tensorflow=True)
    once = cfg.model_copy(update={"early_stopping_patience": 0, "refit": False})
    return fit(data.with_val_in_train(), once, strategy, backup_dir, None, progress, stop_after=epochs,
               keep_last=True).model


def fit_ensemble(data: Prepared, cfg: TrainParams, strategy, backup_dir: Path | None = None,
                 on_epoch_end: EpochHook | None = None, progress: bool | None = None) -> FitResult:
    """train.ensemble members trained with seeds seed, seed+1, ... (each `fit`, early-stopped on its
    own), averaged into one model; with one member, `fit` itself. With train.refit each member is
    then trained again on train + val (`refit`), and the averaged refits are the model returned;
    the validation figures stay those of the first fits.

    Member i's epochs reach `on_epoch_end` with their metric names under `member_<i>/`; each member
    resumes from its own folder of backup_dir.
    """
    if cfg.ensemble == 1:
        started = time.perf_counter()
        result = fit(data, cfg, strategy, backup_dir, on_epoch_end, progress)
        if cfg.refit:
            result.first_fit = result.model
            result.model = refit(data, cfg, strategy, result.best_epoch,
                                 backup_dir / "refit" if backup_dir else None, progress)
            result.refit_epochs = [result.best_epoch]
            result.seconds = time.perf_counter() - started
        return result
    from pipeline.core.seed import set_seed
    from pipeline.model.architecture import output_spec

    members: list[FitResult] = []
    refits = []   # train.refit: each member trained again on train + val
    started = time.perf_counter()
    for i in range(cfg.ensemble):
        member = cfg.model_copy(update={"seed": cfg.seed + i, "ensemble": 1})
        set_seed(member.seed, tensorflow=True)   # its own initial weights and batch order

        def hook(epoch: int, row: dict, i: int = i) -> None:
            if on_epoch_end is not None:
                on_epoch_end(epoch, {(f"member_{i}/{k}" if "/" in k else k): v for k, v in row.items()})

        print(f"train: ensemble member {i + 1}/{cfg.ensemble} (seed {member.seed})", file=sys.stderr)
        folder = backup_dir / f"member-{i}" if backup_dir else None
        members.append(fit(data, member, strategy, folder, hook, progress))
        if cfg.refit:
            refits.append(refit(data, member, strategy, members[-1].best_epoch, folder and folder / "refit",
                                progress))
    with strategy.scope():
        model = average_members([m.model for m in members])   # the first fits': what val can score
    binary = output_spec(len(data.labels))[0] == 1
    per_example = _per_example(binary)
    val = make_dataset(data.val, 256, seed=cfg.seed, epoch=0, bucket=cfg.bucket_by_length, padding=data.padding,
                       shuffle=False)
    loss, correct, rows = _sums(_eval_step(model, per_example, val.element_spec), val)
    first_fit = None
    if refits:   # val has been trained on: its figures stay the first fits' ensemble's
        first_fit = model
        with strategy.scope():
            model = average_members(refits)
    return FitResult(model=model, history=[{**row, "member": i} for i, m in enumerate(members) for row in m.history],
                     best_epoch=0, resumed_from_epoch=members[0].resumed_from_epoch, replicas=members[0].replicas,
                     seconds=time.perf_counter() - started, members=members,
                     ensemble_val={"val/loss": float(loss / rows), "val/accuracy": float(correct / rows)},
                     refit_epochs=[m.best_epoch for m in members] if refits else [], first_fit=first_fit)
