"""The numba kernels against their numpy reference, and the physics and determinism they promise."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import brute_force
from mem8.grid import kernels, reference
from mem8.grid.kernels import Field, Floats

examples = settings(max_examples=30, deadline=None)  # deadline: the first example compiles

seeds = st.integers(0, 2**32 - 1)
sides = st.integers(16, 64)
c2dt2s = st.floats(0.05, kernels.MAX_C2DT2)
gammas = st.floats(0.0, 0.5)


@st.composite
def packets(draw: st.DrawFn) -> tuple[float, float, float, float, float, float]:
    """(x, y, amplitude, sigma, wavenumber, phase), centres anywhere near a 64-cell grid."""
    return (
        draw(st.floats(-12.0, 76.0)),
        draw(st.floats(-12.0, 76.0)),
        draw(st.floats(-2.0, 2.0)),
        draw(st.floats(0.3, 8.0)),
        draw(st.floats(0.0, 3.0)),
        draw(st.floats(-math.pi, math.pi)),
    )


def random_field(seed: int, shape: tuple[int, int]) -> Field:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return values.astype(np.complex64)


def assert_close(actual: npt.NDArray[Any], expected: npt.NDArray[Any], scale: float) -> None:
    """Equal within 1e-6 of the scale of the values involved."""
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    error = float(np.max(np.abs(actual - expected), initial=0.0))
    assert error <= 1e-6 * scale, f"error {error} at scale {scale}"


def peak(*fields: npt.NDArray[np.generic]) -> float:
    return max(float(np.max(np.abs(f), initial=0.0)) for f in fields) or 1.0


# --- each kernel equals its reference ---------------------------------------------------------


@examples
@given(seeds, sides, sides, st.integers(-40, 80), st.integers(-40, 80), packets())
def test_imprint_matches_reference(
    seed: int, height: int, width: int, row0: int, col0: int, packet: tuple[float, ...]
) -> None:
    tile = random_field(seed, (height, width))
    expected = tile.copy()
    kernels.imprint(tile, row0, col0, *packet)
    reference.imprint(expected, row0, col0, *packet)
    assert_close(tile, expected, peak(expected, np.array([packet[2]])))


def test_imprint_writes_nothing_beyond_three_sigmas() -> None:
    tile = np.zeros((40, 40), np.complex64)
    kernels.imprint(tile, 0, 0, 20.0, 20.0, 1.0, 2.0, 1.0, 0.0)
    rows, cols = np.nonzero(tile)
    assert np.all((rows - 20.0) ** 2 + (cols - 20.0) ** 2 <= 36.0)
    assert tile[20, 26] != 0 and tile[20, 27] == 0


@examples
@given(seeds, sides, sides, c2dt2s, gammas)
def test_propagate_matches_reference(
    seed: int, height: int, width: int, c2dt2: float, gamma_dt: float
) -> None:
    u = random_field(seed, (height + 2, width + 2))
    u_prev = random_field(seed + 1, (height, width))
    actual = kernels.propagate(u, u_prev, c2dt2, gamma_dt)
    expected = reference.propagate(u, u_prev, c2dt2, gamma_dt)
    assert_close(actual, expected, peak(u, u_prev))


@settings(max_examples=5, deadline=None)
@given(seeds, c2dt2s, gammas)
def test_serial_and_parallel_steps_are_bit_identical(
    seed: int, c2dt2: float, gamma_dt: float
) -> None:
    u, u_prev = random_field(seed, (34, 50)), random_field(seed + 1, (32, 48))
    serial = kernels.propagate(u, u_prev, c2dt2, gamma_dt)
    parallel = kernels.propagate(u, u_prev, c2dt2, gamma_dt, parallel=True)
    assert serial.tobytes() == parallel.tobytes()
    tile = u.copy()
    kernels.decay(u, 0.75)
    kernels.decay(tile, 0.75, parallel=True)
    assert u.tobytes() == tile.tobytes()


def test_propagate_into_the_previous_field_buffer() -> None:
    u, u_prev = random_field(1, (18, 18)), random_field(2, (16, 16))
    expected = kernels.propagate(u, u_prev, 0.3, 0.1)
    assert kernels.propagate(u, u_prev, 0.3, 0.1, out=u_prev) is u_prev
    assert u_prev.tobytes() == expected.tobytes()


@examples
@given(seeds, sides, sides, st.floats(0.01, 1.0))
def test_decay_matches_reference(seed: int, height: int, width: int, factor: float) -> None:
    tile = random_field(seed, (height, width))
    expected = tile.copy()
    kernels.decay(tile, factor)
    reference.decay(expected, factor)
    assert_close(tile, expected, peak(expected))


def unit_rows(rng: np.random.Generator, rows: int, dimensions: int) -> Floats:
    vectors = rng.standard_normal((rows, dimensions))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def test_temporal_bind_links_chains_of_close_events() -> None:
    times = np.array([0.0, 1.5, 3.0, 10.0])
    assert kernels.temporal_bind(times, 2.0).tolist() == [0, 0, 0, 1]
    assert kernels.temporal_bind(np.array([]), 2.0).tolist() == []


@examples
@given(st.lists(st.floats(0.0, 5.0), max_size=60), st.floats(0.1, 4.0))
def test_temporal_bind_matches_reference(gaps: list[float], window: float) -> None:
    times = np.cumsum(np.array(gaps, np.float64))
    actual = kernels.temporal_bind(times, window)
    assert actual.dtype == np.int64
    assert actual.tolist() == reference.temporal_bind(times, window).tolist()


def test_associations_are_the_strongest_over_the_floor_ties_in_row_order() -> None:
    spots = np.array(
        [
            [0.0, 0.0, 0.0],  # on top, in phase: strength 1
            [1.0, 0.0, math.pi],  # close but opposite phase: destructive
            [0.0, 0.0, 0.0],  # a tie with row 0: after it
            [50.0, 50.0, 0.0],  # too far
            [1.0, 0.0, 0.0],  # exp(-1/4)
        ]
    )
    order, strengths = kernels.associations(spots, 0.0, 0.0, 0.0, 1.0, 0.3, 8)
    assert order.tolist() == [0, 2, 4]
    assert strengths.tolist() == pytest.approx([1.0, 1.0, math.exp(-0.25)])
    assert kernels.associations(spots, 0.0, 0.0, 0.0, 1.0, 0.3, 2)[0].tolist() == [0, 2]
    assert kernels.associations(np.zeros((0, 3)), 0.0, 0.0, 0.0, 1.0, 0.3, 8)[0].tolist() == []


@examples
@given(seeds, st.integers(0, 200), st.integers(0, 10), st.sampled_from([0.0, 0.3, 0.9]))
def test_associations_match_reference(seed: int, count: int, most: int, floor: float) -> None:
    rng = np.random.default_rng(seed)
    spots = np.column_stack(
        [rng.uniform(0, 8, count), rng.uniform(0, 8, count), rng.uniform(-3, 3, count)]
    )
    spots[rng.random(count) < 0.2] = spots[0] if count else 0.0  # ties
    order, strengths = kernels.associations(spots, 4.0, 4.0, 0.5, 1.5, floor, most)
    expected_order, expected_strengths = reference.associations(
        spots, 4.0, 4.0, 0.5, 1.5, floor, most
    )
    assert order.tolist() == expected_order.tolist()
    np.testing.assert_allclose(strengths, expected_strengths, rtol=1e-12)


@examples
@given(seeds, sides, sides, c2dt2s)
def test_energy_matches_reference(seed: int, height: int, width: int, c2dt2: float) -> None:
    u, u_prev = random_field(seed, (height, width)), random_field(seed + 1, (height, width))
    expected = reference.energy(u, u_prev, c2dt2)
    assert kernels.energy(u, u_prev, c2dt2) == pytest.approx(expected, rel=1e-9)


# --- superposition --------------------------------------------------------------------------


@examples
@given(sides, packets(), packets())
def test_imprints_superpose(side: int, a: tuple[float, ...], b: tuple[float, ...]) -> None:
    a_then_b, b_then_a = np.zeros((side, side), np.complex64), np.zeros((side, side), np.complex64)
    only_a, only_b = np.zeros_like(a_then_b), np.zeros_like(a_then_b)
    for field, first, second in ((a_then_b, a, b), (b_then_a, b, a)):
        kernels.imprint(field, 0, 0, *first)
        kernels.imprint(field, 0, 0, *second)
    kernels.imprint(only_a, 0, 0, *a)
    kernels.imprint(only_b, 0, 0, *b)
    assert a_then_b.tobytes() == b_then_a.tobytes() == (only_a + only_b).tobytes()


@examples
@given(seeds, sides, c2dt2s, gammas)
def test_propagation_is_linear(seed: int, side: int, c2dt2: float, gamma_dt: float) -> None:
    u_a, u_b = (
        random_field(seed, (side + 2, side + 2)),
        random_field(seed + 1, (side + 2, side + 2)),
    )
    p_a, p_b = random_field(seed + 2, (side, side)), random_field(seed + 3, (side, side))
    together = kernels.propagate(u_a + u_b, p_a + p_b, c2dt2, gamma_dt)
    apart = kernels.propagate(u_a, p_a, c2dt2, gamma_dt) + kernels.propagate(
        u_b, p_b, c2dt2, gamma_dt
    )
    assert_close(together, apart, 10 * peak(u_a, u_b, p_a, p_b))  # a few roundings per cell


# --- energy ---------------------------------------------------------------------------------


def energies(packet: tuple[float, ...], c2dt2: float, gamma_dt: float, steps: int) -> list[float]:
    """The energy after each step of a 32-cell grid started from a packet at rest."""
    u = np.zeros((32, 32), np.complex64)
    kernels.imprint(u, 0, 0, *packet)
    u_prev = u.copy()
    kernels.imprint(u, 0, 0, 16.0, 16.0, 0.3, 2.0, 1.0, 0.0)  # and a kick, so that it moves
    history = [kernels.energy(u, u_prev, c2dt2)]
    for _ in range(steps):
        u, u_prev = kernels.propagate(kernels.pad_with_halo(u), u_prev, c2dt2, gamma_dt), u
        history.append(kernels.energy(u, u_prev, c2dt2))
    return history


@settings(max_examples=10, deadline=None)
@given(packets(), c2dt2s)
def test_energy_is_conserved_without_damping(packet: tuple[float, ...], c2dt2: float) -> None:
    history = np.array(energies(packet, c2dt2, 0.0, 200))
    assert np.all(history > 0)
    assert np.max(np.abs(history - history[0])) <= 1e-5 * history[0]


@settings(max_examples=10, deadline=None)
@given(packets(), c2dt2s, st.floats(0.001, 0.5))
def test_energy_never_grows_with_damping(
    packet: tuple[float, ...], c2dt2: float, gamma_dt: float
) -> None:
    history = energies(packet, c2dt2, gamma_dt, 200)
    for before, after in itertools.pairwise(history):
        assert after <= before * (1 + 1e-6) + 1e-9 * history[0]
    assert history[-1] < history[0]


# --- determinism and tiling -------------------------------------------------------------------


def scenario() -> tuple[Field, Floats, npt.NDArray[np.int64]]:
    """Imprints, steps, decays and a recall: everything a grid does, from fixed inputs."""
    field, previous = np.zeros((48, 48), np.complex64), np.zeros((48, 48), np.complex64)
    for n in range(6):
        kernels.imprint(field, 0, 0, 7.5 * n, 40.0 - 5.3 * n, 1.0 + n, 2.5, 0.7, 0.4 * n)
    for _ in range(30):
        field, previous = (
            kernels.propagate(kernels.pad_with_halo(field), previous, 0.3, 0.02),
            field,
        )
        kernels.decay(field, 0.999)
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, 1000, 64)
    scores = np.empty(1000, np.float32)
    rows, cols = rng.integers(0, 48, (2, 1000))
    gains = np.abs(field[rows, cols]).astype(np.float32)  # the field at memories' cells
    brute_force.resonance(vectors[0], vectors, gains, scores)
    return field, scores, brute_force.top_k(scores, 10)


def test_the_same_inputs_give_the_same_bytes() -> None:
    first, second = scenario(), scenario()
    assert [a.tobytes() for a in first] == [b.tobytes() for b in second]


class Tiled:
    """A square grid held as n x n tiles stepped one by one, exchanging halos like grid actors."""

    def __init__(self, side: int, n: int) -> None:
        self.size, self.n = side // n, n
        self.tiles = [[self._blank() for _ in range(n)] for _ in range(n)]
        self.previous = [[self._blank() for _ in range(n)] for _ in range(n)]

    def _blank(self) -> Field:
        return np.zeros((self.size, self.size), np.complex64)

    def origins(self) -> list[tuple[int, int]]:
        return [(r, c) for r in range(self.n) for c in range(self.n)]

    def imprint(self, packet: tuple[float, ...]) -> None:
        for r, c in self.origins():
            kernels.imprint(self.tiles[r][c], r * self.size, c * self.size, *packet)

    def step(self, c2dt2: float, gamma_dt: float, factor: float) -> None:
        following = [[self.tiles[r][c] for c in range(self.n)] for r in range(self.n)]
        for r, c in self.origins():
            padded = kernels.pad_with_halo(
                self.tiles[r][c],
                self._tile(r - 1, c),
                self._tile(r + 1, c),
                self._tile(r, c - 1),
                self._tile(r, c + 1),
            )
            following[r][c] = kernels.propagate(padded, self.previous[r][c], c2dt2, gamma_dt)
            kernels.decay(following[r][c], factor)
        self.tiles, self.previous = following, self.tiles

    def _tile(self, r: int, c: int) -> Field | None:
        return self.tiles[r][c] if 0 <= r < self.n and 0 <= c < self.n else None

    def field(self) -> Field:
        whole: Field = np.block(self.tiles)
        return whole


@settings(max_examples=8, deadline=None)
@given(st.lists(packets(), min_size=1, max_size=4), c2dt2s, gammas)
def test_a_tiled_grid_evolves_bit_for_bit_like_the_whole(
    imprints: list[tuple[float, ...]], c2dt2: float, gamma_dt: float
) -> None:
    whole, tiled = Tiled(64, 1), Tiled(64, 4)
    for packet in imprints:
        whole.imprint(packet)
        tiled.imprint(packet)
    assert tiled.field().tobytes() == whole.field().tobytes()
    for _ in range(20):
        whole.step(c2dt2, gamma_dt, 0.99)
        tiled.step(c2dt2, gamma_dt, 0.99)
    assert tiled.field().tobytes() == whole.field().tobytes()
    assert np.block(tiled.previous).tobytes() == whole.previous[0][0].tobytes()


# --- argument checks --------------------------------------------------------------------------


def test_unstable_or_malformed_arguments_are_refused() -> None:
    field = np.zeros((8, 8), np.complex64)
    with pytest.raises(ValueError, match="stability"):
        kernels.propagate(np.zeros((10, 10), np.complex64), field, 0.6, 0.0)
    with pytest.raises(ValueError, match="without its halo"):
        kernels.propagate(field, field, 0.25, 0.0)
    with pytest.raises(ValueError, match="overlap"):
        padded = np.zeros((10, 10), np.complex64)
        kernels.propagate(padded, field, 0.25, 0.0, out=padded[1:-1, 1:-1])
    with pytest.raises(ValueError, match="complex64"):
        kernels.decay(field.astype(np.complex128), 0.5)
    with pytest.raises(ValueError, match="decay factor"):
        kernels.decay(field, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        kernels.imprint(field, 0, 0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="sorted"):
        kernels.temporal_bind(np.array([1.0, 0.0]), 2.0)
    with pytest.raises(ValueError, match="rows of"):
        kernels.associations(np.zeros((2, 2)), 0.0, 0.0, 0.0, 1.0, 0.3, 8)
    with pytest.raises(ValueError, match="sigma"):
        kernels.associations(np.zeros((2, 3)), 0.0, 0.0, 0.0, 0.0, 0.3, 8)
