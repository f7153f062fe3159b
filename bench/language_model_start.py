"""What train.model.pretrain lm leaves in the encoder: the first recurrent layer's outputs and the
weights' size, after a random start and after the language model, on the prepared training rows.

  python bench/language_model_start.py [--root DIR] [--set KEY=VALUE ...] [--rows 300]

The classifier is params.yaml's train config with the tune stage's best values (as the train stage
builds it) and `model.pretrain: lm`; `--set` changes train keys (e.g. model.pretrain_learning_rate=0.001).
For each start it prints the mean |weight| of the embedding (ids 2..), the norms of rnn_1's weights,
and, over the text steps of the first `--rows` training rows, the share of rnn_1 outputs with
|h| > 0.9 (saturated tanh: little gradient flows back through them) and their mean |h|, then the
ratio of the language model's figures to the random start's. One process, the CPU.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from pipeline.core.config import load_params, override  # noqa: E402
from pipeline.core.seed import set_seed  # noqa: E402
from pipeline.data.prepared import load_prepared  # noqa: E402
from pipeline.model.strategies import make_strategy  # noqa: E402
from pipeline.model.training import epoch_batches, steps_per_epoch  # noqa: E402
from pipeline.tuning.best import resolve_tuned  # noqa: E402


def encoder_figures(model, x: np.ndarray) -> dict[str, float]:
    import keras

    emb = model.get_layer("embedding").get_weights()[0]
    states = np.asarray(keras.Model(model.input, model.get_layer("rnn_1").output)(x, training=False))
    h = np.abs(states[x != 0])
    return {"embedding mean |w|": float(np.abs(emb[2:]).mean()),
            "rnn_1 weight norm": float(np.sqrt(sum((w ** 2).sum() for w in model.get_layer("rnn_1").get_weights()))),
            "share |h| > 0.9": float((h > 0.9).mean()), "mean |h|": float(h.mean())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."), help="folder holding data/ and tune/ (default: here)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--rows", type=int, default=300, help="training rows whose states are measured")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a train key over the tuned config, e.g. model.pretrain_epochs=25")
    args = p.parse_args()
    from pipeline.model.architecture import build_model
    from pipeline.model.language_model import train_language_model

    params = resolve_tuned(load_params(args.params), args.root / "tune" / "best_params.json")
    options = {"model.pretrain": "lm", **{k: yaml.safe_load(v) for k, v in (i.split("=", 1) for i in args.set)}}
    cfg = override(params.train, options, "--set")
    data = load_prepared(args.root / "data" / "prepared").cut(cfg.maxlen)
    strategy = make_strategy("none", ())
    set_seed(cfg.seed, tensorflow=True)
    model = build_model(cfg.model, data.vocab_size, len(data.labels), data.tokens)
    x = data.train["x"][: args.rows]
    random_start = encoder_figures(model, x)

    batches = epoch_batches(data.train, cfg.batch_size, strategy, seed=cfg.seed, bucket=cfg.bucket_by_length,
                            padding=data.padding)
    lm = train_language_model(data.train["x"], cfg.model, data.tokens, strategy, batches,
                              steps_per_epoch(len(data.train["y"]), cfg.batch_size),
                              cfg.model.pretrain_learning_rate, cfg.seed, progress=False)
    for name, weights in lm.weights.items():
        model.get_layer(name).set_weights(weights)
    after = encoder_figures(model, x)
    print(f"{len(data.train['y']):,} training rows; {options}; language model loss {lm.history[-1]['loss']:.3f} "
          f"after {len(lm.history)} epochs", file=sys.stderr)
    print(f"{'figure':<22}{'random':>10}{'lm':>10}{'lm / random':>13}")
    for key in random_start:
        ratio = after[key] / random_start[key] if random_start[key] else float("inf")
        print(f"{key:<22}{random_start[key]:>10.4f}{after[key]:>10.4f}{ratio:>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
