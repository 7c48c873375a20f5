"""Binary sketches for fast recall: the sign bits of a fixed random rotation of each vector.

Two sketches differing in h of B bits estimate the cosine as cos(pi h / B) (SimHash). Scoring
100k memories reads 32 bytes of sketch each instead of 1 KB of floats, so recall can shortlist
candidates by the estimate times the memory's weight, then rescore only those exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from mem8.grid.dynamics import RETENTION_FLOOR

BITS = 256
WORDS = BITS // 64
SEED = 0x5E7C4
LANES = 8  # partial sums of an exact dot product
_LINE = 16  # float32 per cache line
_AHEAD = 4  # rows of the shortlist fetched ahead of the one being scored
# A shortlist of count from at least _SAMPLED_FROM x count estimates first guesses a floor
# from _SAMPLE of them; only the (at most _KEPT x count) reaching it go through the heap.
_SAMPLED_FROM = 128
_SAMPLE = 1024
_KEPT = 8
_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F
_H01 = 0x0101010101010101

Sketches = npt.NDArray[np.uint64]
Floats = npt.NDArray[np.float32]
Positions = npt.NDArray[np.intp]


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


PARALLEL_FROM = 32_768  # below this, waking the second thread costs more than it saves


COSINES = np.cos(np.pi * np.arange(BITS + 1) / BITS).astype(np.float32)


def estimate_reference(query: Sketches, sketches: Sketches, weights: Floats) -> Floats:
    """The sketch's estimated cosine x weight of every memory, in plain numpy, for the tests."""
    differing = np.unpackbits((sketches ^ query.reshape(1, -1)).view(np.uint8), axis=1).sum(1)
    result: Floats = (COSINES[differing] * weights).astype(np.float32)
    return result


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
        _popcount(query[0] ^ sketches[i, 0])
        + _popcount(query[1] ^ sketches[i, 1])
        + _popcount(query[2] ^ sketches[i, 2])
        + _popcount(query[3] ^ sketches[i, 3])
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


def _prefetch_signature(typing_context: Any, array: Any, row: Any, column: Any) -> Any:
    """Asks the CPU to bring array[row, column]'s cache line in (llvm.prefetch, for reading):
    the shortlist's rows are scattered, so each would otherwise wait for memory in turn."""
    tools: Any = cgutils  # numba's code generation helpers are untyped

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array_type = signature.args[0]
        held = context.make_array(array_type)(context, builder, args[0])
        at = tools.get_item_pointer(context, builder, array_type, held, [args[1], args[2]])
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        kind = ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32])
        prefetch = tools.get_or_insert_function(builder.module, kind, "llvm.prefetch.p0i8")
        read, keep, data = ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)
        builder.call(prefetch, [builder.bitcast(at, byte_pointer), read, keep, data])
        return context.get_dummy_value()

    return types.void(array, row, column), codegen


_prefetch: Any = intrinsic(_prefetch_signature)


@njit(cache=True, inline="always")
def _fetch_row(vectors: Any, i: int) -> None:
    for d in range(0, vectors.shape[1], _LINE):
        _prefetch(vectors, i, d)


@njit(cache=True)
def _rescore(
    query: Any,
    vectors: Any,
    positions: Any,
    created: Any,
    tau: Any,
    amplitude: Any,
    recalls: Any,
    standing: Any,
    lexical: Any,
    dense_share: float,
    weight_exponent: float,
    now: float,
    floor: float,
    cells: Any,
    field: Any,
    row0: int,
    col0: int,
    gain: Any,
    out: Any,
) -> None:
    count = positions.shape[0]
    for j in range(min(count, _AHEAD)):
        _fetch_row(vectors, positions[j])
    for j in range(count):
        if j + _AHEAD < count:
            _fetch_row(vectors, positions[j + _AHEAD])
        i = positions[j]
        fading = 1.0 if math.isinf(tau[i]) else math.exp(-max(now - created[i], 0.0) / tau[i])
        use = 1.0 + 0.1 * math.log1p(recalls[i])
        excited = _gain(cells, field, row0, col0, gain, i)
        salience = (floor + (1.0 - floor) * fading) * math.sqrt(amplitude[i]) * use
        # A superseded memory ranks below its superseder whatever the weight exponent.
        weight = salience**weight_exponent * standing[i] * excited
        dot = _dot(query, vectors, i)
        out[j] = (dense_share * dot + (1.0 - dense_share) * lexical[j]) * weight


