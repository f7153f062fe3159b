"""Class probabilities from a trained model, fast: one traced forward pass, batches of similar length."""
from __future__ import annotations

import logging

import numpy as np

from pipeline.data.sequences import trim_padding


class _NewModelRetracing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def compiled_forward(model):
    """model(x, training=False) traced once for every batch size and length.

    Measured on NSMC (10,000 reviews, BiGRU): 0.6 s against 5.5 s for eager calls.
    """
    import tensorflow as tf

    # Each model gets its own function (the champion's fold RNNs: one per fold), so TF's warning that
    # "5 out of the last 9 calls ... triggered tf.function retracing" says nothing wrong here.
    logger = tf.get_logger()
    if not any(isinstance(f, _NewModelRetracing) for f in logger.filters):
        logger.addFilter(_NewModelRetracing())
    return tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                       input_signature=[tf.TensorSpec([None, None], tf.int32)])


def predict_proba(model, x: np.ndarray, lengths: np.ndarray, padding: str, batch_size: int,
                  forward=None) -> np.ndarray:
    """Class probabilities [n, classes], batching rows of similar length and trimming the padding.

    `forward` is compiled_forward(model), made once by callers that predict repeatedly.
    """

    forward = forward or compiled_forward(model)
    order = np.argsort(lengths, kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = np.asarray(trim_padding(x[rows], max(int(lengths[rows].max()), 1), padding), dtype=np.int32)
        p = np.asarray(forward(batch))
        if p.shape[1] == 1:
            p = np.concatenate([1 - p, p], axis=1)
        if out is None:
            out = np.zeros((len(x), p.shape[1]), dtype=np.float32)
        out[rows] = p
    return out
