"""Word vectors learned from the training texts alone, to start the embedding from (train.model.embedding_init).

`ppmi`: the truncated SVD of the positive pointwise mutual information between tokens and the
tokens around them, with word2vec's context smoothing (counts ** 0.75) and 1/distance weights in a
window of 5. This is the count-based form of word2vec's skip-gram objective (Levy & Goldberg,
2014; Levy, Goldberg & Dagan, 2015): tokens used in the same contexts get close vectors before the
classifier sees a label, which matters when a class rests on words seen a few times.

Only the rows the model trains on are read (a fit's training split; a refit's train + val), never
the rows it is scored on. The vectors are scaled to Keras' uniform initialiser's range and the
embedding stays trainable.
"""
from __future__ import annotations

import numpy as np

WINDOW = 5
INIT_SCALE = 0.05   # keras.initializers.RandomUniform's default limit, which Embedding starts from


# The last call's arguments and answer: an ensemble's members train on the same array, and on NSMC
# one call takes about a minute. Holding x keeps its identity from being reused by another array.
_last: tuple = ()


def ppmi_svd_vectors(x: np.ndarray, vocab_size: int, dim: int, window: int = WINDOW,
                     reserved: int = 2) -> np.ndarray:
    """[vocab_size, dim] vectors from the token ids x (padded rows, pre or post). The first
    `reserved` ids (<pad>, <oov>) get zeros, as does a token that never co-occurs. Called again
    with the same array (the next ensemble member), it returns the same vectors without recomputing."""
    global _last
    key = (vocab_size, dim, window, reserved)
    if _last and _last[0] is x and _last[1] == key:
        return _last[2].copy()
    vectors = _ppmi_svd(x, vocab_size, dim, window, reserved)
    _last = (x, key, vectors)
    return vectors.copy()


def _ppmi_svd(x: np.ndarray, vocab_size: int, dim: int, window: int, reserved: int) -> np.ndarray:
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD

    pairs = _cooccurrences(x, window)
    keep = (pairs[0] >= reserved) & (pairs[1] >= reserved)
    counts = sp.coo_matrix((pairs[2][keep], (pairs[0][keep], pairs[1][keep])),
                           shape=(vocab_size, vocab_size)).tocsr().tocoo()   # duplicates summed
    vectors = np.zeros((vocab_size, dim), np.float32)
    if counts.nnz == 0:
        return vectors
    total = counts.data.sum()
    words = np.asarray(counts.sum(axis=1)).ravel()
    contexts = np.asarray(counts.sum(axis=0)).ravel() ** 0.75
    contexts *= total / contexts.sum()
    pmi = np.log(counts.data * total / (words[counts.row] * contexts[counts.col]))
    positive = pmi > 0
    ppmi = sp.csr_matrix((pmi[positive], (counts.row[positive], counts.col[positive])),
                         shape=(vocab_size, vocab_size))
    k = min(dim, min(ppmi.shape) - 1)
    svd = TruncatedSVD(k, random_state=0).fit(ppmi)
    # U * sqrt(S): the symmetric split of the factorisation, the usual choice for word vectors.
    vectors[:, :k] = svd.transform(ppmi) / np.sqrt(np.maximum(svd.singular_values_, 1e-12))
    vectors[:reserved] = 0
    peak = np.abs(vectors).max()
    return vectors * (INIT_SCALE / peak) if peak > 0 else vectors


def _cooccurrences(x: np.ndarray, window: int) -> tuple[np.ndarray, ...]:
    """(token, context, weight) for every pair within `window` steps, both ways, weighted 1/distance.
    Padding (id 0) is contiguous at one end of a row, so dropping its pairs leaves the text's."""
    rows, cols, weights = [], [], []
    for d in range(1, window + 1):
        a, b = x[:, :-d].ravel(), x[:, d:].ravel()
        both = (a != 0) & (b != 0)
        a, b = a[both], b[both]
        rows += [a, b]
        cols += [b, a]
        weights.append(np.full(2 * len(a), 1.0 / d))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)


def start_embedding_from(model, vectors: np.ndarray, reserved: int = 2) -> None:
    """Put `vectors` in the model's token embedding (the `embedding` layer's first weight: an
    Embedding's table or an NgramEmbedding's word vectors), keeping <pad> and <oov> as they were."""
    variable = model.get_layer("embedding").weights[0]
    table = np.array(variable.numpy())
    if table.shape != vectors.shape:
        raise ValueError(f"the embedding is {table.shape}, the vectors {vectors.shape}")
    table[reserved:] = vectors[reserved:]
    variable.assign(table)
