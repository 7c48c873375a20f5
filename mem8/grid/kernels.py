"""The wave memory's numerics: numba-compiled kernels over numpy arrays, arrays in, arrays out.

Fields are complex64 and may be tiles of a larger grid: a kernel that writes a field takes the
tile's top-left cell in global coordinates (row0, col0) and computes every cell from its global
position only, with the same float arithmetic in the same order, so a grid split into any tiling
evolves bit for bit like the whole grid. Positions are (x = column, y = row) in cells.

Each public function is a thin Python wrapper that checks its arguments and calls a jitted kernel;
`mem8.grid.reference` holds a plain numpy version of each with the same signature. Kernels never
use fastmath (it would let LLVM reorder or fuse float operations) and never reduce across threads:
a parallel kernel splits rows among threads, and each row is computed exactly as the serial one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
from numba import njit, prange

Field = npt.NDArray[np.complex64]
Floats = npt.NDArray[np.float32]
Float64s = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int64]

FIELD_DTYPE = np.complex64
HALO = 1  # propagate reads one cell beyond each side of its tile
MAX_C2DT2 = 0.5  # (c dt / dx)^2 above this makes the 2D leapfrog scheme unstable
CUTOFF_SIGMAS = 3.0  # imprint writes nothing farther than this many sigmas from the centre

_F = TypeVar("_F", bound=Callable[..., Any])


def kernel(function: _F) -> _F:
    """`function` compiled by numba once and cached on disk, releasing the GIL while it runs (so
    tiles can step in threads); typed for mypy, which sees numba as untyped."""
    return cast(_F, njit(cache=True, nogil=True, fastmath=False)(function))


def parallel_kernel(function: _F) -> _F:
    """Like `kernel`, with its `prange` loops split among numba's threads."""
    return cast(_F, njit(cache=True, nogil=True, fastmath=False, parallel=True)(function))


# --- imprint --------------------------------------------------------------------------------


def imprint(
    tile: Field,
    row0: int,
    col0: int,
    x: float,
    y: float,
    amplitude: float,
    sigma: float,
    wavenumber: float,
    phase: float,
) -> None:
    """Adds A exp(-r^2 / 2 sigma^2) exp(i (k r + phase)), r the distance to global (x, y), in place.

    Only cells within CUTOFF_SIGMAS * sigma of the centre change; `tile`'s top-left cell is the
    global cell (row0, col0)."""
    _require_field("tile", tile)
    scalars = (x, y, amplitude, sigma, wavenumber, phase)
    if not all(math.isfinite(value) for value in scalars):
        raise ValueError("imprint needs finite position, amplitude, sigma, wavenumber and phase")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, not {sigma}")
    _imprint(tile, int(row0), int(col0), *(float(value) for value in scalars))


@kernel
def _imprint(
    tile: Field,
    row0: int,
    col0: int,
    x: float,
    y: float,
    amplitude: float,
    sigma: float,
    wavenumber: float,
    phase: float,
) -> None:
    radius = CUTOFF_SIGMAS * sigma
    limit = radius * radius
    spread = 2.0 * sigma * sigma
    first_row, stop_row = _span(y, radius, row0, tile.shape[0])
    first_col, stop_col = _span(x, radius, col0, tile.shape[1])
    for i in range(first_row, stop_row):
        dy = float(row0 + i) - y
        for j in range(first_col, stop_col):
            dx = float(col0 + j) - x
            r2 = dx * dx + dy * dy
            if r2 <= limit:
                envelope = amplitude * math.exp(-r2 / spread)
                angle = wavenumber * math.sqrt(r2) + phase
                wave = complex(envelope * math.cos(angle), envelope * math.sin(angle))
                tile[i, j] += np.complex64(wave)


@kernel
def _span(centre: float, radius: float, origin: int, length: int) -> tuple[int, int]:
    """The local index range [first, stop) covering centre +- radius, with a cell to spare."""
    first = np.floor(centre - radius) - 1.0 - origin  # np.floor stays float: no int overflow
    stop = np.ceil(centre + radius) + 2.0 - origin
    return int(min(max(first, 0.0), length)), int(min(max(stop, 0.0), length))


