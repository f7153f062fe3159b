"""train.model.embedding_init ppmi: word vectors from the training texts (PPMI + SVD) start the embedding."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.tinydata import tiny_data, tiny_model, tiny_train
from pipeline.model.architecture import build_model
from pipeline.model.pretrain import INIT_SCALE, ppmi_svd_vectors, start_embedding_from

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def _corpus(padding: str = "post") -> np.ndarray:
    """Ids 2 and 3 are used in the same contexts (between 4 and 5), id 6 only between 7 and 8."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(300):
        left, right = (4, 5) if rng.random() < 0.5 else (7, 8)
        middle = rng.choice([2, 3]) if left == 4 else 6
        text = [int(t) for t in rng.integers(9, 20, rng.integers(0, 4))] + [left, middle, right]
        pad = [0] * (10 - len(text))
        rows.append(text + pad if padding == "post" else pad + text)
    return np.array(rows, np.int32)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_tokens_in_the_same_contexts_get_close_vectors():
    vectors = ppmi_svd_vectors(_corpus(), vocab_size=20, dim=8)
    assert vectors.shape == (20, 8) and vectors.dtype == np.float32
    assert _cos(vectors[2], vectors[3]) > 0.9
    assert _cos(vectors[2], vectors[6]) < 0.5
    assert not vectors[:2].any(), "<pad> and <oov> get no vector"
    assert np.abs(vectors).max() == pytest.approx(INIT_SCALE)   # the uniform initialiser's range


def test_vectors_are_deterministic_and_ignore_where_the_padding_is():
    post = ppmi_svd_vectors(_corpus("post"), vocab_size=20, dim=8)
    np.testing.assert_array_equal(post, ppmi_svd_vectors(_corpus("post"), vocab_size=20, dim=8))
    pre = ppmi_svd_vectors(_corpus("pre"), vocab_size=20, dim=8)
    # The same co-occurrences: the same factorisation up to each dimension's sign.
    np.testing.assert_allclose(np.abs(pre), np.abs(post), atol=1e-5)


def test_a_text_without_pairs_gives_zero_vectors():
    assert not ppmi_svd_vectors(np.array([[5, 0, 0], [1, 0, 0]], np.int32), vocab_size=8, dim=4).any()


@pytest.mark.parametrize("char_ngrams", [(), (1, 2)], ids=["embedding", "ngram_embedding"])
def test_the_embedding_starts_from_the_vectors_but_pad_and_oov(char_ngrams):
    model = build_model(tiny_model(char_ngrams=char_ngrams), vocab_size=30, num_classes=2,
                        vocabulary=[f"w{i}" for i in range(30)])
    before = np.array(model.get_layer("embedding").weights[0].numpy())
    vectors = np.random.default_rng(1).uniform(-0.05, 0.05, (30, 8)).astype(np.float32)
    start_embedding_from(model, vectors)
    after = np.asarray(model.get_layer("embedding").weights[0].numpy())
    np.testing.assert_array_equal(after[2:], vectors[2:])
    np.testing.assert_array_equal(after[:2], before[:2])
    with pytest.raises(ValueError, match=r"the embedding is \(30, 8\), the vectors \(30, 4\)"):
        start_embedding_from(model, vectors[:, :4])


def test_a_fit_starts_from_the_vectors_of_its_training_rows():
    from pipeline.model.strategies import make_strategy
    from pipeline.model.training import fit

    data = tiny_data()
    cfg = tiny_train(epochs=1, learning_rate=1e-9, model=tiny_model(embedding_init="ppmi"))
    result = fit(data, cfg, make_strategy("none"), progress=False)
    expected = ppmi_svd_vectors(data.train["x"], data.vocab_size, 8)
    learned = np.asarray(result.model.get_layer("embedding").weights[0].numpy())
    np.testing.assert_allclose(learned[2:], expected[2:], atol=1e-6)   # one step at lr 1e-9 moves nothing
    # And it learns the task from there as a random start does.
    trained = fit(data, tiny_train(epochs=6, learning_rate=0.01, model=tiny_model(embedding_init="ppmi")),
                  make_strategy("none"), progress=False)
    assert trained.best["val/accuracy"] > 0.9


def test_the_same_array_is_factorised_once_per_run_of_members(monkeypatch):
    import pipeline.model.pretrain as pretrain

    calls = []
    factorise = pretrain._ppmi_svd
    monkeypatch.setattr(pretrain, "_ppmi_svd", lambda *a: calls.append(a[0]) or factorise(*a))
    x = _corpus()
    first = ppmi_svd_vectors(x, vocab_size=20, dim=8)
    first[2] = 0   # the caller's copy: changing it must not change the next answer
    again = ppmi_svd_vectors(x, vocab_size=20, dim=8)
    assert len(calls) == 1 and again[2].any()
    y = x.copy()
    other = ppmi_svd_vectors(y, vocab_size=20, dim=8)   # another array: computed again
    assert len(calls) == 2
    np.testing.assert_array_equal(other, again)
    ppmi_svd_vectors(y, vocab_size=20, dim=4)
    assert len(calls) == 3, "another dimension is another answer"
