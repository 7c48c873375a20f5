"""The recall sketch: kernel = numpy reference, the estimate tracks the cosine, and the exact
rescoring is the recall weight times the cosine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mem8.grid import sketch
from mem8.grid.dynamics import recall_weights

DIMENSIONS = 64


def unit_rows(count: int, seed: int) -> np.ndarray:  # type: ignore[type-arg]
    rows = np.random.default_rng(seed).standard_normal((count, DIMENSIONS)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def test_the_estimate_tracks_the_cosine() -> None:
    axes = sketch.projection(DIMENSIONS)
    query = unit_rows(1, 5)[0]
    mix = np.linspace(-1.0, 1.0, 2000, dtype=np.float32)[:, None]  # cosines from -1 to 1
    rows = mix * query + (1 - np.abs(mix)) * unit_rows(2000, 6)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    ones, zeros = np.ones(len(rows), np.float32), np.zeros(len(rows), np.float32)
    estimate, _ = sketch.shortlist(
        sketch.sketch(query, axes)[0], sketch.sketch(rows, axes), ones, zeros, 1.0, len(rows)
    )
    cosine = rows @ query
    assert estimate[-1] == pytest.approx(1.0) and estimate[0] == pytest.approx(-1.0)
    assert float(np.corrcoef(estimate, cosine)[0, 1]) > 0.95
    assert float(np.abs(estimate - cosine).mean()) < 0.1  # 256 bits: a few hundredths


@pytest.mark.parametrize("exponent", [1.0, 0.5, 0.0])
def test_rescoring_is_the_recall_weight_times_the_mixed_resonance_and_the_gain(
    exponent: float,
) -> None:
    rows = unit_rows(50, 7)
    query = unit_rows(1, 8)[0]
    created = np.linspace(0.0, 1e6, 50)
    tau = np.where(np.arange(50) % 5 == 0, math.inf, 3e5)
    amplitude = np.linspace(0.5, 1.6, 50).astype(np.float32)
    recalls = (np.arange(50) % 4).astype(np.int32)
    standing = np.where(np.arange(50) % 3 == 0, 0.5, 1.0).astype(np.float32)
    cells = np.stack([np.arange(50) % 4 + 10, np.arange(50) // 4 + 20], axis=1).astype(np.float64)
    field = (np.arange(4 * 13).reshape(4, 13) * (0.1 + 0.2j)).astype(np.complex64)
    words = np.linspace(0.0, 1.0, 20).astype(np.float32)
    positions = np.arange(5, 45, 2, dtype=np.intp)
    activation = sketch.Activation(field, (10, 20), 0.2)
    memories = (
        *(query, rows, positions, created, tau, amplitude, recalls, standing),
        *(words, 0.25, exponent, 2e6, cells),
    )
    scores = sketch.rescore(*memories, activation)
    weights = recall_weights(
        2e6,
        created[positions],
        tau[positions],
        amplitude[positions],
        recalls[positions],
        standing[positions],
        exponent,
    )
    at = cells[positions].astype(np.intp)
    level = np.abs(field[at[:, 0] - 10, at[:, 1] - 20])
    gains = 1.0 + 0.2 * level / (1.0 + level)
    expected = (0.25 * (rows[positions] @ query) + 0.75 * words) * weights * gains
    assert np.allclose(scores, expected, atol=1e-5)
    quiet = sketch.rescore(*memories, sketch.QUIET)
    assert np.allclose(quiet, expected / gains, atol=1e-5)


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
    estimates, positions = sketch.shortlist(query, bits, weights, words, 0.5, keep)
    expected, chosen = sketch.shortlist_reference(query, bits, weights, words, 0.5, keep)
    assert estimates.tobytes() == expected.tobytes()
    assert positions.tolist() == chosen.tolist()


def test_the_parallel_and_serial_shortlists_agree() -> None:
    axes = sketch.projection(DIMENSIONS)
    bits = sketch.sketch(unit_rows(sketch.PARALLEL_FROM + 5, 3), axes)
    weights = np.ones(len(bits), np.float32)
    words = np.zeros(len(bits), np.float32)
    query = bits[0]
    estimates, positions = sketch.shortlist(query, bits, weights, words, 0.5, 64)
    expected, chosen = sketch.shortlist_reference(query, bits, weights, words, 0.5, 64)
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
    estimates, positions = sketch.shortlist(query, bits, weights, words, 0.5, keep)
    expected, chosen = sketch.shortlist_reference(query, bits, weights, words, 0.5, keep)
    assert estimates.tobytes() == expected.tobytes()
    assert positions.tolist() == chosen.tolist()