# --- propagate --------------------------------------------------------------------------------


def propagate(
    u: Field,
    u_prev: Field,
    c2dt2: float,
    gamma_dt: float,
    out: Field | None = None,
    *,
    parallel: bool = False,
) -> Field:
    """One leapfrog step of u_tt + gamma u_t = c^2 lap(u) on a tile; returns the next field.

    `u` is the current tile inside a HALO-cell border, shape (h + 2, w + 2): the caller fills the
    border with the neighbouring tiles' edge cells, and with zeros where the grid ends (the grid's
    boundary is fixed at zero); `pad_with_halo` does that. `u_prev` and the result are (h, w).
    u_next = (2u - (1 - gamma_dt/2) u_prev + c2dt2 lap(u)) / (1 + gamma_dt/2) with the 5-point
    Laplacian, the division done as a multiplication by the float32 reciprocal. `out` (which may
    be `u_prev` itself, for two-buffer stepping) receives the result instead of a new array.
    `parallel` splits the rows among numba's threads: the same bytes, faster on idle cores, but
    slower when another process holds a core (a descheduled thread stalls the whole step)."""
    _require_field("u", u)
    _require_field("u_prev", u_prev)
    inner = (u.shape[0] - 2 * HALO, u.shape[1] - 2 * HALO)
    if u_prev.shape != inner:
        raise ValueError(f"u_prev must be u without its halo, {inner}, not {u_prev.shape}")
    if not 0.0 < c2dt2 <= MAX_C2DT2:
        raise ValueError(f"c2dt2 must be in (0, {MAX_C2DT2}] for stability, not {c2dt2}")
    if not 0.0 <= gamma_dt < 2.0:
        raise ValueError(f"gamma_dt must be in [0, 2), not {gamma_dt}")
    result = _output(out, inner, u)
    keep, gain, inverse = _leapfrog_coefficients(c2dt2, gamma_dt)
    step = _propagate_parallel if parallel else _propagate_serial
    step(u, u_prev, result, keep, gain, inverse)
    return result


@functools.lru_cache(maxsize=64)  # a grid steps with the same constants every time
def _leapfrog_coefficients(
    c2dt2: float, gamma_dt: float
) -> tuple[np.float32, np.float32, np.float32]:
    """(1 - gamma_dt/2, c2dt2, 1 / (1 + gamma_dt/2)) as float32: the step is float32 throughout."""
    half = gamma_dt / 2.0
    return np.float32(1.0 - half), np.float32(c2dt2), np.float32(1.0 / (1.0 + half))


def _output(out: Field | None, shape: tuple[int, int], u: Field) -> Field:
    if out is None:
        return np.empty(shape, FIELD_DTYPE)
    _require_field("out", out)
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, not {out.shape}")
    if np.may_share_memory(out, u):
        raise ValueError("out must not overlap u: the step reads u's neighbours after writing")
    return out


@kernel
def _propagate_row(
    u: Floats, u_prev: Floats, out: Floats, i: int, keep: Any, gain: Any, inverse: Any
) -> None:
    """Row i of the step on float32 views: a cell's real and imaginary parts are adjacent, so a
    neighbour along the row is two floats away, and the halo is one row above and two floats in."""
    two, four = np.float32(2.0), np.float32(4.0)
    for j in range(out.shape[1]):
        centre = u[i + 1, j + 2]
        laplacian = ((u[i, j + 2] + u[i + 2, j + 2]) + (u[i + 1, j] + u[i + 1, j + 4])) - (
            four * centre
        )
        out[i, j] = ((two * centre - keep * u_prev[i, j]) + gain * laplacian) * inverse


@kernel
def _propagate_serial(
    u: Field, u_prev: Field, out: Field, keep: Any, gain: Any, inverse: Any
) -> None:
    u_f, u_prev_f, out_f = u.view(np.float32), u_prev.view(np.float32), out.view(np.float32)
    for i in range(out.shape[0]):
        _propagate_row(u_f, u_prev_f, out_f, i, keep, gain, inverse)


