"""What the `mem8` command shows about a storage file: status, listings, search, export, timings.

Plain functions over a `MemoryStore`, read-only; safe beside a running server, whose WAL-mode
file lets readers in while it writes. `forget` changes memory, so it asks the memory actor of a
system run headless (no personas, no journal, no HTTP) to do it, as the server's would.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from mem8.config import Settings
from mem8.encoders.base import Encoder
from mem8.errors import NotFound
from mem8.grid import tiling
from mem8.grid.dynamics import DAY, fading, recall_weights, standing
from mem8.grid.index import WEIGHT_EXPONENT
from mem8.grid.kernels import CUTOFF_SIGMAS
from mem8.grid.placement import Placer
from mem8.memory import Memory, memory_to_wire
from mem8.scope import Audience
from mem8.storage.sqlite import GRID_STATE, MemoryStore, StorageError, StoreStats

Magnitude = npt.NDArray[np.float32]

ACTIVE_FADING = 0.5  # a memory is an active pattern until its decay has taken half its wave
OCCUPIED_SHARE = 0.01  # a cell is in use when its |field| exceeds this share of the peak
SYNTHETIC_MEMORIES = 10_000  # recall is timed over this many random vectors when a scope is small
RECALL_K = 10


# --- opening and selecting ----------------------------------------------------------------------


def open_existing(path: Path) -> MemoryStore:
    """Opens a storage file that must already exist: inspecting never creates an empty one."""
    if not path.is_file():
        raise StorageError(
            f"No storage file at {path}: name it with --storage or MEM8_STORAGE "
            "(the server creates it on first start)"
        )
    return MemoryStore.open(path)


@dataclass(frozen=True, slots=True)
class MemoryFilter:
    """Which memories a command looks at: the server's rule (a persona also sees what is shared
    with every persona), and a modality; None admits any."""

    tenant: str | None = None
    persona: str | None = None
    user: str | None = None
    modality: str | None = None

    def admits(self, memory: Memory) -> bool:
        audience = Audience(self.tenant, self.user, self.persona)
        return audience.admits(memory.scope) and self.modality in (None, memory.modality)


def matching(store: MemoryStore, where: MemoryFilter) -> Iterator[Memory]:
    return (memory for memory in store.iter_all() if where.admits(memory))


def newest(store: MemoryStore, where: MemoryFilter, limit: int) -> list[Memory]:
    """The `limit` newest matching memories, newest last (by created time, then id)."""
    chosen = heapq.nlargest(limit, matching(store, where), key=_age_order)
    return chosen[::-1]


def _age_order(memory: Memory) -> tuple[float, str]:
    return memory.created, memory.id


async def forget(settings: Settings, memory_id: str, tenant: str | None = None) -> str:
    """Deletes one memory through the memory actor (out of the store and the grid, what it
    superseded reinstated), finding its tenant when not given; returns the tenant."""
    with open_existing(Path(settings.storage)) as store:
        owner = tenant if tenant is not None else tenant_of(store, memory_id)
    if owner is None or not await _forgotten(settings, memory_id, owner):
        where = f" in tenant '{tenant}'" if tenant is not None else ""
        raise NotFound(f"No memory '{memory_id}'{where}", param="memory_id")
    return owner


async def _forgotten(settings: Settings, memory_id: str, tenant: str) -> bool:
    """The saved field and state are left as they were: a server may be running beside."""
    from mem8.actors.messages import Ack, MemoryForget  # pulls in the actors: only here
    from mem8.actors.runtime import new_request_id
    from mem8.system import open_system

    headless = dataclasses.replace(settings, personas={})
    async with open_system(headless, backends={}, journal=False, persist=False) as system:
        forget = MemoryForget(new_request_id(), tenant, memory_id, time.time())
        try:
            await system.memory.ask(forget, Ack)
        except NotFound:
            return False
    return True


def tenant_of(store: MemoryStore, memory_id: str) -> str | None:
    return next((m.scope.tenant for m in store.iter_all() if m.id == memory_id), None)


# --- status -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedField:
    """The grid's field as the server saved it at its last clean stop, regions reassembled."""

    grid_size: int
    tiles: int  # regions per side
    current: npt.NDArray[np.complex64]  # (grid_size, grid_size)

    def magnitude(self) -> Magnitude:
        return np.abs(self.current).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Status:
    path: Path
    stats: StoreStats
    active_patterns: int
    field: SavedField | None
    utilisation: float | None  # share of the saved field's cells in use

    def as_json(self) -> dict[str, Any]:
        stats = self.stats
        days = None if stats.average_tau is None else stats.average_tau / DAY
        grid = None
        if self.field is not None:
            grid = {
                "size": self.field.grid_size,
                "tiles": self.field.tiles,
                "utilisation": self.utilisation,
            }
        return {
            "storage": str(self.path),
            "size_bytes": stats.size_bytes,
            "memories": stats.memories,
            "by_modality": stats.by_modality,
            "by_persona": stats.by_persona,
            "active_patterns": self.active_patterns,
            "consolidated": stats.consolidated,
            "average_decay_days": days,
            "grid": grid,
        }


