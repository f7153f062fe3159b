"""Train a tiny model under one strategy and save what the test compares (run as a subprocess).

    python tests/train_worker.py {none,mirrored,multi_worker} OUT.npz

Logical devices must be configured before TensorFlow starts, and multi-worker training needs a
process per worker, hence a script rather than an in-process test.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from tinydata import tiny_data  # noqa: E402


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pipeline.core.config import ModelParams, TrainParams
    from pipeline.core.seed import set_seed
    from pipeline.model.strategies import is_chief, make_strategy
    from pipeline.model.training import fit

    devices = ("/cpu:0", "/cpu:1") if mode == "mirrored" else ()
    strategy = make_strategy(mode, devices)
    import keras  # noqa: F401  (set_seed seeds TF once Keras is loaded)
    set_seed(7)
    cfg = TrainParams(model=ModelParams(cell="gru", units=8, embedding_dim=8), epochs=3, batch_size=16 if
                      mode != "mirrored" else 8, seed=7, early_stopping_patience=0, bucket_by_length=True)
    result = fit(tiny_data(), cfg, strategy, progress=False)
    # Each replica's copy of every variable, to show they are identical.
    # (a Keras 3 Variable wraps the tf.distribute one in .value; that one holds a copy per replica)
    copies = [[np.asarray(c) for c in getattr(v.value, "values", (v.value,))] for v in result.model.weights]
    np.savez(out, *[c[0] for c in copies])
    out.with_suffix(".json").write_text(json.dumps({
        "replicas": result.replicas, "chief": is_chief(strategy),
        "replicas_identical": all(np.array_equal(c[0], other) for c in copies for other in c[1:]),
        "copies_per_variable": len(copies[0]), "history": result.history}))


if __name__ == "__main__":
    main()
