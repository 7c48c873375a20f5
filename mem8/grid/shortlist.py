"""The shortlist: every memory's estimate (its sketch's cosine mixed with its word score,
times its weight) and the positions of the best few, in one numba pass.

A min-heap of the best so far finds the count-th best estimate; in a long bucket a floor
guessed from a fixed sample lets most estimates skip the heap (exact whenever enough, and not
too many, reach it; otherwise the whole pass)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from mem8.grid.sketch import COSINES, Floats, Sketches, estimate_reference, popcount

# A shortlist of count from at least _SAMPLED_FROM x count estimates first guesses a floor
# from _SAMPLE of them; only the (at most _KEPT x count) reaching it go through the heap.
_SAMPLED_FROM = 128
_SAMPLE = 1024
_KEPT = 8
PARALLEL_FROM = 32_768  # below this, waking the second thread costs more than it saves

Positions = npt.NDArray[np.intp]


@njit(cache=True, inline="always")
def _mixed(
    query: Any,
    sketches: Any,
    weights: Any,
    lexical: Any,
    cosines: Any,
    dense: Any,
    rest: Any,
    i: int,
) -> Any:
    """Memory i's estimate: its sketch's cosine and its word score, mixed, times its weight
    (float32 throughout, in the order numpy computes shortlist_reference)."""
    differing = (
        popcount(query[0] ^ sketches[i, 0])
        + popcount(query[1] ^ sketches[i, 1])
        + popcount(query[2] ^ sketches[i, 2])
        + popcount(query[3] ^ sketches[i, 3])
    )  # WORDS = 4, unrolled: the compiler then vectorises across memories
    return dense * (cosines[differing] * weights[i]) + (rest * lexical[i]) * weights[i]


@njit(cache=True, inline="always")
def _sift_down(heap: Any, score: Any) -> None:
    """Replaces the least of the heap's scores (its root) by a greater `score`."""
    count, slot = heap.shape[0], 0
    while True:
        child = 2 * slot + 1
        if child >= count:
            break
        if child + 1 < count and heap[child + 1] < heap[child]:
            child += 1
        if score <= heap[child]:
            break
        heap[slot] = heap[child]
        slot = child
    heap[slot] = score


