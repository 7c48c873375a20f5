"""Brute-force recall kernels, kept for `bench grid` (recall itself shortlists by binary sketch
and rescores a few exactly, mem8.grid.shortlist and mem8.grid.rescore): resonance scores every
vector, top_k keeps the best; each with its plain numpy reference for the tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from mem8.grid.kernels import Floats, Indices, kernel, parallel_kernel

_RESONANCE_CHUNK = 2048  # rows of vectors per parallel task
_LANES = 16  # resonance halves its products down to at most this many partial sums


def resonance(
    query: Floats, vectors: Floats, weights: Floats, out: Floats, *, parallel: bool = False
) -> None:
    """out[m] = dot(query, vectors[m]) * weights[m], in float32, in place.

    Each dot product sums its products in one fixed pairwise order (halving while the count is
    even and above 16, then a fixed tree): scores depend on no CPU, SIMD width or thread count.
    `parallel` splits the vectors among numba's threads, as for propagate."""
    _require_floats("query", query, 1)
    _require_floats("vectors", vectors, 2)
    _require_floats("weights", weights, 1)
    _require_floats("out", out, 1)
    rows, dimensions = vectors.shape
    if query.shape != (dimensions,):
        raise ValueError(f"query has {query.shape[0]} dimensions, vectors {dimensions}")
    if weights.shape != (rows,) or out.shape != (rows,):
        raise ValueError(f"weights and out need {rows} entries, one per vector")
    if parallel:
        _resonance_parallel(query, vectors, weights, out)
    else:
        _resonance_serial(query, vectors, weights, out)


@kernel
def _resonance_rows(
    query: Floats, vectors: Floats, weights: Floats, out: Floats, first: int, stop: int
) -> None:
    dimensions = vectors.shape[1]
    products = np.zeros(max(dimensions, _LANES), np.float32)
    for m in range(first, stop):
        row = vectors[m]
        for j in range(dimensions):
            products[j] = query[j] * row[j]
        out[m] = _fold_sum(products, dimensions) * weights[m]


@kernel
def _fold_sum(values: Floats, n: int) -> Any:
    """The sum of values[:n], destroying `values` (at least _LANES long): halves the count while
    even and above _LANES, each half a vectorisable loop, then adds the rest as a fixed tree."""
    while n > _LANES and n % 2 == 0:
        half = n // 2
        low, high = values[:half], values[half:n]
        for j in range(half):
            low[j] += high[j]
        n = half
    if n > _LANES:  # an odd count above _LANES, from an unusual dimension: left to right
        total = np.float32(0.0)
        for j in range(n):
            total += values[j]
        return total
    values[n:_LANES] = 0.0  # adding zeros is exact
    return _tree16(values)


@kernel
def _tree16(v: Floats) -> Any:
    """v[0] + ... + v[15] as a balanced tree: four dependent adds instead of fifteen."""
    quarter = ((v[0] + v[8]) + (v[4] + v[12])) + ((v[2] + v[10]) + (v[6] + v[14]))
    return quarter + (((v[1] + v[9]) + (v[5] + v[13])) + ((v[3] + v[11]) + (v[7] + v[15])))


@kernel
def _resonance_serial(query: Floats, vectors: Floats, weights: Floats, out: Floats) -> None:
    _resonance_rows(query, vectors, weights, out, 0, vectors.shape[0])


@parallel_kernel
def _resonance_parallel(query: Floats, vectors: Floats, weights: Floats, out: Floats) -> None:
    rows = vectors.shape[0]
    for chunk in prange((rows + _RESONANCE_CHUNK - 1) // _RESONANCE_CHUNK):
        first = chunk * _RESONANCE_CHUNK
        _resonance_rows(query, vectors, weights, out, first, min(rows, first + _RESONANCE_CHUNK))


def top_k(scores: Floats, k: int) -> Indices:
    """The indices of the k largest scores (all of them if fewer), best first.

    Equal scores rank by lower index; NaN ranks below every number."""
    _require_floats("scores", scores, 1)
    if k < 0:
        raise ValueError(f"k must not be negative, not {k}")
    chosen: Indices = _top_k(scores, min(int(k), scores.shape[0]))
    return chosen


@kernel
def _top_k(scores: Floats, k: int) -> Indices:
    """One pass keeping the best k so far sorted; a later index never displaces an equal score."""
    best = np.empty(k, np.int64)
    held = np.empty(k, np.float32)
    count = 0
    for i in range(scores.shape[0] if k > 0 else 0):
        score = scores[i]
        if count == k and not _beats(score, held[k - 1]):
            continue
        slot = count if count < k else k - 1
        count = min(count + 1, k)
        while slot > 0 and _beats(score, held[slot - 1]):
            held[slot], best[slot] = held[slot - 1], best[slot - 1]
            slot -= 1
        held[slot], best[slot] = score, i
    return best


@kernel
def _beats(score: Any, other: Any) -> bool:
    return bool(score > other or (other != other and score == score))  # x != x: x is NaN


def resonance_reference(
    query: Floats, vectors: Floats, weights: Floats, out: Floats, *, parallel: bool = False
) -> None:
    """Exact dot products (in float64), times the weights, rounded to float32."""
    exact = vectors.astype(np.float64) @ query.astype(np.float64)
    out[...] = exact * weights.astype(np.float64)


def top_k_reference(scores: Floats, k: int) -> Indices:
    """A stable sort puts equal scores in index order and NaN last."""
    order: Indices = np.argsort(-scores, kind="stable")[:k].astype(np.int64)
    return order


def _require_floats(name: str, values: Floats, ndim: int) -> None:
    if not isinstance(values, np.ndarray) or values.dtype != np.float32 or values.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D float32 array")
    if not values.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
