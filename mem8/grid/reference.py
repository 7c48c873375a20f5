"""Plain numpy versions of `mem8.grid.kernels` (and of the recall weight of
`mem8.grid.dynamics`), same signatures: the tests' source of truth.

Written for clarity, not speed; they skip the kernels' argument checks and ignore `parallel`."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mem8.grid.dynamics import RETENTION_FLOOR
from mem8.grid.kernels import CUTOFF_SIGMAS

Field = npt.NDArray[np.complex64]
Floats = npt.NDArray[np.float32]
Float64s = npt.NDArray[np.float64]
Indices = npt.NDArray[np.int64]


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
    """Adds A exp(-r^2 / 2 sigma^2) exp(i (k r + phase)) within CUTOFF_SIGMAS sigma, in place."""
    rows = (row0 + np.arange(tile.shape[0], dtype=np.float64))[:, None]
    cols = (col0 + np.arange(tile.shape[1], dtype=np.float64))[None, :]
    dy, dx = rows - y, cols - x
    r2 = dx * dx + dy * dy
    radius = CUTOFF_SIGMAS * sigma
    envelope = amplitude * np.exp(-r2 / (2.0 * sigma * sigma))
    angle = wavenumber * np.sqrt(r2) + phase
    wave = (envelope * np.cos(angle) + 1j * (envelope * np.sin(angle))).astype(np.complex64)
    inside = r2 <= radius * radius
    tile[inside] += wave[inside]


def propagate(
    u: Field,
    u_prev: Field,
    c2dt2: float,
    gamma_dt: float,
    out: Field | None = None,
    *,
    parallel: bool = False,
) -> Field:
    """One damped leapfrog step of the padded tile `u`; float32 coefficients, as the kernel."""
    keep = np.float32(1.0 - gamma_dt / 2.0)
    gain = np.float32(c2dt2)
    inverse = np.float32(1.0 / (1.0 + gamma_dt / 2.0))
    centre = u[1:-1, 1:-1]
    laplacian = (u[:-2, 1:-1] + u[2:, 1:-1]) + (u[1:-1, :-2] + u[1:-1, 2:]) - np.float32(4) * centre
    following = ((np.float32(2) * centre - keep * u_prev) + gain * laplacian) * inverse
    result: Field = following.astype(np.complex64) if out is None else out
    result[...] = following
    return result


def decay(tile: Field, factor: float, *, parallel: bool = False) -> None:
    tile *= np.float32(factor)


def temporal_bind(times: Float64s, window: float) -> Indices:
    """A new group starts wherever the gap to the previous event is at least `window`."""
    starts = np.diff(np.asarray(times, np.float64)) >= window
    groups: Indices = np.concatenate([[0], np.cumsum(starts)]).astype(np.int64)[: len(times)]
    return groups


def associations(
    spots: Float64s, x: float, y: float, phase: float, sigma: float, floor: float, most: int
) -> tuple[Indices, Float64s]:
    """Strength exp(-d^2 / 4 sigma^2) cos(phase difference); at least floor, strongest first
    (a stable sort: equal strengths in row order), the first `most`."""
    spots = np.asarray(spots, np.float64).reshape(-1, 3)
    distance2 = (spots[:, 0] - x) ** 2 + (spots[:, 1] - y) ** 2
    strength = np.exp(-distance2 / (4 * sigma * sigma)) * np.cos(phase - spots[:, 2])
    strong = np.flatnonzero(strength >= floor)
    order: Indices = strong[np.argsort(-strength[strong], kind="stable")][:most].astype(np.int64)
    return order, strength[order]


def energy(u: Field, u_prev: Field, c2dt2: float) -> float:
    """sum |u - u_prev|^2 + c2dt2 sum over edges (boundary ones too) of Re(grad u grad u_prev*)."""
    now, before = np.pad(u.astype(np.complex128), 1), np.pad(u_prev.astype(np.complex128), 1)
    kinetic = np.sum(np.abs(now - before) ** 2)
    potential = 0.0
    for axis in (0, 1):
        # differences across every edge touching the field, ghost cells included
        grad_now = np.diff(now, axis=axis)
        grad_before = np.diff(before, axis=axis)
        trim = (slice(None), slice(1, -1)) if axis == 0 else (slice(1, -1), slice(None))
        potential += np.sum((grad_now[trim] * np.conj(grad_before[trim])).real)
    return float(kinetic + float(np.float32(c2dt2)) * potential)


def fading(now: float, created: Float64s, tau: Float64s) -> Float64s:
    """exp(-age / tau), age never negative; 1 where tau is infinite."""
    age = np.maximum(now - created, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        left: Float64s = np.where(np.isinf(tau), 1.0, np.exp(-age / tau))
    return left


def recall_weights(
    now: float,
    created: Float64s,
    tau: Float64s,
    amplitude: Floats,
    recalls: npt.NDArray[np.int32],
    standing: Floats,
    exponent: float = 1.0,
) -> Floats:
    """((floor + (1 - floor) fading) sqrt(amplitude) (1 + 0.1 ln(1 + recalls))) ** exponent
    x standing, in float64, rounded to float32."""
    retention = RETENTION_FLOOR + (1.0 - RETENTION_FLOOR) * fading(now, created, tau)
    use = 1.0 + 0.1 * np.log1p(recalls)
    weights = (retention * np.sqrt(amplitude.astype(np.float64)) * use) ** exponent * standing
    return weights.astype(np.float32)
