"""The recall weight: one definition, equal to its numpy reference; decay never buries a match."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mem8.grid import reference
from mem8.grid.dynamics import (
    RETENTION_FLOOR,
    SUPERSEDED_WEIGHT,
    fading,
    recall_weight,
    recall_weights,
)


def memories(seed: int, count: int) -> tuple[np.ndarray, ...]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    created = rng.uniform(0.0, 1e7, count)
    tau = np.where(rng.random(count) < 0.2, math.inf, rng.uniform(1e5, 1e7, count))
    amplitude = rng.uniform(0.3, 2.0, count).astype(np.float32)
    recalls = rng.integers(0, 9, count).astype(np.int32)
    standing = np.where(rng.random(count) < 0.3, SUPERSEDED_WEIGHT, 1.0).astype(np.float32)
    return created, tau, amplitude, recalls, standing


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 200), st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_the_weights_equal_the_numpy_reference(seed: int, count: int, exponent: float) -> None:
    found = memories(seed, count)
    now = 5e6
    actual = recall_weights(now, *found, exponent)
    expected = reference.recall_weights(now, *found, exponent)
    assert actual.dtype == np.float32
    assert np.allclose(actual, expected, rtol=1e-6, atol=0.0)
    assert np.allclose(fading(now, found[0], found[1]), reference.fading(now, *found[:2]))


def test_at_exponent_zero_the_weight_is_the_standing_exactly() -> None:
    found = memories(3, 100)
    assert recall_weights(5e6, *found, 0.0).tobytes() == found[-1].tobytes()


def test_one_memory_weighs_as_in_the_array() -> None:
    created, tau, amplitude, recalls, standing = memories(4, 10)
    weights = recall_weights(5e6, created, tau, amplitude, recalls, standing, 1.0)
    for i in range(10):
        one = recall_weight(5e6, created[i], tau[i], amplitude[i], recalls[i], standing[i], 1.0)
        assert np.float32(one) == weights[i]


def test_decay_lowers_a_weight_by_at_most_the_floor() -> None:
    fresh = recall_weight(0.0, 0.0, 86_400.0, 1.0, 0, 1.0, 1.0)
    ancient = recall_weight(1e9, 0.0, 86_400.0, 1.0, 0, 1.0, 1.0)
    consolidated = recall_weight(1e9, 0.0, math.inf, 1.0, 0, 1.0, 1.0)
    assert fresh == pytest.approx(1.0) and consolidated == pytest.approx(1.0)
    assert ancient == pytest.approx(RETENTION_FLOOR)
    assert recall_weight(1e9, 0.0, 86_400.0, 1.0, 0, SUPERSEDED_WEIGHT, 0.0) == SUPERSEDED_WEIGHT
