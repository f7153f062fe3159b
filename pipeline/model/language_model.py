"""train.model.pretrain lm: the encoder starts from a language model of the training texts.

Before the classifier sees a label, its embedding and first recurrent layer learn to predict each
token from the ones before it (the forward direction) and, when bidirectional, from the ones after
it (the backward direction), through one softmax both share: Dai & Le's LM-LSTM (2015) with ELMo's
two directions (Peters et al., 2018). It reads only the token ids of the rows the fit trains on (a
fit: its training split; a refit: train + val; a fold: its training part), never a label, and the
layers then train on the labels as usual.

The softmax covers the `pretrain_words` most frequent tokens (vocabulary ids are ranked by
frequency); rarer targets, <oov> and padding are not scored: on NSMC a softmax over all 30,000
tokens would cost more than the recurrent layer. Deeper recurrent layers start at random: in a
bidirectional stack the second layer's forward direction reads the first layer's backward states,
which have seen the token it would predict.

The members of an ensemble start from one language model (trained with the run's seed): it is the
costly part, and the members still differ in their heads, dropout masks and batch order.
"""
from __future__ import annotations

import hashlib
import math
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from pipeline.core.config import ModelParams


@dataclass(frozen=True)
class LanguageModel:
    weights: dict[str, list[np.ndarray]]   # by layer name: `embedding` (when it has weights), `rnn_1`
    history: list[dict]                     # per epoch: loss (mean cross-entropy per scored token), tokens


# The last language models by key: an ensemble's members and their refits ask in turn for the same
# two (the training rows', then train + val's).
_trained: dict[tuple, LanguageModel] = {}
_KEEP = 2


def output_words(hp: ModelParams, vocab_size: int) -> int:
    """How many token ids the language model's softmax covers (the most frequent ones)."""
    return min(vocab_size, hp.pretrain_words) if hp.pretrain_words else vocab_size


def language_model_sums(x, states, head, hp: ModelParams, words: int):
    """(cross-entropy sum, scored tokens) per row: states[t] of the forward direction predicts x[t+1],
    of the backward direction x[t-1]; a target is scored when it and the step reading it are text
    and it is one of the `words` ids the softmax covers (not <pad>, not <oov>)."""
    import tensorflow as tf

    directions = [(states[..., :hp.units], 1), (states[..., hp.units:], -1)] if hp.bidirectional else [(states, 1)]
    total = count = 0.0
    for h, step in directions:
        if step == 1:
            h, source, target = h[:, :-1], x[:, :-1], x[:, 1:]
        else:
            h, source, target = h[:, 1:], x[:, 1:], x[:, :-1]
        scored = (source != 0) & (target >= 2) & (target < words)
        xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.where(scored, target, 0), logits=head(h))
        weight = tf.cast(scored, xent.dtype)
        total += tf.reduce_sum(xent * weight, axis=1)
        count += tf.reduce_sum(weight, axis=1)
    return total, count


def start_from_language_model(model, x: np.ndarray, hp: ModelParams, vocabulary: Sequence[str], strategy,
                              batches: Callable[[int], Iterator], steps: int, learning_rate: float, seed: int,
                              progress: bool | None = None) -> LanguageModel:
    """Train the language model of the token ids x (or take the last one if it was of the same rows
    and settings) and put its layers' weights in the classifier `model`, layers of the same names.
    `batches(epoch)` gives an epoch's distributed (x, y) batches, `steps` of them."""
    key = (hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest(), x.shape, hp.model_dump_json(),
           len(vocabulary), steps, learning_rate, seed)
    if key not in _trained:
        while len(_trained) >= _KEEP:
            del _trained[next(iter(_trained))]   # the oldest
        _trained[key] = train_language_model(x, hp, vocabulary, strategy, batches, steps, learning_rate, seed,
                                             progress)
    for name, weights in _trained[key].weights.items():
        model.get_layer(name).set_weights(weights)
    return _trained[key]


def train_language_model(x: np.ndarray, hp: ModelParams, vocabulary: Sequence[str], strategy, batches,
                         steps: int, learning_rate: float, seed: int, progress: bool | None = None) -> LanguageModel:
    """hp.pretrain_epochs epochs of `steps` batches (`batches(epoch)`, rows of x) with Adam at
    `learning_rate`, the gradients' global norm clipped at 1 (a fresh softmax's first steps are large)."""
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    from pipeline.core.seed import set_seed
    from pipeline.model.architecture import input_features, recurrent_layer

    # Its own seed, whichever member asks first; the classifier's layers drew theirs when built.
    set_seed(seed, tensorflow=True)
    words = output_words(hp, len(vocabulary))
    with strategy.scope():
        tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
        features = input_features(hp, len(vocabulary), vocabulary)(tokens)
        encoder = keras.Model(tokens, recurrent_layer(hp, index=1, sequences=True)(features), name="language_model")
        head = keras.layers.Dense(words, name="lm_output")
        head.build((None, None, hp.units))
        variables = encoder.trainable_variables + head.trainable_variables
        optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=1.0)
        optimizer.build(variables)   # slots now, not inside the replicated step (see training.fit)

    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            total, count = language_model_sums(xb, encoder(xb, training=True), head, hp, words)
            loss = tf.nn.compute_average_loss(total / tf.maximum(count, 1.0))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return tf.reduce_sum(total), tf.reduce_sum(count)

    def distributed_step(batch):
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None)
                for s in strategy.run(replica_step, args=batch)]

    step = tf.function(distributed_step, input_signature=[batches(0).element_spec])
    started = time.perf_counter()
    history = []
    for epoch in range(hp.pretrain_epochs):
        it = batches(epoch)
        bar = tqdm(range(steps), desc=f"language model {epoch + 1}/{hp.pretrain_epochs}", unit="step",
                   leave=False, disable=None if progress is None else not progress, file=sys.stderr)
        sums = np.zeros(2)
        for _ in bar:
            sums += [float(t) for t in step(next(it))]
        bar.close()
        loss = sums[0] / max(sums[1], 1.0)
        history.append({"epoch": epoch + 1, "loss": loss, "tokens": int(sums[1])})
        print(f"language model epoch {epoch + 1}/{hp.pretrain_epochs}: loss {loss:.4f} perplexity "
              f"{math.exp(min(loss, 50)):.1f} over {int(sums[1]):,} tokens of {len(x):,} rows "
              f"({words:,}-word softmax, {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return LanguageModel({layer.name: layer.get_weights() for layer in encoder.layers if layer.weights}, history)
