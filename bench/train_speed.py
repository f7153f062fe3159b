"""Training speed: the tutorial way against the train stage's input pipeline, same model and epochs.

    python bench/train_speed.py --input ../shared/data/nsmc/ratings_train.txt --rows 60000

Both sides train the same model (build_model, the same hyperparameters and seed) for the same
epochs on the same prepared split, in this one process. Baseline: `model.fit` on the arrays
padded to a fixed maxlen, the way the tutorials do it. Ours: the train stage's `fit` (bucketing by
length, per-batch padding). Prints samples/s and test accuracy for both, and last `speedup <X>`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from bench.record import command_line, figure, record  # noqa: E402
from pipeline.core.config import ModelParams, PrepareParams, TokenizeParams, TrainParams, VocabParams  # noqa: E402
from pipeline.data.prepared import Prepared  # noqa: E402
from pipeline.data.splits import prepare  # noqa: E402
from pipeline.model.inference import predict_proba  # noqa: E402
from pipeline.model.strategies import make_strategy  # noqa: E402
from pipeline.model.training import fit  # noqa: E402
from pipeline.text.tokenizer import tokenize_texts  # noqa: E402


def load_tokens(path: str, rows: int) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, nrows=rows)
    cfg = TokenizeParams(pos_drop=("Josa", "Punctuation"))
    # Cached analyses make repeated bench runs cheap; the cache is the tokenize stage's own.
    tokens, _ = tokenize_texts(table["document"].tolist(), cfg, Path(".cache/tokenize/analysis.sqlite"))
    keep = [i for i, t in enumerate(tokens) if t]
    return pd.DataFrame({"id": table["id"].iloc[keep].values, "label": table["label"].iloc[keep].values,
                         "split": "", "tokens": [tokens[i] for i in keep]})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="NSMC-style TSV (id, document, label)")
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--maxlen", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--no-record", action="store_true", help="do not write bench/results/train.json")
    args = ap.parse_args()

    import keras

    from pipeline.model.architecture import build_model, output_spec

    tokens = load_tokens(args.input, args.rows)
    arrays, vocab, labels, stats = prepare(tokens, PrepareParams(maxlen=args.maxlen, padding="post",
                                                               vocab=VocabParams(max_size=20000, min_freq=1)))
    train, test = arrays["train"], arrays["test"]
    n = len(train["y"])
    print(f"rows: train {n:,} / val {len(arrays['val']['y']):,} / test {len(test['y']):,}; maxlen {args.maxlen}, "
          f"median length {stats['splits']['train']['length']['p50']:g}; cores {os.cpu_count()}")
    # One-way GRU(64), no dropout, no hidden layer: the model the figures in docs/benchmarks.md were measured on.
    hp = ModelParams(cell="gru", bidirectional=False, units=64, embedding_dim=128, dropout=0.0, dense_units=0)
    cfg = TrainParams(model=hp, epochs=args.epochs, batch_size=args.batch_size, early_stopping_patience=0,
                      learning_rate=1e-3, bucket_by_length=True, seed=1)

    keras.utils.set_random_seed(1)
    model = build_model(hp, len(vocab), len(labels))
    units, activation, loss = output_spec(len(labels))
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=loss, metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(train["x"], train["y"], batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(arrays["val"]["x"], arrays["val"]["y"]), verbose=0)
    t_base = time.perf_counter() - t0
    acc_base = accuracy(model, test, "post")
    print(f"baseline (model.fit, padded to maxlen): {t_base:7.1f} s  {n * args.epochs / t_base:8.0f} samples/s"
          f"  test accuracy {acc_base:.4f}")

    keras.utils.set_random_seed(1)
    data = Prepared(train, arrays["val"], len(vocab), labels, "post", args.maxlen)
    t0 = time.perf_counter()
    result = fit(data, cfg, make_strategy("none"), progress=False)
    t_ours = time.perf_counter() - t0
    acc_ours = accuracy(result.model, test, "post")
    print(f"train stage (bucketing):                {t_ours:7.1f} s  {n * args.epochs / t_ours:8.0f} samples/s"
          f"  test accuracy {acc_ours:.4f}")
    print(f"accuracy difference: {100 * (acc_ours - acc_base):+.2f} points")
    print(f"speedup {t_base / t_ours:.2f}")
    if not args.no_record:   # the figures just printed, as printed
        record("train", [
            figure("model.fit, padded to maxlen", round(t_base, 1), "s", 1),
            figure("model.fit, padded to maxlen", round(n * args.epochs / t_base), "samples/s"),
            figure("model.fit, padded to maxlen", round(acc_base, 4), "test accuracy"),
            figure("train stage, bucketing by length", round(t_ours, 1), "s", round(t_base / t_ours, 2)),
            figure("train stage, bucketing by length", round(n * args.epochs / t_ours), "samples/s"),
            figure("train stage, bucketing by length", round(acc_ours, 4), "test accuracy"),
            figure("accuracy difference (train stage - model.fit)", round(100 * (acc_ours - acc_base), 2), "points"),
        ], command_line(), notes=[
            f"rows: train {n:,} / val {len(arrays['val']['y']):,} / test {len(test['y']):,}; maxlen {args.maxlen}, "
            f"median length {stats['splits']['train']['length']['p50']:g}",
            f"both: embedding {hp.embedding_dim}, GRU({hp.units}), seed 1, epochs {args.epochs}, "
            f"batch size {args.batch_size}",
        ])
    return 0


def accuracy(model, split: dict, padding: str) -> float:
    proba = predict_proba(model, split["x"], split["length"], padding, 512)
    return float((proba.argmax(1) == split["y"]).mean())


if __name__ == "__main__":
    sys.exit(main())