@parallel_kernel
def _propagate_parallel(
    u: Field, u_prev: Field, out: Field, keep: Any, gain: Any, inverse: Any
) -> None:
    u_f, u_prev_f, out_f = u.view(np.float32), u_prev.view(np.float32), out.view(np.float32)
    for i in prange(out.shape[0]):
        _propagate_row(u_f, u_prev_f, out_f, i, keep, gain, inverse)


def pad_with_halo(
    tile: Field,
    north: Field | None = None,
    south: Field | None = None,
    west: Field | None = None,
    east: Field | None = None,
) -> Field:
    """`tile` inside a HALO-cell border holding the facing edge of each neighbouring tile.

    A missing neighbour (the grid's edge) leaves zeros, the fixed boundary; corners stay zero
    (the 5-point stencil never reads them). For a whole grid, `pad_with_halo(field)`."""
    _require_field("tile", tile)
    height, width = tile.shape
    padded = np.zeros((height + 2, width + 2), FIELD_DTYPE)
    padded[1:-1, 1:-1] = tile
    for name, neighbour, edge, target in (
        ("north", north, (-1, slice(None)), (0, slice(1, -1))),
        ("south", south, (0, slice(None)), (-1, slice(1, -1))),
        ("west", west, (slice(None), -1), (slice(1, -1), 0)),
        ("east", east, (slice(None), 0), (slice(1, -1), -1)),
    ):
        if neighbour is not None:
            _require_edge(name, neighbour, width if name in ("north", "south") else height)
            padded[target] = neighbour[edge]
    return padded


def _require_edge(name: str, neighbour: Field, length: int) -> None:
    _require_field(name, neighbour)
    along = neighbour.shape[1] if name in ("north", "south") else neighbour.shape[0]
    if along != length:
        raise ValueError(f"the {name} neighbour's facing edge has {along} cells, not {length}")


# --- decay ----------------------------------------------------------------------------------


def decay(tile: Field, factor: float, *, parallel: bool = False) -> None:
    """Multiplies every cell by `factor`, in (0, 1], in place; `parallel` as for propagate."""
    _require_field("tile", tile)
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"a decay factor must be in (0, 1], not {factor}")
    scale = _decay_parallel if parallel else _decay_serial
    scale(tile, float(factor))


@kernel
def _decay_serial(tile: Field, factor: float) -> None:
    values, by = tile.view(np.float32), np.float32(factor)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            values[i, j] *= by


@parallel_kernel
def _decay_parallel(tile: Field, factor: float) -> None:
    values, by = tile.view(np.float32), np.float32(factor)
    for i in prange(values.shape[0]):
        for j in range(values.shape[1]):
            values[i, j] *= by


# --- temporal_bind ----------------------------------------------------------------------------


def temporal_bind(times: Float64s, window: float) -> Indices:
    """Group ids 0, 1, 2 ... for events sorted by time: an event less than `window` seconds after
    the previous one joins its group, so chains of close events form one group."""
    times = np.ascontiguousarray(times, np.float64)
    if times.ndim != 1:
        raise ValueError("times must be 1-D")
    if not window > 0:
        raise ValueError(f"window must be positive, not {window}")
    if times.shape[0] > 1 and not bool(np.all(times[1:] >= times[:-1])):
        raise ValueError("times must be sorted ascending (and not NaN)")
    groups: Indices = _temporal_bind(times, float(window))
    return groups


@kernel
def _temporal_bind(times: Float64s, window: float) -> Indices:
    groups = np.zeros(times.shape[0], np.int64)
    for m in range(1, times.shape[0]):
        groups[m] = groups[m - 1] + (0 if times[m] - times[m - 1] < window else 1)
    return groups


# --- associations -----------------------------------------------------------------------------


def associations(
    spots: Float64s, x: float, y: float, phase: float, sigma: float, floor: float, most: int
) -> tuple[Indices, Float64s]:
    """Which of `spots` (rows of x, y, phase) a packet at (x, y, phase) interferes with
    constructively: strength exp(-d^2 / 4 sigma^2) cos(phase difference) at least `floor`; the
    `most` strongest, strongest first, equal strengths in row order. Positions and strengths."""
    spots = np.ascontiguousarray(spots, np.float64)
    if spots.ndim != 2 or spots.shape[1] != 3:
        raise ValueError(f"spots must be rows of (x, y, phase), not of shape {spots.shape}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, not {sigma}")
    if most < 0:
        raise ValueError(f"most must be at least 0, not {most}")
    found: tuple[Indices, Float64s] = _associations(
        spots, float(x), float(y), float(phase), float(sigma), float(floor), int(most)
    )
    return found


