"""Train the tiny model under one strategy and save what the test compares (run as a subprocess).

    python tests/helpers/train_worker.py {none,mirrored,multi_worker} OUT.npz

Logical devices must be configured before TensorFlow starts, and multi-worker training needs a
process per worker, hence a script rather than an in-process test.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

if __name__ == "__main__":   # run as a script: the repo (pipeline) and tests/ (helpers) on the path
    TESTS = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(TESTS.parent), str(TESTS)]

import numpy as np  # noqa: E402

from helpers.tinydata import tiny_data, tiny_train  # noqa: E402


def config(mode: str):
    """The same global batch of 16 under every strategy: 2 replicas x 8 when mirrored."""
    return tiny_train(epochs=2, batch_size=8 if mode == "mirrored" else 16, seed=7, bucket_by_length=True)


def weights(model) -> list[list[np.ndarray]]:
    """Each replica's copy of every variable (one copy outside a distribution strategy).

    A Keras 3 Variable wraps the tf.distribute one in .value; that one holds a copy per replica.
    """
    return [[np.asarray(c) for c in getattr(v.value, "values", (v.value,))] for v in model.weights]


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pipeline.core.seed import set_seed
    from pipeline.model.strategies import is_chief, make_strategy
    from pipeline.model.training import fit

    devices = ("/cpu:0", "/cpu:1") if mode == "mirrored" else ()
    strategy = make_strategy(mode, devices)
    set_seed(7, tensorflow=True)
    result = fit(tiny_data(), config(mode), strategy, progress=False)
    copies = weights(result.model)   # every replica's, to show they are identical
    np.savez(out, *[c[0] for c in copies])
    out.with_suffix(".json").write_text(json.dumps({
        "replicas": result.replicas, "chief": is_chief(strategy),
        "replicas_identical": all(np.array_equal(c[0], other) for c in copies for other in c[1:]),
        "copies_per_variable": len(copies[0]), "history": result.history}))


if __name__ == "__main__":
    main()