def status(store: MemoryStore, now: float) -> Status:
    field = saved_field(store)
    return Status(
        path=store.path,
        stats=store.stats(),
        active_patterns=active_patterns(store.iter_all(), now),
        field=field,
        utilisation=None if field is None else utilisation(field.magnitude()),
    )


def active_patterns(memories: Iterable[Memory], now: float) -> int:
    """Memories whose wave has not yet decayed to half (exp(-age / tau) > 0.5): recall keeps
    most of an older one's weight (RETENTION_FLOOR), but its pattern is no longer active."""
    memories = list(memories)
    created = np.array([m.created for m in memories], np.float64)
    tau = np.array([m.tau for m in memories], np.float64)
    return int(np.count_nonzero(fading(now, created, tau) > ACTIVE_FADING))


def utilisation(magnitude: Magnitude) -> float:
    """Share of cells whose |field| exceeds OCCUPIED_SHARE of the peak; 0 for a silent field."""
    peak = float(magnitude.max(initial=0.0))
    if peak <= 0.0:
        return 0.0
    return float(np.count_nonzero(magnitude > OCCUPIED_SHARE * peak)) / magnitude.size


def saved_field(store: MemoryStore) -> SavedField | None:
    saved = store.get_state(GRID_STATE)
    return None if saved is None else unpack_field(saved)


def unpack_field(saved: bytes) -> SavedField:
    """The saved state's per-region tiles (row-major) put back into one grid."""
    try:
        return _reassembled(msgpack.unpackb(saved, raw=False))
    except (KeyError, TypeError, ValueError) as error:  # msgpack's errors are ValueErrors
        raise StorageError(f"The saved grid field is damaged: {error!r}") from error


def _reassembled(state: dict[str, Any]) -> SavedField:
    size, per_side = int(state["grid_size"]), int(state["tiles"])
    regions = state["current"]
    if len(regions) != per_side * per_side:
        raise StorageError(
            f"The saved field has {len(regions)} regions, not the {per_side * per_side} "
            f"of a {per_side} x {per_side} tiling"
        )
    return SavedField(size, per_side, tiling.joined(regions, size, per_side))


def rebuilt_magnitude(memories: Iterable[Memory], grid_size: int) -> Magnitude:
    """|field| approximated as the sum of every memory's packet envelope, no waves or decay:
    what the grid looks like when no field was saved."""
    sigma = Placer(1, grid_size).packet_sigma()
    radius = CUTOFF_SIGMAS * sigma
    magnitude = np.zeros((grid_size, grid_size), np.float32)
    for memory in memories:
        rows = _window(memory.y, radius, grid_size)
        cols = _window(memory.x, radius, grid_size)
        r2 = (rows[:, None] - memory.y) ** 2 + (cols[None, :] - memory.x) ** 2
        packet = memory.amplitude * np.exp(-r2 / (2.0 * sigma * sigma))
        magnitude[np.ix_(rows, cols)] += np.where(r2 <= radius * radius, packet, 0.0)
    return magnitude


def _window(centre: float, radius: float, size: int) -> npt.NDArray[np.intp]:
    first = max(0, math.floor(centre - radius))
    stop = min(size, math.ceil(centre + radius) + 1)
    return np.arange(first, stop)


# --- search and export --------------------------------------------------------------------------


