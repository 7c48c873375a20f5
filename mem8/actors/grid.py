"""The grid as actors: GridRegion owns one tile of the field and the memories centred in it;
Grid routes imprints and recalls to the regions and runs the field's steps with halo exchange."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from mem8 import errors
from mem8.actors.messages import (
    Ack,
    Digest,
    Edges,
    GridCandidates,
    GridEdges,
    GridExport,
    GridField,
    GridForget,
    GridImprint,
    GridImprinted,
    GridRecall,
    GridRecalled,
    GridReinforce,
    GridScore,
    GridScored,
    GridStep,
    GridSupersede,
    Message,
    StateDigest,
)
from mem8.actors.runtime import Actor, ActorRef, Reply, ReplyStream
from mem8.grid import kernels, lexical, sketch
from mem8.grid.dynamics import SUPERSEDED_WEIGHT
from mem8.grid.index import Candidates, Handles, RegionIndex, candidates_for
from mem8.grid.lexical import Frequencies, LexicalQuery
from mem8.grid.placement import wavenumber
from mem8.grid.rescore import Activation
from mem8.scope import Audience, Scope

TICK = 60.0  # seconds of clock time per propagation step
MAX_STEPS = 4  # steps caught up at most per message: a long silence is not replayed in full
C2DT2 = 0.2  # wave speed^2 * dt^2 / dx^2 (stable below 0.5)
GAMMA_DT = 0.1  # damping per step
FIELD_DECAY = 0.98  # the field's own fading per step
ACTIVATION_GAIN = 0.2  # how much a memory's excited neighbourhood adds to its resonance
EXCITATION = 0.5  # amplitude of the packet a recall sends through a memory's neighbourhood
ASSOCIATION_FLOOR = 0.3  # interference below which two memories are not associated
MAX_ASSOCIATIONS = 8  # a new memory's strongest associations kept
CELL_SCAN = 64  # a saturated grid's cell: only its most recent memories are compared
# Recall spreads along the chain of turns: a memory rises these shares of the way to its best
# neighbour's score one and two turns away, where that is higher than its own (an answer is
# recalled with the question it answers; a memory in a stretch of near misses gains nothing).
SPREAD = (0.7, 0.2)
FIELD_DTYPE = np.complex64


@dataclass(frozen=True)
class Tile:
    row0: int
    col0: int
    height: int
    width: int

    def holds(self, x: float, y: float) -> bool:
        return self.row0 <= y < self.row0 + self.height and self.col0 <= x < self.col0 + self.width

    def touches(self, x: float, y: float, radius: float) -> bool:
        return (
            self.row0 - radius <= y < self.row0 + self.height + radius
            and self.col0 - radius <= x < self.col0 + self.width + radius
        )


def tiles(grid_size: int, per_side: int) -> list[Tile]:
    """per_side x per_side tiles, row-major."""
    edge = grid_size // per_side
    return [Tile(r * edge, c * edge, edge, edge) for r in range(per_side) for c in range(per_side)]


ScopeKey = tuple[str, str, str]


class _Cell:
    """The memories of one scope in one cell of the spatial hash: ids and (x, y, phase)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.spots = np.zeros((8, 3), np.float64)

    def add(self, memory_id: str, x: float, y: float, phase: float) -> None:
        n = len(self.ids)
        if n == len(self.spots):
            self.spots = np.concatenate([self.spots, np.zeros_like(self.spots)])
        self.spots[n] = x, y, phase
        self.ids.append(memory_id)

    def remove(self, memory_id: str) -> None:
        at = self.ids.index(memory_id)
        self.spots[at : len(self.ids) - 1] = self.spots[at + 1 : len(self.ids)]
        del self.ids[at]

    def recent(self) -> tuple[list[str], npt.NDArray[np.float64]]:
        """The CELL_SCAN most recent: a saturated cell is not compared with in full."""
        n = len(self.ids)
        first = max(0, n - CELL_SCAN)
        return self.ids[first:n], self.spots[first:n]


