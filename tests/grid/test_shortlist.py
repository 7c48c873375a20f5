"""The shortlist kernel equals its numpy reference on every path (serial, parallel, floor)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mem8.grid import shortlist, sketch
from tests.support.vectors import DIMENSIONS, unit_rows


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 300),
    keep=st.integers(1, 80),
    seed=st.integers(0, 10_000),
    with_nan=st.booleans(),
)
def test_the_shortlist_kernel_equals_its_reference(
    count: int, keep: int, seed: int, with_nan: bool
) -> None:
    rng = np.random.default_rng(seed)
    axes = sketch.projection(DIMENSIONS)
    bits = sketch.sketch(unit_rows(count, seed), axes)
    query = sketch.sketch(unit_rows(1, seed + 1)[0], axes)[0]
    weights = rng.choice([0.5, 1.0, 1.5], count).astype(np.float32)  # many ties
    words = np.where(rng.random(count) < 0.3, rng.random(count), 0.0).astype(np.float32)
    if with_nan:
        weights[rng.integers(0, count, 2)] = np.nan
    estimates, positions = shortlist.shortlist(query, bits, weights, words, 0.5, keep)
    expected, chosen = shortlist.shortlist_reference(query, bits, weights, words, 0.5, keep)
    assert estimates.tobytes() == expected.tobytes()
    assert positions.tolist() == chosen.tolist()


def test_the_parallel_and_serial_shortlists_agree() -> None:
    axes = sketch.projection(DIMENSIONS)
    bits = sketch.sketch(unit_rows(shortlist.PARALLEL_FROM + 5, 3), axes)
    weights = np.ones(len(bits), np.float32)
    words = np.zeros(len(bits), np.float32)
    query = bits[0]
    estimates, positions = shortlist.shortlist(query, bits, weights, words, 0.5, 64)
    expected, chosen = shortlist.shortlist_reference(query, bits, weights, words, 0.5, 64)
    assert estimates.tobytes() == expected.tobytes()
    assert positions.tolist() == chosen.tolist()


@pytest.mark.parametrize("kind", ["random", "ties", "nan", "few numbers", "rising"])
def test_a_long_shortlist_through_a_floor_equals_the_reference(kind: str) -> None:
    """From 128 x the count up, the cut is found through a floor guessed from a sample; a
    bad guess (ties, NaNs, a sorted bucket) falls back to the whole pass."""
    rng = np.random.default_rng(11)
    count, keep = 20_000, 64
    axes = sketch.projection(DIMENSIONS)
    bits = sketch.sketch(unit_rows(count, 12), axes)
    query = bits[3] if kind != "ties" else np.zeros(sketch.WORDS, np.uint64)
    weights = rng.uniform(0.5, 1.5, count).astype(np.float32)
    words = np.zeros(count, np.float32)
    if kind == "ties":
        bits = np.zeros_like(bits)  # every estimate is its weight
        weights = rng.choice([0.5, 1.0], count).astype(np.float32)
    elif kind == "nan":
        weights[rng.random(count) < 0.5] = np.nan
    elif kind == "few numbers":
        weights[keep - 1 :] = np.nan
    elif kind == "rising":
        weights = np.linspace(0.5, 1.5, count).astype(np.float32)
        bits = np.zeros_like(bits)
    estimates, positions = shortlist.shortlist(query, bits, weights, words, 0.5, keep)
    expected, chosen = shortlist.shortlist_reference(query, bits, weights, words, 0.5, keep)
    assert estimates.tobytes() == expected.tobytes()
    assert positions.tolist() == chosen.tolist()
