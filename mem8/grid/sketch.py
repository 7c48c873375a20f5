"""Binary sketches for fast recall: the sign bits of a fixed random rotation of each vector.

Two sketches differing in h of B bits estimate the cosine as cos(pi h / B) (SimHash). Scoring
100k memories reads 32 bytes of sketch each instead of 1 KB of floats, so recall can shortlist
candidates by the estimate times the memory's weight (shortlist.py), then rescore only those
exactly (rescore.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

BITS = 256
WORDS = BITS // 64
SEED = 0x5E7C4
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
def popcount(word: Any) -> Any:
    word = word - ((word >> np.uint64(1)) & np.uint64(_M1))
    word = (word & np.uint64(_M2)) + ((word >> np.uint64(2)) & np.uint64(_M2))
    word = (word + (word >> np.uint64(4))) & np.uint64(_M4)
    return (word * np.uint64(_H01)) >> np.uint64(56)


# The estimated cosine of two sketches differing in h bits, by h.
COSINES = np.cos(np.pi * np.arange(BITS + 1) / BITS).astype(np.float32)


def estimate_reference(query: Sketches, sketches: Sketches, weights: Floats) -> Floats:
    """The sketch's estimated cosine x weight of every memory, in plain numpy, for the tests."""
    differing = np.unpackbits((sketches ^ query.reshape(1, -1)).view(np.uint8), axis=1).sum(1)
    result: Floats = (COSINES[differing] * weights).astype(np.float32)
    return result