def search(
    store: MemoryStore,
    encoder: Encoder,
    query: str,
    where: MemoryFilter,
    limit: int,
    now: float,
) -> list[tuple[Memory, float]]:
    """The best matches, best first: cosine similarity x recall weight, as the server's recall
    scores them before the field's activation. Memories of another dimension are skipped."""
    wanted = encoder.embed(query)
    candidates = [m for m in matching(store, where) if m.vector.shape == wanted.shape]
    if not candidates:
        return []
    vectors = np.stack([m.vector for m in candidates])
    cosine = vectors @ wanted / _norms(vectors, wanted)
    scores = cosine * _weights(candidates, now)
    ranked = sorted(zip(candidates, scores.tolist(), strict=True), key=lambda h: (-h[1], h[0].id))
    return ranked[:limit]


def _norms(
    vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
    # a text with no features matches nothing: 0, not NaN
    safe: npt.NDArray[np.float32] = np.where(norms > 0, norms, 1.0).astype(np.float32)
    return safe


def _weights(memories: list[Memory], now: float) -> npt.NDArray[np.float32]:
    return recall_weights(
        now,
        np.array([m.created for m in memories], np.float64),
        np.array([m.tau for m in memories], np.float64),
        np.array([m.amplitude for m in memories], np.float32),
        np.array([m.recalls for m in memories], np.int32),
        standing([m.superseded_by for m in memories]),
        WEIGHT_EXPONENT,  # as the grid weighs them
    )


def shown(memory: Memory, score: float | None = None) -> dict[str, Any]:
    """The API's JSON shape of a memory (GET /v1/memories/{id}), plus its tenant."""
    from mem8.http.memories import memory_object  # the HTTP layer loads quart: only here

    wire = memory_to_wire(memory)
    if score is not None:
        wire["score"] = score
    return {**memory_object(wire), "tenant": memory.scope.tenant}


def export_lines(memories: Iterable[Memory]) -> Iterator[str]:
    """JSONL: each memory as the API shows it, with its tenant and vector, so it can be
    imported again."""
    for memory in memories:
        record = {**shown(memory), "vector": memory.vector.astype(np.float64).tolist()}
        yield json.dumps(record, ensure_ascii=False)


# --- performance --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """Recall latency over some vectors, in seconds."""

    p50: float
    p99: float
    memories: int
    source: str  # which memories were searched


@dataclass(frozen=True, slots=True)
class GridTiming:
    step: float | None  # seconds per propagate step of the whole grid; None when unavailable
    first_call: float | None  # seconds of the first step (numba compiling or loading its cache)
    grid_size: int
    tiles: int
    unavailable: str | None = None  # why there is no timing


@dataclass(frozen=True, slots=True)
class Performance:
    encoder: str
    dimensions: int
    texts_per_second: float
    recall: Timing
    grid: GridTiming

    def as_json(self) -> dict[str, Any]:
        grid = self.grid
        return {
            "encoder": {
                "name": self.encoder,
                "dimensions": self.dimensions,
                "texts_per_second": self.texts_per_second,
            },
            "recall": {
                "p50_ms": self.recall.p50 * 1e3,
                "p99_ms": self.recall.p99 * 1e3,
                "memories": self.recall.memories,
                "source": self.recall.source,
            },
            "grid": {
                "size": grid.grid_size,
                "tiles": grid.tiles,
                "step_ms": None if grid.step is None else grid.step * 1e3,
                "first_call_s": grid.first_call,
                "unavailable": grid.unavailable,
            },
        }


_SAMPLE_TEXTS = (
    "The quarterly report shows revenue grew faster than expected in the northern region.",
    "def propagate(u, u_prev): return 2 * u - u_prev + c2dt2 * laplacian(u)",
    "I remember the smell of rain on the harbour the evening we first met.",
    "Consciousness and the persistence of identity remain open questions in philosophy.",
)


def performance(
    store: MemoryStore, encoder: Encoder, grid_size: int, tiles: int, budget: float = 1.0
) -> Performance:
    """Quick measurements on this machine; each part runs for about `budget` seconds."""
    memories = list(store.iter_all())
    texts = [m.text for m in memories[-200:]] or list(_SAMPLE_TEXTS)
    return Performance(
        encoder=encoder.name,
        dimensions=encoder.dimensions,
        texts_per_second=encoder_speed(encoder, texts, budget / 2),
        recall=recall_latency(memories, encoder, texts, budget),
        grid=grid_step_time(grid_size, tiles, budget),
    )


def encoder_speed(encoder: Encoder, texts: list[str], budget: float) -> float:
    encoded, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < budget:
        encoder.embed_batch(texts)
        encoded += len(texts)
    return encoded / elapsed


def recall_latency(
    memories: list[Memory], encoder: Encoder, texts: list[str], budget: float
) -> Timing:
    """Brute-force scoring and top-k over the largest scope, or synthetic vectors if it is small."""
    scope, largest = _largest_scope(memories, encoder.dimensions)
    if len(largest) >= SYNTHETIC_MEMORIES // 10:
        vectors = np.stack([m.vector for m in largest])
        source = f"the stored memories of the largest scope ({scope})"
    else:
        vectors = _synthetic_vectors(SYNTHETIC_MEMORIES, encoder.dimensions)
        source = f"synthetic vectors (the largest stored scope holds {len(largest)})"
    queries = encoder.embed_batch(texts)
    seconds = _time_recalls(vectors, queries, budget)
    p50, p99 = np.percentile(seconds, [50, 99]).tolist()
    return Timing(p50, p99, len(vectors), source)


def _largest_scope(memories: list[Memory], dimensions: int) -> tuple[str, list[Memory]]:
    same = [m for m in memories if m.vector.shape == (dimensions,)]
    sizes = Counter(m.scope for m in same)
    if not sizes:
        return "none", []
    scope = sizes.most_common(1)[0][0]
    name = f"tenant {scope.tenant}, user {scope.user}, persona {scope.persona}"
    return name, [m for m in same if m.scope == scope]


def _synthetic_vectors(count: int, dimensions: int) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(0).standard_normal((count, dimensions)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def _time_recalls(
    vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], budget: float
) -> list[float]:
    n = len(vectors)
    created = np.full(n, time.time() - DAY, np.float64)
    tau = np.full(n, 7 * DAY, np.float64)
    amplitude = np.ones(n, np.float32)
    recalls = np.zeros(n, np.int32)
    current = np.ones(n, np.float32)
    seconds: list[float] = []
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline or len(seconds) < 20:
        query = queries[len(seconds) % len(queries)]
        started = time.perf_counter()
        weights = recall_weights(time.time(), created, tau, amplitude, recalls, current)
        scores = vectors @ query * weights
        np.argpartition(-scores, min(RECALL_K, n) - 1)[:RECALL_K]
        seconds.append(time.perf_counter() - started)
    return seconds


def grid_step_time(grid_size: int, tiles: int, budget: float) -> GridTiming:
    """One propagate step of every region, as the grid actor runs them (one after another)."""
    try:
        from mem8.grid.dynamics import C2DT2, GAMMA_DT
        from mem8.grid.kernels import propagate
    except (ImportError, SyntaxError) as error:  # another engineer's kernels may be mid-edit
        reason = f"grid kernels unavailable ({type(error).__name__}: {error})"
        return GridTiming(None, None, grid_size, tiles, reason)
    edge = grid_size // tiles
    rng = np.random.default_rng(0)
    padded = (rng.standard_normal((edge + 2, edge + 2)) * 0.01).astype(np.complex64)
    previous = padded[1:-1, 1:-1].copy()

    def step() -> None:
        for _ in range(tiles * tiles):
            propagate(padded, previous, C2DT2, GAMMA_DT)

    first_call = _seconds(step)
    runs: list[float] = []
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline or len(runs) < 3:
        runs.append(_seconds(step))
    return GridTiming(float(np.median(runs)), first_call, grid_size, tiles)


def _seconds(work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


# --- the grid as a picture ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldView:
    """|field| over the whole grid and every memory's centre (x = column, y = row)."""

    magnitude: Magnitude
    centres: list[tuple[float, float]]
    origin: str  # where the field came from, told to the reader


def field_view(store: MemoryStore, grid_size: int) -> FieldView:
    """The saved field when it fits the configured grid; otherwise one rebuilt from the
    memories' packets."""
    memories = list(store.iter_all())
    centres = [(m.x, m.y) for m in memories]
    field = saved_field(store)
    if field is not None and field.grid_size == grid_size:
        return FieldView(field.magnitude(), centres, "as saved at the last clean stop")
    why = (
        "no field saved"
        if field is None
        else f"the saved field is {field.grid_size} cells wide, not {grid_size}"
    )
    rebuilt = rebuilt_magnitude(memories, grid_size)
    return FieldView(rebuilt, centres, f"rebuilt from the memories' packets ({why})")
