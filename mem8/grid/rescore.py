"""Exact rescoring of a shortlist: resonance (the cosine mixed with the word score) x recall
weight x the field's activation at each memory's cell, in one numba pass over scattered rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from mem8.grid.dynamics import recall_weight
from mem8.grid.sketch import Floats

LANES = 8  # partial sums of an exact dot product
_LINE = 16  # float32 per cache line
_AHEAD = 4  # rows of the shortlist fetched ahead of the one being scored


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
        weight = recall_weight(
            now, created[i], tau[i], amplitude[i], recalls[i], standing[i], weight_exponent
        )
        excited = _gain(cells, field, row0, col0, gain, i)
        weight = weight * excited
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
    pass (the weight as mem8.grid.dynamics.recall_weight defines it, the gain as Activation
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
        cells,
        activation.field,
        int(activation.origin[0]),
        int(activation.origin[1]),
        np.float32(activation.gain),
        out,
    )
    return out
