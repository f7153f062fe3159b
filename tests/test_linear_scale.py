"""The linear candidate out of core (pipeline/model/hashed_linear.py): hashed n-grams + SGD over batches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import LinearParams
from pipeline.core.errors import StageError
from pipeline.model import hashed_linear as hl
from pipeline.model.linear import LinearModel, SplitRows, fit_linear, load_linear, save_linear

SMALL = LinearParams(hash_features=2**12, sgd_epochs=3, out_of_core_above=0)


def separable(n: int = 400, seed: int = 0) -> SplitRows:
    """Two classes told apart by their words (좋다 / 싫다), among shared noise words."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    tokens = [[["싫다", "좋다"][c], *(f"w{rng.integers(50)}" for _ in range(6))] for c in y]
    return SplitRows(np.array([f"r{i}" for i in range(n)]), y, tokens)


def write_parquet(path: Path, rows: SplitRows, extra: int = 0, row_group_size: int | None = None) -> Path:
    """tokens.parquet as the tokenize stage writes it (id, tokens), with `extra` rows outside the fit."""
    ids = rows.ids.tolist() + [f"other{i}" for i in range(extra)]
    tokens = rows.tokens + [["다른"]] * extra
    pq.write_table(pa.table({"id": ids, "tokens": tokens}), path, row_group_size=row_group_size)
    return path


def test_it_learns_a_separable_task_and_refits_to_the_same_predictions():
    train, held = separable(400), separable(100, seed=1)
    first = fit_linear(SMALL, train, ["neg", "pos"])
    assert type(first.pipeline.named_steps["classifier"]).__name__ == "SGDClassifier"
    proba = first.predict_proba(held.tokens)
    assert proba.shape == (100, 2)
    assert (proba.argmax(1) == held.y).mean() == 1.0
    again = fit_linear(SMALL, train, ["neg", "pos"])
    assert np.array_equal(again.predict_proba(held.tokens), proba)


def test_streamed_from_parquet_it_fits_what_it_fits_from_memory(tmp_path):
    rows = separable(300)
    path = write_parquet(tmp_path / "tokens.parquet", rows, extra=50)   # the fit rows first, in order
    streamed = hl.fit_hashed(SMALL, SplitRows(rows.ids, rows.y, []), ["neg", "pos"], path, batch_rows=64)
    in_memory = hl.fit_hashed(SMALL, rows, ["neg", "pos"], batch_rows=64)
    held = separable(60, seed=2)
    assert (streamed.predict_proba(held.tokens).argmax(1) == held.y).all()
    assert np.array_equal(streamed.predict_proba(held.tokens), in_memory.predict_proba(held.tokens))


def test_the_iterator_yields_every_fit_row_once_in_bounded_batches(tmp_path):
    rows = separable(1000)
    path = write_parquet(tmp_path / "tokens.parquet", rows, extra=200, row_group_size=300)
    fit = np.arange(0, 1000, 3)   # a third of the rows are the fit split's
    orders = []
    for epoch in (0, 1):
        batches = list(hl.parquet_batches(path, rows.ids[fit], rows.y[fit], epoch, batch_rows=25))
        assert all(0 < len(y) <= 25 and len(t) == len(y) for t, y in batches)
        seen = [tuple(t) for b in batches for t in b[0]]
        assert sorted(seen) == sorted(tuple(rows.tokens[i]) for i in fit)
        assert np.concatenate([b[1] for b in batches]).sum() == rows.y[fit].sum()
        orders.append(seen)
    assert orders[0] != orders[1]   # shuffled per epoch
    again = [tuple(t) for b in hl.parquet_batches(path, rows.ids[fit], rows.y[fit], 0, batch_rows=25) for t in b[0]]
    assert again == orders[0]       # seeded
    memory = [len(y) for _, y in hl.memory_batches(rows, 0, batch_rows=25)]
    assert sum(memory) == 1000 and max(memory) <= 25


def test_a_fit_id_missing_from_the_parquet_file_is_a_data_error(tmp_path):
    from pipeline.core.errors import DataError

    rows = separable(50)
    path = write_parquet(tmp_path / "tokens.parquet", SplitRows(rows.ids[:40], rows.y[:40], rows.tokens[:40]))
    with pytest.raises(DataError, match="10 of 50 fit ids are not in it"):
        list(hl.parquet_batches(path, rows.ids, rows.y, 0))


def test_the_threshold_switches_the_path():
    rows = separable(200)
    below = fit_linear(LinearParams(out_of_core_above=200, max_features=1000), rows, ["neg", "pos"])
    above = fit_linear(LinearParams(out_of_core_above=199, hash_features=2**12, sgd_epochs=2), rows, ["neg", "pos"])
    assert type(below.pipeline.named_steps["classifier"]).__name__ == "OneVsRestClassifier"
    assert type(above.pipeline.named_steps["classifier"]).__name__ == "SGDClassifier"
    assert LinearParams().out_of_core_above > 135_000   # NSMC x1's train + val keep today's model


def test_hash_features_must_be_a_power_of_two():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="power of two"):
        LinearParams(hash_features=1000)


def test_it_round_trips_through_skops_and_a_tampered_file_is_refused(tmp_path):
    import skops.io as sio

    rows = separable(300)
    model = fit_linear(SMALL, rows, ["neg", "pos"])
    save_linear(model, tmp_path)
    loaded = load_linear(tmp_path, "retrain")
    assert isinstance(loaded, LinearModel)
    assert np.array_equal(loaded.predict_proba(rows.tokens), model.predict_proba(rows.tokens))
    model.pipeline.named_steps["classifier"].smuggled = Path("x")   # a type this code does not trust
    sio.dump(model.pipeline, tmp_path / "linear.skops")
    with pytest.raises(StageError, match=r"refers to types this code does not trust \(pathlib\."):
        load_linear(tmp_path, "retrain")