@njit(cache=True, inline="always")
def _gain(cells: Any, field: Any, row0: int, col0: int, gain: Any, i: int) -> Any:
    """1 + gain x level / (1 + level), level the field's magnitude at memory i's cell, in
    float32 (1 exactly for gain 0, without reading the field)."""
    one = np.float32(1.0)
    if gain == 0:
        return one
    at = field[int(cells[i, 0]) - row0, int(cells[i, 1]) - col0]
    level = np.float32(math.hypot(np.float64(at.real), np.float64(at.imag)))
    return one + gain * level / (one + level)


@njit(cache=True, inline="always")
def _dot(query: Any, vectors: Any, i: int) -> float:
    """query . vectors[i] summed in one fixed order (the same score in any tiling): LANES
    independent float64 sums of float32 products, held in registers so that the compiler can
    vectorise them, then added in lane order."""
    n = query.shape[0]
    whole = n - n % LANES
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for d in range(0, whole, LANES):
        s0 += query[d] * vectors[i, d]
        s1 += query[d + 1] * vectors[i, d + 1]
        s2 += query[d + 2] * vectors[i, d + 2]
        s3 += query[d + 3] * vectors[i, d + 3]
        s4 += query[d + 4] * vectors[i, d + 4]
        s5 += query[d + 5] * vectors[i, d + 5]
        s6 += query[d + 6] * vectors[i, d + 6]
        s7 += query[d + 7] * vectors[i, d + 7]
    dot = 0.0
    for lane in (s0, s1, s2, s3, s4, s5, s6, s7):
        dot += lane
    for d in range(whole, n):
        dot += query[d] * vectors[i, d]
    return dot


@dataclass(frozen=True)
class Activation:
    """A region's field, whose excitation at a memory's own cell multiplies its score by
    1 + gain x level / (1 + level): the cell, not an interpolation, which could reach into a
    neighbouring tile and make tiling matter. `origin` is the tile's top-left cell; gain 0
    reads no field."""

    field: npt.NDArray[np.complex64]
    origin: tuple[int, int]
    gain: float


QUIET = Activation(np.zeros((1, 1), np.complex64), (0, 0), 0.0)


def rescore(
    query: Floats,
    vectors: Floats,
    positions: npt.NDArray[np.intp],
    created: npt.NDArray[np.float64],
    tau: npt.NDArray[np.float64],
    amplitude: Floats,
    recalls: npt.NDArray[np.int32],
    standing: Floats,
    lexical: Floats,
    dense_share: float,
    weight_exponent: float,
    now: float,
    cells: npt.NDArray[np.float64],
    activation: Activation,
) -> Floats:
    """Exact resonance (a `dense_share` of cosine, the rest the memories' `lexical` scores) x
    recall weight ** `weight_exponent` x activation gain of the shortlisted memories, in one
    pass (the weight as mem8.grid.dynamics.recall_weights defines it, the gain as Activation
    says at `cells`, the row and column of every memory's centre)."""
    out: Floats = np.empty(positions.shape[0], np.float32)
    _rescore(
        query,
        vectors,
        positions,
        created,
        tau,
        amplitude,
        recalls,
        standing,
        lexical.astype(np.float32),
        float(dense_share),
        float(weight_exponent),
        float(now),
        RETENTION_FLOOR,
        cells,
        activation.field,
        int(activation.origin[0]),
        int(activation.origin[1]),
        np.float32(activation.gain),
        out,
    )
    return out
