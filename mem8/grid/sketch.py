"""Binary sketches for fast recall: the sign bits of a fixed random rotation of each vector.

Two sketches differing in h of B bits estimate the cosine as cos(pi h / B) (SimHash). Scoring
100k memories reads 32 bytes of sketch each instead of 1 KB of floats, so recall can shortlist
candidates by the estimate times the memory's weight, then rescore only those exactly."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from mem8.grid.dynamics import RETENTION_FLOOR

BITS = 256
WORDS = BITS // 64
SEED = 0x5E7C4
LANES = 8  # partial sums of an exact dot product
_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F
_H01 = 0x0101010101010101

Sketches = npt.NDArray[np.uint64]
Floats = npt.NDArray[np.float32]


def projection(dimensions: int) -> Floats:
    """The fixed rotation: BITS seeded Gaussian directions in the encoder's space."""
    axes = np.random.default_rng(SEED).standard_normal((BITS, dimensions))
    return axes.astype(np.float32)


def sketch(vectors: Floats, axes: Floats) -> Sketches:
    """One row of WORDS uint64 per vector: bit b is set where axis b has a positive projection."""
    bits = (np.atleast_2d(vectors) @ axes.T) > 0
    packed = np.packbits(bits, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view(np.uint64).reshape(-1, WORDS)


@njit(cache=True, inline="always")
def _popcount(word: Any) -> Any:
    word = word - ((word >> np.uint64(1)) & np.uint64(_M1))
    word = (word & np.uint64(_M2)) + ((word >> np.uint64(2)) & np.uint64(_M2))
    word = (word + (word >> np.uint64(4))) & np.uint64(_M4)
    return (word * np.uint64(_H01)) >> np.uint64(56)


@njit(cache=True, inline="always")
def _estimate_one(query: Any, sketches: Any, weights: Any, cosines: Any, out: Any, i: int) -> None:
    differing = 0
    for w in range(query.shape[0]):
        differing += _popcount(query[w] ^ sketches[i, w])
    out[i] = cosines[differing] * weights[i]


@njit(cache=True)
def _estimate_serial(query: Any, sketches: Any, weights: Any, cosines: Any, out: Any) -> None:
    for i in range(sketches.shape[0]):
        _estimate_one(query, sketches, weights, cosines, out, i)


@njit(cache=True, parallel=True)
def _estimate_parallel(query: Any, sketches: Any, weights: Any, cosines: Any, out: Any) -> None:
    for i in prange(sketches.shape[0]):
        _estimate_one(query, sketches, weights, cosines, out, i)


PARALLEL_FROM = 32_768  # below this, waking the second thread costs more than it saves


COSINES = np.cos(np.pi * np.arange(BITS + 1) / BITS).astype(np.float32)


def estimate(query: Sketches, sketches: Sketches, weights: Floats) -> Floats:
    """Estimated resonance x weight of every memory, in one pass over the sketches."""
    out: Floats = np.empty(sketches.shape[0], np.float32)
    kernel = _estimate_parallel if sketches.shape[0] >= PARALLEL_FROM else _estimate_serial
    kernel(query.reshape(-1), sketches, weights, COSINES, out)
    return out


def estimate_reference(query: Sketches, sketches: Sketches, weights: Floats) -> Floats:
    """The same in plain numpy, for the tests."""
    differing = np.unpackbits((sketches ^ query.reshape(1, -1)).view(np.uint8), axis=1).sum(1)
    result: Floats = (COSINES[differing] * weights).astype(np.float32)
    return result


@njit(cache=True)
def _rescore(
    query: Any,
    vectors: Any,
    positions: Any,
    created: Any,
    tau: Any,
    amplitude: Any,
    recalls: Any,
    gains: Any,
    lexical: Any,
    dense_share: float,
    now: float,
    floor: float,
    out: Any,
) -> None:
    lanes = np.empty(LANES, np.float64)
    for j in range(positions.shape[0]):
        i = positions[j]
        fading = 1.0 if math.isinf(tau[i]) else math.exp(-max(now - created[i], 0.0) / tau[i])
        use = 1.0 + 0.1 * math.log1p(recalls[i])
        weight = (floor + (1.0 - floor) * fading) * math.sqrt(amplitude[i]) * use * gains[j]
        dot = _dot(query, vectors, i, lanes)
        out[j] = (dense_share * dot + (1.0 - dense_share) * lexical[j]) * weight


@njit(cache=True, inline="always")
def _dot(query: Any, vectors: Any, i: int, lanes: Any) -> float:
    """query . vectors[i] summed in one fixed order (the same score in any tiling), in LANES
    independent sums that the compiler can vectorise."""
    n = query.shape[0]
    whole = n - n % LANES
    lanes[:] = 0.0
    for d in range(0, whole, LANES):
        for lane in range(LANES):
            lanes[lane] += query[d + lane] * vectors[i, d + lane]
    dot = 0.0
    for lane in range(LANES):
        dot += lanes[lane]
    for d in range(whole, n):
        dot += query[d] * vectors[i, d]
    return dot


def rescore(
    query: Floats,
    vectors: Floats,
    positions: npt.NDArray[np.intp],
    created: npt.NDArray[np.float64],
    tau: npt.NDArray[np.float64],
    amplitude: Floats,
    recalls: npt.NDArray[np.int32],
    gains: Floats,
    lexical: Floats,
    dense_share: float,
    now: float,
) -> Floats:
    """Exact resonance (a `dense_share` of cosine, the rest the memories' `lexical` scores) x
    recall weight x activation gain of the shortlisted memories, in one pass (the weight as
    mem8.grid.dynamics.recall_weights defines it)."""
    out: Floats = np.empty(positions.shape[0], np.float32)
    _rescore(
        query,
        vectors,
        positions,
        created,
        tau,
        amplitude,
        recalls,
        gains,
        lexical.astype(np.float32),
        float(dense_share),
        float(now),
        RETENTION_FLOOR,
        out,
    )
    return out