@njit(cache=True, inline="always")
def _sift_up(heap: Any, slot: int, score: Any) -> None:
    """Adds `score` at `slot`, the heap's first free place."""
    while slot > 0 and heap[(slot - 1) // 2] > score:
        heap[slot] = heap[(slot - 1) // 2]
        slot = (slot - 1) // 2
    heap[slot] = score


@njit(cache=True)
def _count_th_best(estimates: Any, count: int) -> Any:
    """The count-th best estimate, NaN ranking below every number (so NaN itself when fewer
    than count are numbers): a min-heap of the best so far, whose root only rises, so most
    estimates cost one comparison. NaNs enter it only as -inf, among the first count."""
    numbers = 0
    for i in range(estimates.shape[0]):
        numbers += estimates[i] == estimates[i]
    if numbers < count:
        return np.float32(np.nan)
    heap = np.empty(count, np.float32)
    for i in range(count):
        score = estimates[i]
        _sift_up(heap, i, score if score == score else np.float32(-np.inf))
    root = heap[0]
    for i in range(count, estimates.shape[0]):
        score = estimates[i]
        if score > root:  # never a NaN
            _sift_down(heap, score)
            root = heap[0]
    return root


@njit(cache=True)
def _at_or_above(estimates: Any, cut: Any) -> Any:
    """Positions, ascending, of the estimates at or above `cut` (NaN never is)."""
    chosen = 0
    for i in range(estimates.shape[0]):
        chosen += estimates[i] >= cut
    positions = np.empty(chosen, np.intp)
    chosen = 0
    for i in range(estimates.shape[0]):
        if estimates[i] >= cut:
            positions[chosen] = i
            chosen += 1
    return positions


@njit(cache=True)
def _through_a_floor(estimates: Any, count: int) -> Any:
    """What _at_or_above_cut finds, with the heap run over a few: those reaching a floor that
    a fixed sample of about _SAMPLE estimates says some 3 x count reach. If count to _KEPT x
    count reach it, they include every estimate at or above the count-th best, so the answer
    is exact; otherwise (the floor was a bad guess) the result is empty."""
    n = estimates.shape[0]
    sample = estimates[:: max(1, n // _SAMPLE)]
    floor = _count_th_best(sample, min(sample.shape[0], 3 * count * sample.shape[0] // n + 1))
    kept, held = np.empty(_KEPT * count, np.intp), 0
    for i in range(n):
        if estimates[i] >= floor:  # never for a NaN floor (a sample of too few numbers)
            if held < kept.shape[0]:
                kept[held] = i
            held += 1
    if held < count or held > kept.shape[0]:
        return kept[:0]
    kept = kept[:held]
    return kept[_at_or_above(estimates[kept], _count_th_best(estimates[kept], count))]


@njit(cache=True)
def _at_or_above_cut(estimates: Any, count: int) -> Any:
    """Positions, ascending, of the estimates at or above the count-th best (NaN is never at
    or above anything); all of them if there are no more than count."""
    n = estimates.shape[0]
    if n <= count:
        return np.arange(n)
    if n >= _SAMPLED_FROM * count:  # the heap costs ~50 ns a step: most estimates skip it
        found = _through_a_floor(estimates, count)
        if found.shape[0]:
            return found
    return _at_or_above(estimates, _count_th_best(estimates, count))


@njit(cache=True)
def _shortlist_serial(
    query: Any,
    sketches: Any,
    weights: Any,
    lexical: Any,
    cosines: Any,
    dense: Any,
    rest: Any,
    count: int,
    out: Any,
) -> Any:
    for i in range(sketches.shape[0]):
        out[i] = _mixed(query, sketches, weights, lexical, cosines, dense, rest, i)
    return _at_or_above_cut(out, count)


@njit(cache=True, parallel=True)
def _shortlist_parallel(
    query: Any,
    sketches: Any,
    weights: Any,
    lexical: Any,
    cosines: Any,
    dense: Any,
    rest: Any,
    count: int,
    out: Any,
) -> Any:
    for i in prange(sketches.shape[0]):
        out[i] = _mixed(query, sketches, weights, lexical, cosines, dense, rest, i)
    return _at_or_above_cut(out, count)


def shortlist(
    query: Sketches,
    sketches: Sketches,
    weights: Floats,
    lexical: Floats,
    dense_share: float,
    count: int,
) -> tuple[Floats, Positions]:
    """Every memory's estimate (a `dense_share` of its sketch's cosine estimate, the rest its
    `lexical` word score, times its weight) and the positions, ascending, of the best `count`
    by it and of every memory tied with the count-th best, in one call."""
    if count < 1:
        raise ValueError(f"a shortlist keeps at least one memory, not {count}")
    estimates: Floats = np.empty(sketches.shape[0], np.float32)
    kernel = _shortlist_parallel if sketches.shape[0] >= PARALLEL_FROM else _shortlist_serial
    dense, rest = np.float32(dense_share), np.float32(1.0 - dense_share)  # as numpy casts them
    positions: Positions = kernel(
        query.reshape(-1), sketches, weights, lexical, COSINES, dense, rest, int(count), estimates
    )
    return estimates, positions


def shortlist_reference(
    query: Sketches,
    sketches: Sketches,
    weights: Floats,
    lexical: Floats,
    dense_share: float,
    count: int,
) -> tuple[Floats, Positions]:
    """The same in plain numpy, for the tests."""
    cosine = estimate_reference(query, sketches, weights)
    estimates = dense_share * cosine + (1.0 - dense_share) * lexical * weights
    if len(estimates) <= count:
        return estimates, np.arange(len(estimates))
    ranked = np.argsort(-estimates, kind="stable")  # NaN last
    return estimates, np.flatnonzero(estimates >= estimates[ranked[count - 1]])
