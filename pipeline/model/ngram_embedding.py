"""Token embeddings enriched with character n-grams (fastText's subword vectors, Bojanowski et al., 2017).

A token's vector is the mean of its own embedding and the embeddings of its character n-grams, so
rare tokens that share parts with others (주민등록 and 주민등록증, 난치성질환 and 희귀난치성질환)
share what was learned about those parts. On small corpora that is where the linear baseline's
character n-grams win over a word-level RNN (docs/models.md).

The n-grams are those of the vocabulary's tokens (the train split's), with < and > marking where a
token starts and ends; only n-grams that at least two tokens share are kept, since one that
belongs to a single token adds nothing its own embedding cannot learn. The token -> n-gram ids
table is a (non-trainable) weight of the layer: it is saved with the model, so prediction and
serving feed token ids as before and need no change. Tokens out of the vocabulary (id 1) have no
n-grams: they are <oov> as without the option.
"""
from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np


def token_ngrams(token: str, low: int, high: int) -> list[str]:
    """The character n-grams of `<token>`, low <= n <= high, in order, without the whole `<token>`."""
    marked = f"<{token}>"
    grams = []
    for n in range(low, high + 1):
        for start in range(len(marked) - n + 1):
            gram = marked[start:start + n]
            if gram != marked and gram not in ("<", ">"):
                grams.append(gram)
    return list(dict.fromkeys(grams))


def ngram_table(tokens: Sequence[str], ngrams: tuple[int, int], reserved: int = 2) -> tuple[np.ndarray, int]:
    """(table, number of n-gram ids): table[token id] holds the ids (1..) of the token's shared
    n-grams, 0-padded. The first `reserved` ids (<pad>, <oov>) get none. N-gram ids follow their
    first appearance in token-id order, so the same vocabulary gives the same table."""
    low, high = ngrams
    per_token = [[] if i < reserved else token_ngrams(tok, low, high) for i, tok in enumerate(tokens)]
    owners: dict[str, int] = {}
    for grams in per_token:
        for gram in grams:
            owners[gram] = owners.get(gram, 0) + 1
    ids: dict[str, int] = {}
    for grams in per_token:
        for gram in grams:
            if owners[gram] >= 2 and gram not in ids:
                ids[gram] = len(ids) + 1
    rows = [[ids[g] for g in grams if g in ids] for grams in per_token]
    table = np.zeros((len(tokens), max(1, max(map(len, rows), default=0))), np.int32)
    for i, row in enumerate(rows):
        table[i, :len(row)] = row
    return table, len(ids) + 1


@keras.saving.register_keras_serializable(package="pipeline")
class NgramEmbedding(keras.layers.Layer):
    """Token ids [batch, time] -> [batch, time, output_dim]: the mean of the token's embedding and
    its n-grams' (see the module's doc). `table` is ngram_table's; a loaded model gets it back
    from its weights."""

    def __init__(self, vocab_size: int, ngram_count: int, width: int, output_dim: int,
                 mask_zero: bool = True, table: np.ndarray | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab_size, self.ngram_count, self.width = int(vocab_size), int(ngram_count), int(width)
        self.output_dim, self.mask_zero = int(output_dim), bool(mask_zero)
        if table is not None and table.shape != (self.vocab_size, self.width):
            raise ValueError(f"table shape {table.shape} is not ({self.vocab_size}, {self.width})")
        self._table = table

    def build(self, input_shape: tuple) -> None:
        self.words = self.add_weight(name="words", shape=(self.vocab_size, self.output_dim),
                                     initializer="uniform")   # Keras Embedding's default
        self.ngrams = self.add_weight(name="ngrams", shape=(self.ngram_count, self.output_dim),
                                      initializer="uniform")
        table = self._table
        init = "zeros" if table is None else keras.initializers.Constant(table)
        self.table = self.add_weight(name="table", shape=(self.vocab_size, self.width), dtype="int32",
                                     initializer=init, trainable=False)

    def call(self, inputs: Any) -> Any:
        ops = keras.ops
        ids = ops.cast(inputs, "int32")
        grams = ops.take(self.table, ids, axis=0)                       # [batch, time, width]
        present = ops.cast(ops.not_equal(grams, 0), self.compute_dtype)
        summed = ops.take(self.words, ids, axis=0) + ops.sum(
            ops.take(self.ngrams, grams, axis=0) * ops.expand_dims(present, -1), axis=2)
        return summed / ops.expand_dims(1.0 + ops.sum(present, axis=2), -1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return keras.ops.not_equal(inputs, 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocab_size": self.vocab_size, "ngram_count": self.ngram_count,
                "width": self.width, "output_dim": self.output_dim, "mask_zero": self.mask_zero}
