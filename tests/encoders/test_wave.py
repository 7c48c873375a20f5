"""The wave representation: a rotation into more samples, or a low-pass into fewer."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from mem8.encoders.wave import MAX_DIMENSIONS, to_wave


def unit_rows(count: int, features: int = 384, seed: int = 7) -> npt.NDArray[np.float32]:
    rows = np.random.default_rng(seed).standard_normal((count, features))
    unit: npt.NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32
    )
    return unit


def reference(vector: npt.NDArray[np.float32], d: int) -> list[float]:
    """The formula as written, one sample at a time."""
    c = [math.sqrt((1 if j == 0 else 2) / d) for j in range(d)]
    signal = [
        sum(
            float(vector[j]) * c[j] * math.cos(math.pi * (n + 0.5) * j / d)
            for j in range(min(d, len(vector)))
        )
        for n in range(d)
    ]
    norm = math.sqrt(sum(s * s for s in signal))
    return [s / norm for s in signal]


@pytest.mark.parametrize("d", [384, 500, 1000, MAX_DIMENSIONS])
def test_cosines_are_preserved_from_384_samples_up(d: int) -> None:
    rows = unit_rows(20)
    waves = to_wave(rows, d)
    assert waves.shape == (20, d)
    np.testing.assert_allclose(waves @ waves.T, rows @ rows.T, atol=1e-6)


@pytest.mark.parametrize("d", [1, 2, 7, 100, 383, 384, 1000, MAX_DIMENSIONS])
def test_every_wave_has_unit_length(d: int) -> None:
    waves = to_wave(unit_rows(10), d)
    np.testing.assert_allclose(np.linalg.norm(waves, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("d", [1, 5, 64, 400])
def test_the_samples_follow_the_formula(d: int) -> None:
    rows = unit_rows(3)
    waves = to_wave(rows, d)
    for row, wave in zip(rows, waves, strict=True):
        np.testing.assert_allclose(wave, reference(row, d), atol=1e-6)


def test_the_same_vectors_give_the_same_waves() -> None:
    rows = unit_rows(5)
    first = to_wave(rows)
    assert np.array_equal(first, to_wave(rows.copy()))
    assert first.dtype == np.float32


def test_one_sample_is_the_sign_of_the_lowest_frequency() -> None:
    rows = unit_rows(6)
    waves = to_wave(rows, 1)
    assert waves.shape == (6, 1)
    np.testing.assert_array_equal(waves[:, 0], np.sign(rows[:, 0]))


def test_fewer_samples_keep_the_low_frequencies() -> None:
    low = np.zeros((1, 384), np.float32)
    low[0, :10] = unit_rows(1, 10)[0]
    high = np.zeros((1, 384), np.float32)
    high[0, 200:] = unit_rows(1, 184)[0]
    mixed = (low + high) / np.sqrt(2)
    # With 100 samples the high-frequency half is filtered out entirely.
    np.testing.assert_allclose(to_wave(mixed, 100), to_wave(low, 100), atol=1e-6)


def test_a_zero_vector_stays_zero() -> None:
    assert not to_wave(np.zeros((1, 384), np.float32)).any()


@pytest.mark.parametrize("d", [0, -1, MAX_DIMENSIONS + 1])
def test_dimensions_out_of_range_are_refused(d: int) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        to_wave(unit_rows(1), d)