class Overlaps:
    """Which memories overlap in place and phase: their packets interfere constructively, so
    they become associated. A spatial hash per scope, of cells `reach` wide, finds the
    neighbours; a new memory keeps its MAX_ASSOCIATIONS strongest."""

    def __init__(self, reach: float) -> None:
        self.reach = reach
        self.cells: dict[tuple[ScopeKey, int, int], _Cell] = {}
        self.placed: dict[str, tuple[ScopeKey, int, int]] = {}  # memory id -> its cell

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        return math.floor(x / self.reach), math.floor(y / self.reach)

    def add(self, wire: dict[str, Any]) -> list[list[Any]]:
        """Places a memory; its associations with the memories of its scope it overlaps."""
        x, y, phase = wire["x"], wire["y"], wire["phase"]
        scope = (wire["tenant"], wire["user"], wire["persona"])
        col, row = self._cell(x, y)
        ids: list[str] = []
        spots = []
        for dc in (-1, 0, 1):
            for dr in (-1, 0, 1):
                cell = self.cells.get((scope, col + dc, row + dr))
                if cell is not None:
                    cell_ids, cell_spots = cell.recent()
                    ids += cell_ids
                    spots.append(cell_spots)
        found = self._strongest(wire["id"], x, y, phase, ids, spots) if ids else []
        cell = self.cells.get((scope, col, row))
        if cell is None:
            cell = self.cells[(scope, col, row)] = _Cell()
        cell.add(wire["id"], x, y, phase)
        self.placed[wire["id"]] = (scope, col, row)
        return found

    def _strongest(
        self,
        memory_id: str,
        x: float,
        y: float,
        phase: float,
        near: list[str],
        spots: list[npt.NDArray[np.float64]],
    ) -> list[list[Any]]:
        where = np.concatenate(spots) if len(spots) > 1 else spots[0]
        order, strengths = kernels.associations(
            where, x, y, phase, self.reach / 2, ASSOCIATION_FLOOR, MAX_ASSOCIATIONS
        )
        # Strongest first; equal strengths in the order they were placed.
        return [
            [memory_id, near[i], s] for i, s in zip(order.tolist(), strengths.tolist(), strict=True)
        ]

    def remove(self, memory_id: str) -> None:
        placed = self.placed.pop(memory_id, None)
        if placed is not None:
            self.cells[placed].remove(memory_id)