@kernel
def _associations(
    spots: Float64s, x: float, y: float, phase: float, sigma: float, floor: float, most: int
) -> tuple[Indices, Float64s]:
    positions = np.empty(most, np.int64)
    strengths = np.empty(most, np.float64)
    spread = 4.0 * sigma * sigma
    count = 0
    for i in range(spots.shape[0]):
        dx = spots[i, 0] - x
        dy = spots[i, 1] - y
        strength = math.exp(-(dx * dx + dy * dy) / spread) * math.cos(phase - spots[i, 2])
        if not strength >= floor:  # NaN too
            continue
        at = count  # after every stronger or equal one: ties keep row order
        while at > 0 and strengths[at - 1] < strength:
            at -= 1
        if at >= most:
            continue
        for j in range(min(count, most - 1), at, -1):
            positions[j] = positions[j - 1]
            strengths[j] = strengths[j - 1]
        positions[at] = i
        strengths[at] = strength
        count = min(count + 1, most)
    return positions[:count], strengths[:count]


# --- energy -----------------------------------------------------------------------------------


def energy(u: Field, u_prev: Field, c2dt2: float) -> float:
    """The leapfrog scheme's discrete energy between two successive whole fields (no halo).

    E = sum |u - u_prev|^2 + c2dt2 sum over edges Re(grad u conj(grad u_prev)), the edges
    including those to the zero boundary. Stepping with gamma_dt = 0 conserves it exactly in exact
    arithmetic, and gamma_dt > 0 lowers it by (gamma_dt/2) sum |u_next - u_prev|^2 each step; it
    is positive for c2dt2 <= MAX_C2DT2. Summed in float64, row by row in a fixed order."""
    _require_field("u", u)
    _require_field("u_prev", u_prev)
    if u.shape != u_prev.shape:
        raise ValueError(f"u {u.shape} and u_prev {u_prev.shape} differ in shape")
    # the scheme steps with float32 coefficients; the energy uses the same one
    return float(_energy(u, u_prev, float(np.float32(c2dt2))))


@kernel
def _energy(u: Field, u_prev: Field, c2dt2: float) -> float:
    """On float32 views: real and imaginary parts are independent fields whose energies add."""
    u_f, u_prev_f = u.view(np.float32), u_prev.view(np.float32)
    total = 0.0
    for i in range(u.shape[0] + 1):  # row i's cells, and the edges just above row i
        total += _energy_row(u_f, u_prev_f, i, c2dt2)
    return total


@kernel
def _energy_row(u: Floats, u_prev: Floats, i: int, c2dt2: float) -> float:
    kinetic, potential = 0.0, 0.0
    for j in range(u.shape[1] + 2):  # the last two columns are the right boundary's edges
        now, before = _at(u, i, j), _at(u_prev, i, j)
        kinetic += (now - before) * (now - before)
        across = (now - _at(u, i, j - 2)) * (before - _at(u_prev, i, j - 2))
        down = (now - _at(u, i - 1, j)) * (before - _at(u_prev, i - 1, j))
        potential += across + down
    return kinetic + c2dt2 * potential


@kernel
def _at(values: Floats, i: int, j: int) -> float:
    """values[i, j] as float64, or the zero boundary outside the array."""
    if 0 <= i < values.shape[0] and 0 <= j < values.shape[1]:
        return float(values[i, j])
    return 0.0


# --- argument checks --------------------------------------------------------------------------


def _require_field(name: str, field: Field) -> None:
    if not isinstance(field, np.ndarray) or field.dtype != FIELD_DTYPE or field.ndim != 2:
        raise ValueError(f"{name} must be a 2-D complex64 array")
    if field.strides[1] != field.itemsize:
        raise ValueError(f"{name}'s rows must be contiguous")
