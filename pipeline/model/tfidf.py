"""A TfidfVectorizer that skops saves in seconds: its vocabulary as two arrays, not one node per n-gram.

skops writes a dict entry by entry, and with max_features scikit-learn leaves each index a numpy
int64, which skops stores as its own .npy member after checking the zip's name list: quadratic in
the vocabulary (229 s for Seoul 120's 126,758 n-grams of 300 rows, 143 MB; hours, by the square law,
for its full 2 x 500,000). Here the n-grams, in index order, are saved as their UTF-8 bytes and the end of
each (two plain arrays), and the dict is rebuilt on load (bench/linear_save.py). Imported only where
the linear model is built or loaded: it imports scikit-learn.
"""
from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

_BYTES, _ENDS = "vocabulary_utf8_", "vocabulary_ends_"


class CompactTfidf(TfidfVectorizer):
    """TfidfVectorizer, with its fitted vocabulary stored compactly (pickle, copy and skops alike)."""

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        vocabulary = state.get("vocabulary_")
        if isinstance(vocabulary, dict) and sorted(vocabulary.values()) == list(range(len(vocabulary))):
            terms = sorted(vocabulary, key=vocabulary.__getitem__)
            encoded = [term.encode("utf-8") for term in terms]
            state = {k: v for k, v in state.items() if k != "vocabulary_"}
            state[_BYTES] = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
            state[_ENDS] = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if _BYTES in state:
            raw, ends = state.pop(_BYTES).tobytes(), state.pop(_ENDS).tolist()
            starts = [0, *ends[:-1]]
            state["vocabulary_"] = {raw[s:e].decode("utf-8"): i for i, (s, e) in enumerate(zip(starts, ends))}
        super().__setstate__(state)