class GridRegionActor(Actor):
    handles: ClassVar[dict[type[Message], str]] = {
        GridImprint: "on_imprint",
        GridRecall: "on_recall",
        GridScore: "on_score",
        GridForget: "on_forget",
        GridReinforce: "on_reinforce",
        GridSupersede: "on_supersede",
        GridEdges: "on_edges",
        GridStep: "on_step",
        GridExport: "on_export",
        GridField: "on_field",
        StateDigest: "on_state_digest",
    }

    def __init__(self, name: str, tile: Tile, dimensions: int, sigma: float) -> None:
        super().__init__()
        self.name = name
        self.tile = tile
        self.sigma = sigma
        self.field = np.zeros((tile.height, tile.width), FIELD_DTYPE)
        self.previous = np.zeros_like(self.field)
        self.index = RegionIndex(dimensions)
        self.centres: dict[str, tuple[float, float]] = {}

    async def on_imprint(self, message: GridImprint, reply: Reply) -> None:
        for wire in message.memories:
            x, y = wire["x"], wire["y"]
            if message.wave and self.tile.touches(x, y, 3 * self.sigma):
                for target in (self.field, self.previous):  # a displacement at rest
                    kernels.imprint(
                        target,
                        self.tile.row0,
                        self.tile.col0,
                        x,
                        y,
                        wire["amplitude"],
                        self.sigma,
                        wavenumber(wire["band"]),
                        wire["phase"],
                    )
            if self.tile.holds(x, y):
                vector = np.frombuffer(wire["vector"], dtype="<f4").astype(np.float32)
                scope = (wire["tenant"], wire["user"], wire["persona"])
                self.index.add(
                    scope,
                    wire["id"],
                    wire["handle"],
                    vector,
                    wire["created"],
                    wire["tau"],
                    wire["amplitude"],
                    wire["recalls"],
                    (math.floor(y), math.floor(x)),
                    wire["terms"],
                    SUPERSEDED_WEIGHT if wire["superseded_by"] else 1.0,
                )
                self.centres[wire["id"]] = (x, y)
        self.index.refresh()  # here, not in the next recall, which waits for it
        await reply.send(Ack(message.request_id))

    async def on_recall(self, message: GridRecall, reply: Reply) -> None:
        query = np.frombuffer(message.query, dtype="<f4").astype(np.float32)
        bits = np.frombuffer(message.sketch, np.uint64) if message.sketch else None
        hits = self.index.search(
            query,
            message.now,
            message.k,
            message.tenant,
            message.user,
            message.persona,
            self._activation(),
            bits,
            LexicalQuery.from_wire(message.lexical) if message.lexical else None,
        )
        await reply.send(
            GridCandidates(
                message.request_id,
                hits.handles.astype("<i8").tobytes(),
                hits.estimates.astype("<f4").tobytes(),
                hits.scores.astype("<f4").tobytes(),
            )
        )

    async def on_score(self, message: GridScore, reply: Reply) -> None:
        query = np.frombuffer(message.query, dtype="<f4").astype(np.float32)
        words = LexicalQuery.from_wire(message.lexical)
        held, scores = self.index.score(query, message.now, message.ids, self._activation(), words)
        await reply.send(GridScored(message.request_id, held, scores.astype("<f4").tobytes()))

    def _activation(self) -> Activation:
        """The field as it is now: each recall reads the latest step."""
        return Activation(self.field, (self.tile.row0, self.tile.col0), ACTIVATION_GAIN)

    async def on_forget(self, message: GridForget, reply: Reply) -> None:
        if self.index.remove(message.memory_id):
            del self.centres[message.memory_id]
        await reply.send(Ack(message.request_id))

    async def on_reinforce(self, message: GridReinforce, reply: Reply) -> None:
        for memory_id, recalls, tau, x, y in message.updates:
            if memory_id in self.centres:
                self.index.reinforce(memory_id, recalls, tau)
            if self.tile.touches(x, y, 3 * self.sigma):  # recalling excites the neighbourhood
                kernels.imprint(
                    self.field,
                    self.tile.row0,
                    self.tile.col0,
                    x,
                    y,
                    EXCITATION,
                    self.sigma,
                    0.0,
                    0.0,
                )
        await reply.send(Ack(message.request_id))

    async def on_supersede(self, message: GridSupersede, reply: Reply) -> None:
        for memory_id, superseded in message.updates:
            self.index.supersede(memory_id, SUPERSEDED_WEIGHT if superseded else 1.0)
        await reply.send(Ack(message.request_id))

    async def on_edges(self, message: GridEdges, reply: Reply) -> None:
        field = self.field
        await reply.send(
            Edges(
                message.request_id,
                field[0].tobytes(),
                field[-1].tobytes(),
                field[:, 0].copy().tobytes(),
                field[:, -1].copy().tobytes(),
            )
        )

    async def on_step(self, message: GridStep, reply: Reply) -> None:
        padded = np.zeros((self.tile.height + 2, self.tile.width + 2), FIELD_DTYPE)
        padded[1:-1, 1:-1] = self.field
        padded[0, 1:-1] = np.frombuffer(message.top, FIELD_DTYPE)
        padded[-1, 1:-1] = np.frombuffer(message.bottom, FIELD_DTYPE)
        padded[1:-1, 0] = np.frombuffer(message.left, FIELD_DTYPE)
        padded[1:-1, -1] = np.frombuffer(message.right, FIELD_DTYPE)
        following = kernels.propagate(padded, self.previous, C2DT2, GAMMA_DT)
        self.previous = self.field
        self.field = following
        kernels.decay(self.field, message.decay)
        kernels.decay(self.previous, message.decay)
        await reply.send(Ack(message.request_id))

    async def on_export(self, message: GridExport, reply: Reply) -> None:
        await reply.send(
            GridField(message.request_id, [self.field.tobytes()], [self.previous.tobytes()], None)
        )

    async def on_field(self, message: GridField, reply: Reply) -> None:
        shape = self.field.shape
        self.field = np.frombuffer(message.current[0], FIELD_DTYPE).reshape(shape).copy()
        self.previous = np.frombuffer(message.previous[0], FIELD_DTYPE).reshape(shape).copy()
        await reply.send(Ack(message.request_id))

    async def on_state_digest(self, message: StateDigest, reply: Reply) -> None:
        digest = hashlib.sha256(self.field.tobytes() + self.previous.tobytes())
        for memory_id, recalls, tau, standing in self.index.uses():
            superseded = "" if standing == 1.0 else f":{standing!r}"  # as before updates existed
            digest.update(f"{memory_id}:{recalls}:{tau!r}{superseded};".encode())
        await reply.send(Digest(message.request_id, self.name, digest.hexdigest()))


