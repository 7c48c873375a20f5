"""The brute-force recall kernels of `bench grid` equal their numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import brute_force
from tests.grid.test_kernels import assert_close, examples, seeds, unit_rows


@examples
@given(seeds, st.integers(0, 200), st.integers(1, 96))
def test_resonance_matches_reference(seed: int, rows: int, dimensions: int) -> None:
    rng = np.random.default_rng(seed)
    query = unit_rows(rng, 1, dimensions)[0]
    vectors = unit_rows(rng, rows, dimensions)
    weights = rng.uniform(0.0, 2.0, rows).astype(np.float32)
    actual, expected = np.empty(rows, np.float32), np.empty(rows, np.float32)
    brute_force.resonance(query, vectors, weights, actual)
    brute_force.resonance_reference(query, vectors, weights, expected)
    assert_close(actual, expected, 2.0)


def test_resonance_sums_in_the_same_order_on_every_path() -> None:
    rng = np.random.default_rng(7)
    query, vectors = unit_rows(rng, 1, 384)[0], unit_rows(rng, 5000, 384)
    weights = np.ones(5000, np.float32)
    serial, parallel = np.empty(5000, np.float32), np.empty(5000, np.float32)
    brute_force.resonance(query, vectors, weights, serial)
    brute_force.resonance(query, vectors, weights, parallel, parallel=True)
    assert serial.tobytes() == parallel.tobytes()


@examples
@given(seeds, st.integers(0, 300), st.integers(0, 320), st.booleans())
def test_top_k_matches_a_stable_sort(seed: int, length: int, k: int, with_nan: bool) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, length).astype(np.float32)  # many ties
    if with_nan and length:
        scores[rng.integers(0, length, 3)] = np.nan
    actual = brute_force.top_k(scores, k)
    assert actual.dtype == np.int64
    assert actual.tolist() == brute_force.top_k_reference(scores, k).tolist()


def test_top_k_breaks_ties_by_lower_index() -> None:
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0, np.nan], np.float32)
    assert brute_force.top_k(scores, 2).tolist() == [1, 2]
    assert brute_force.top_k(scores, 4).tolist() == [1, 2, 4, 3]
    assert brute_force.top_k(scores, 10).tolist() == [1, 2, 4, 3, 0, 5]
    assert brute_force.top_k(scores, 0).tolist() == []


def test_malformed_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        brute_force.resonance(
            np.zeros(3, np.float32),
            np.zeros((2, 4), np.float32),
            np.zeros(2, np.float32),
            np.zeros(2, np.float32),
        )