class GridActor(Actor):
    """Routes to the regions; owns the field's clock (the last step's time)."""

    handles: ClassVar[dict[type[Message], str]] = {
        GridImprint: "on_imprint",
        GridRecall: "on_recall",
        GridForget: "on_forget",
        GridReinforce: "on_reinforce",
        GridSupersede: "on_supersede",
        GridExport: "on_export",
        GridField: "on_field",
        StateDigest: "on_state_digest",
    }

    def __init__(
        self, grid_size: int, per_side: int, regions: list[ActorRef], sigma: float
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.per_side = per_side
        self.tiles = tiles(grid_size, per_side)
        self.regions = regions
        self.sigma = sigma
        self.last_step: float | None = None
        self.owner: dict[str, int] = {}  # memory id -> the region holding its centre
        self.centres: dict[str, tuple[float, float]] = {}
        self.overlaps = Overlaps(2 * sigma)
        self.frequencies: dict[ScopeKey, Frequencies] = {}  # per scope: the words it holds
        self.handle_of: dict[str, int] = {}  # memory id -> its number, which recalls move
        self.names: list[str] = []  # handle -> memory id
        # By handle: the one before it in its stream, the one after it (-1: none).
        self.before = np.full(0, -1, np.int64)
        self.after = np.full(0, -1, np.int64)
        self._axes: dict[int, npt.NDArray[np.float32]] = {}  # sketch projections by dimension

    async def on_imprint(self, message: GridImprint, reply: Reply) -> None:
        await self._advance(message.now)
        routes: dict[int, list[dict[str, Any]]] = {}
        for given in message.memories:
            # Its words, stemmed once here: for the scope's counts and the region's index.
            terms = lexical.memory_terms(given["text"], given["context"], given["created"])
            wire = {**given, "terms": terms, "handle": self._handle(given["id"])}
            self._chain(wire)
            for i, tile in enumerate(self.tiles):
                if tile.touches(wire["x"], wire["y"], 3 * self.sigma):
                    routes.setdefault(i, []).append(wire)
                if tile.holds(wire["x"], wire["y"]) and wire["id"] not in self.owner:
                    self.owner[wire["id"]] = i
                    self.centres[wire["id"]] = (wire["x"], wire["y"])
        await self._each(
            {
                i: GridImprint(_rid(), batch, message.now, message.wave)
                for i, batch in routes.items()
            },
            Ack,
        )
        found = [self.overlaps.add(wire) for wire in message.memories]
        associations = [pair for pairs in found for pair in pairs] if message.wave else []
        await reply.send(GridImprinted(message.request_id, associations))

    def _handle(self, memory_id: str) -> int:
        """The memory's handle, given at first sight (to a chained turn, even before it is
        imprinted) and kept."""
        handle = self.handle_of.get(memory_id)
        if handle is None:
            handle = self.handle_of[memory_id] = len(self.names)
            self.names.append(memory_id)
            if handle == len(self.before):  # grown by doubling
                more = np.full(max(16, handle), -1, np.int64)
                self.before = np.concatenate([self.before, more])
                self.after = np.concatenate([self.after, more])
        return handle

    def _chain(self, wire: dict[str, Any]) -> None:
        """Counts the memory's words for its scope and links it to the turn it followed."""
        scope = (wire["tenant"], wire["user"], wire["persona"])
        corpus = self.frequencies.setdefault(scope, Frequencies())
        corpus.add(wire["terms"])
        if wire["follows"]:
            before = self._handle(wire["follows"])
            self.before[wire["handle"]] = before
            self.after[before] = wire["handle"]

    def _chain_around(self, handles: Handles) -> list[tuple[Handles, Handles]]:
        """For each step of SPREAD, the turns that many before and after each of `handles` in
        its chain (-1 where the chain ends)."""
        before, after, steps = handles, handles, []
        for _ in SPREAD:
            before = np.where(before >= 0, self.before[before], -1)
            after = np.where(after >= 0, self.after[after], -1)
            steps.append((before, after))
        return steps

    async def on_recall(self, message: GridRecall, reply: Reply) -> None:
        await self._advance(message.now)
        audience = Audience(message.tenant, message.user, message.persona)
        words = lexical.weigh(
            message.text,
            (
                corpus
                for scope, corpus in sorted(self.frequencies.items())
                if audience.admits(Scope(*scope))
            ),
        ).to_wire()
        query = np.frombuffer(message.query, dtype="<f4").astype(np.float32)
        axes = self._axes.get(len(query))
        if axes is None:
            axes = self._axes[len(query)] = sketch.projection(len(query))
        bits = sketch.sketch(query, axes)[0].tobytes()
        asks = {
            i: GridRecall(
                _rid(),
                message.query,
                message.tenant,
                message.user,
                message.persona,
                message.k,
                message.now,
                bits,
                lexical=words,
            )
            for i in range(len(self.regions))
        }
        answers = await self._each(asks, GridCandidates)
        found = Candidates.merge(
            [
                Candidates(
                    np.frombuffer(a.handles, "<i8").astype(np.int64),
                    np.frombuffer(a.estimates, "<f4").astype(np.float32),
                    np.frombuffer(a.scores, "<f4").astype(np.float32),
                )
                for _, a in sorted(answers.items())
            ]
        )
        pool = found.reaching(candidates_for(message.k))
        around = self._chain_around(pool.handles)
        known = _Known(found.handles, found.scores)
        spread = _spread(pool, around, known)
        if np.isnan(spread.scores).any():  # neighbours the regions did not send
            wanted = np.unique(np.concatenate([side for step in around for side in step]))
            missing = wanted[(wanted >= 0) & np.isnan(known.scores(wanted))]
            known = known.plus(*await self._scores(missing, message, words))
            spread = _spread(pool, around, known)
        chosen = spread.ranked(message.k, self.names.__getitem__)
        names, scores = self.names, chosen.scores.tolist()
        best = [[names[h], s] for h, s in zip(chosen.handles.tolist(), scores, strict=True)]
        await reply.send(GridRecalled(message.request_id, best))

    async def _scores(
        self, handles: Handles, message: GridRecall, words: dict[str, Any]
    ) -> tuple[Handles, npt.NDArray[np.float32]]:
        """The exact scores of the memories with these handles, asked of the regions holding
        them (the same in any tiling: a memory's score depends on it and the query alone)."""
        routes: dict[int, list[str]] = {}
        for memory_id in sorted(self.names[h] for h in handles.tolist()):
            if memory_id in self.owner:
                routes.setdefault(self.owner[memory_id], []).append(memory_id)
        asks = {
            i: GridScore(_rid(), message.query, held, message.now, words)
            for i, held in routes.items()
        }
        held: list[int] = []
        scores = [np.zeros(0, np.float32)]
        for answer in (await self._each(asks, GridScored)).values():
            held += [self.handle_of[memory_id] for memory_id in answer.ids]
            scores.append(np.frombuffer(answer.scores, "<f4").astype(np.float32))
        return np.array(held, np.int64), np.concatenate(scores)

    async def on_forget(self, message: GridForget, reply: Reply) -> None:
        region = self.owner.pop(message.memory_id, None)
        self.centres.pop(message.memory_id, None)
        self._unchain(message)
        self.overlaps.remove(message.memory_id)
        if region is not None:
            await self.regions[region].ask(GridForget(_rid(), message.memory_id), Ack)
        await reply.send(Ack(message.request_id))

    def _unchain(self, message: GridForget) -> None:
        """Takes a forgotten memory's words out of its scope's counts; its neighbours in the
        chain now follow each other."""
        if message.scope:
            corpus = self.frequencies.get((message.scope[0], message.scope[1], message.scope[2]))
            if corpus is not None:
                corpus.remove(lexical.memory_terms(message.text, message.context, message.created))
        handle = self.handle_of.get(message.memory_id)
        if handle is None:
            return
        before, after = int(self.before[handle]), int(self.after[handle])
        self.before[handle] = self.after[handle] = -1
        if before >= 0 and self.after[before] == handle:
            self.after[before] = -1
        if after >= 0 and self.before[after] == handle:
            self.before[after] = -1
        if before >= 0 and after >= 0:
            self.before[after], self.after[before] = before, after

    async def on_reinforce(self, message: GridReinforce, reply: Reply) -> None:
        """Updates each memory's owner and excites every tile its packet touches."""
        await self._advance(message.now)
        routes: dict[int, list[list[Any]]] = {}
        for memory_id, recalls, tau in message.updates:
            if memory_id not in self.centres:
                continue
            x, y = self.centres[memory_id]
            for i, tile in enumerate(self.tiles):
                if tile.touches(x, y, 3 * self.sigma) or i == self.owner[memory_id]:
                    routes.setdefault(i, []).append([memory_id, recalls, tau, x, y])
        await self._each(
            {i: GridReinforce(_rid(), batch, message.now) for i, batch in routes.items()}, Ack
        )
        await reply.send(Ack(message.request_id))

    async def on_supersede(self, message: GridSupersede, reply: Reply) -> None:
        """Sends each update to the region holding the memory (its weight lives there)."""
        routes: dict[int, list[list[Any]]] = {}
        for memory_id, superseded in message.updates:
            if memory_id in self.owner:
                routes.setdefault(self.owner[memory_id], []).append([memory_id, superseded])
        await self._each({i: GridSupersede(_rid(), batch) for i, batch in routes.items()}, Ack)
        await reply.send(Ack(message.request_id))

    async def on_export(self, message: GridExport, reply: Reply) -> None:
        answers = await self._each(
            {i: GridExport(_rid()) for i in range(len(self.regions))}, GridField
        )
        ordered = [answers[i] for i in range(len(self.regions))]
        await reply.send(
            GridField(
                message.request_id,
                [a.current[0] for a in ordered],
                [a.previous[0] for a in ordered],
                self.last_step,
            )
        )

    async def on_field(self, message: GridField, reply: Reply) -> None:
        if len(message.current) != len(self.regions):
            raise errors.InvalidRequest(
                f"the saved field has {len(message.current)} regions, the grid {len(self.regions)}"
            )
        self.last_step = message.last_step
        await self._each(
            {
                i: GridField(_rid(), [message.current[i]], [message.previous[i]], None)
                for i in range(len(self.regions))
            },
            Ack,
        )
        await reply.send(Ack(message.request_id))

    async def on_state_digest(self, message: StateDigest, reply: Reply) -> None:
        answers = await self._each(
            {i: StateDigest(_rid()) for i in range(len(self.regions))}, Digest
        )
        digest = hashlib.sha256(repr(self.last_step).encode())
        for i in sorted(answers):
            digest.update(answers[i].sha256.encode())
        await reply.send(Digest(message.request_id, "grid", digest.hexdigest()))

    async def _advance(self, now: float) -> None:
        """Runs the steps due since the last one (at most MAX_STEPS), in lock step."""
        if self.last_step is None:
            self.last_step = now
        due = int((now - self.last_step) // TICK)
        for _ in range(min(due, MAX_STEPS)):
            await self._step()
        if due > 0:
            self.last_step += due * TICK

    async def _step(self) -> None:
        edges = await self._each({i: GridEdges(_rid()) for i in range(len(self.regions))}, Edges)
        steps = {i: self._halo(i, edges) for i in range(len(self.regions))}
        await self._each(steps, Ack)

    def _halo(self, i: int, edges: dict[int, Edges]) -> GridStep:
        """The edges facing tile i from its four neighbours; zeros at the grid's border."""
        row, col = divmod(i, self.per_side)
        blank = bytes(np.zeros(self.tiles[i].width, FIELD_DTYPE).tobytes())
        n = self.per_side

        def edge(r: int, c: int, side: str) -> bytes:
            if 0 <= r < n and 0 <= c < n:
                return bytes(getattr(edges[r * n + c], side))
            return blank

        return GridStep(
            _rid(),
            top=edge(row - 1, col, "bottom"),
            bottom=edge(row + 1, col, "top"),
            left=edge(row, col - 1, "right"),
            right=edge(row, col + 1, "left"),
            decay=FIELD_DECAY,
        )

    async def _each(self, asks: Mapping[int, Message], reply_type: type[Any]) -> dict[int, Any]:
        """Asks regions concurrently (every ask is delivered before the first answer is
        awaited: no task per region needed); the answers by region index."""
        streams = {}
        try:
            for i, message in asks.items():
                streams[i] = await self.regions[i].open_stream(message)
            return {
                i: await _answer(stream, reply_type, self.regions[i].name)
                for i, stream in streams.items()
            }
        finally:
            for stream in streams.values():
                stream.close()


class _Known:
    """The exact scores known in a recall, by handle: looked up for many handles at once."""

    def __init__(self, handles: Handles, scores: npt.NDArray[np.float32]) -> None:
        order = np.argsort(handles, kind="stable")
        self._handles = handles[order]
        self._scores = scores[order]

    def scores(self, handles: Handles) -> npt.NDArray[np.float64]:
        """Each handle's score: NaN where it is not known, 0 where a chain ends (-1)."""
        found = np.full(len(handles), math.nan)
        if len(self._handles):
            at = np.minimum(np.searchsorted(self._handles, handles), len(self._handles) - 1)
            hit = self._handles[at] == handles
            found[hit] = self._scores[at[hit]]
        found[handles < 0] = 0.0
        return found

    def plus(self, handles: Handles, scores: npt.NDArray[np.float32]) -> _Known:
        return _Known(
            np.concatenate([self._handles, handles]), np.concatenate([self._scores, scores])
        )


def _spread(pool: Candidates, around: list[tuple[Handles, Handles]], known: _Known) -> Candidates:
    """Each candidate gains a share of what its best neighbour in the chain of turns scores
    above it (`known`: the exact scores of the pool's neighbours; NaN for one that is missing)."""
    own = pool.scores.astype(np.float64)
    spread = own.copy()
    for share, (before, after) in zip(SPREAD, around, strict=True):
        best = np.maximum(known.scores(before), known.scores(after))
        spread += share * np.maximum(best - own, 0.0)
    return Candidates(pool.handles, pool.estimates, spread.astype(np.float32))


async def _answer(stream: ReplyStream, reply_type: type[Any], region: str) -> Any:
    answer = await anext(stream, None)
    if not isinstance(answer, reply_type):
        found = "nothing" if answer is None else answer.type
        raise errors.ActorUnavailable(f"{region} answered {found}, not {reply_type.type}")
    return answer


def _rid() -> str:
    return os.urandom(8).hex()
