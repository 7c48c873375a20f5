"""The grid as actors: GridRegion owns one tile of the field and the memories centred in it;
Grid routes imprints and recalls to the regions and runs the field's steps with halo exchange.
The numerics (tiles and their fields, the index, the chain of turns, overlaps) are mem8.grid's."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from mem8 import errors, heatmap
from mem8.actors.messages import (
    Ack,
    Association,
    Digest,
    Edges,
    Excitation,
    GridCandidates,
    GridEdges,
    GridExcite,
    GridExport,
    GridField,
    GridForget,
    GridImprint,
    GridImprinted,
    GridPicture,
    GridRecall,
    GridRecalled,
    GridReinforce,
    GridReset,
    GridScore,
    GridScored,
    GridStep,
    GridSupersede,
    Hit,
    Message,
    Picture,
    StateDigest,
    Supersession,
)
from mem8.actors.runtime import Actor, ActorRef, M, Reply, ask_each, handles, new_request_id
from mem8.grid import lexical, sketch, tiling
from mem8.grid.chain import Chain
from mem8.grid.dynamics import FIELD_DECAY, SUPERSEDED_WEIGHT
from mem8.grid.index import Candidates, Handles, RegionIndex, candidates_for
from mem8.grid.kernels import FIELD_DTYPE
from mem8.grid.lexical import Frequencies, LexicalQuery
from mem8.grid.overlaps import Overlaps
from mem8.grid.tiling import Tile, TileField
from mem8.scope import Audience, Scope

TICK = 60.0  # seconds of clock time per propagation step
MAX_STEPS = 4  # steps caught up at most per message: a long silence is not replayed in full


class GridRegionActor(Actor):
    def __init__(self, name: str, tile: Tile, dimensions: int, sigma: float) -> None:
        super().__init__()
        self.name = name
        self.tile = tile
        self.dimensions = dimensions
        self.sigma = sigma
        self._empty()

    def _empty(self) -> None:
        """The tile's field and memories: none yet."""
        self.field = TileField(self.tile, self.sigma)
        self.index = RegionIndex(self.dimensions)
        self.centres: dict[str, tuple[float, float]] = {}

    @handles(GridReset)
    async def on_reset(self, message: GridReset, reply: Reply) -> None:
        self._empty()
        await reply.send(Ack(message.request_id))

    @handles(GridImprint)
    async def on_imprint(self, message: GridImprint, reply: Reply) -> None:
        for wire in message.memories:
            x, y = wire["x"], wire["y"]
            if message.wave:
                self.field.imprint(x, y, wire["amplitude"], wire["band"], wire["phase"])
            if self.tile.holds(x, y):
                vector = np.frombuffer(wire["vector"], dtype="<f4").astype(np.float32)
                self.index.add(
                    _scope_of(wire),
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

    @handles(GridRecall)
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
            self.field.activation(),
            bits,
            LexicalQuery.from_wire(message.lexical) if message.lexical else None,
            message.candidates,
        )
        await reply.send(
            GridCandidates(
                message.request_id,
                hits.handles.astype("<i8").tobytes(),
                hits.estimates.astype("<f4").tobytes(),
                hits.scores.astype("<f4").tobytes(),
            )
        )

    @handles(GridScore)
    async def on_score(self, message: GridScore, reply: Reply) -> None:
        query = np.frombuffer(message.query, dtype="<f4").astype(np.float32)
        words = LexicalQuery.from_wire(message.lexical)
        held, scores = self.index.score(
            query, message.now, message.ids, self.field.activation(), words
        )
        await reply.send(GridScored(message.request_id, held, scores.astype("<f4").tobytes()))

    @handles(GridForget)
    async def on_forget(self, message: GridForget, reply: Reply) -> None:
        if self.index.remove(message.memory_id):
            del self.centres[message.memory_id]
        await reply.send(Ack(message.request_id))

    @handles(GridExcite)
    async def on_excite(self, message: GridExcite, reply: Reply) -> None:
        for memory_id, recalls, tau, x, y in message.updates:
            if memory_id in self.centres:
                self.index.reinforce(memory_id, recalls, tau)
            self.field.excite(x, y)  # recalling excites the neighbourhood
        await reply.send(Ack(message.request_id))

    @handles(GridSupersede)
    async def on_supersede(self, message: GridSupersede, reply: Reply) -> None:
        for memory_id, superseded in message.updates:
            self.index.supersede(memory_id, SUPERSEDED_WEIGHT if superseded else 1.0)
        await reply.send(Ack(message.request_id))

    @handles(GridEdges)
    async def on_edges(self, message: GridEdges, reply: Reply) -> None:
        top, bottom, left, right = (edge.tobytes() for edge in self.field.edges())
        await reply.send(Edges(message.request_id, top, bottom, left, right))

    @handles(GridStep)
    async def on_step(self, message: GridStep, reply: Reply) -> None:
        sides = (message.top, message.bottom, message.left, message.right)
        halo = tiling.Edges(*(np.frombuffer(side, FIELD_DTYPE) for side in sides))
        self.field.step(halo, message.decay)
        await reply.send(Ack(message.request_id))

    @handles(GridExport)
    async def on_export(self, message: GridExport, reply: Reply) -> None:
        current, previous = self.field.saved()
        await reply.send(GridField(message.request_id, [current], [previous], None))

    @handles(GridField)
    async def on_field(self, message: GridField, reply: Reply) -> None:
        self.field.restore(message.current[0], message.previous[0])
        await reply.send(Ack(message.request_id))

    @handles(StateDigest)
    async def on_state_digest(self, message: StateDigest, reply: Reply) -> None:
        current, previous = self.field.saved()
        digest = hashlib.sha256(current + previous)
        for memory_id, recalls, tau, standing in self.index.uses():
            superseded = "" if standing == 1.0 else f":{standing!r}"  # as before updates existed
            digest.update(f"{memory_id}:{recalls}:{tau!r}{superseded};".encode())
        await reply.send(Digest(message.request_id, self.name, digest.hexdigest()))


class GridActor(Actor):
    """Routes to the regions; owns the field's clock (the last step's time)."""

    def __init__(
        self, grid_size: int, per_side: int, regions: list[ActorRef], sigma: float
    ) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.per_side = per_side
        self.tiles = tiling.tiles(grid_size, per_side)
        self.regions = regions
        self.sigma = sigma
        self.reach = tiling.reach(sigma)  # how far a packet writes: the tiles it touches
        self._axes: dict[int, npt.NDArray[np.float32]] = {}  # sketch projections by dimension
        self._empty()

    def _empty(self) -> None:
        """The state the memories imprinted give it: none yet."""
        self.last_step: float | None = None
        self.owner: dict[str, int] = {}  # memory id -> the region holding its centre
        self.centres: dict[str, tuple[float, float]] = {}
        self.overlaps = Overlaps(2 * self.sigma)
        self.frequencies: dict[Scope, Frequencies] = {}  # per scope: the words it holds
        self.handle_of: dict[str, int] = {}  # memory id -> its number, which recalls move
        self.names: list[str] = []  # handle -> memory id
        self.chain = Chain()  # by handle: the turns before and after it

    async def started(self) -> None:
        """Starts (or, after a crash, restarts) with its regions as empty as its own maps: a
        recall until Regrid has filled them again finds nothing rather than failing."""
        await self._empty_regions()

    @handles(GridReset)
    async def on_reset(self, message: GridReset, reply: Reply) -> None:
        self._empty()
        await self._empty_regions()
        await reply.send(Ack(message.request_id))

    async def _empty_regions(self) -> None:
        every = range(len(self.regions))
        await self._ask_regions({i: GridReset(new_request_id()) for i in every}, Ack)

    @handles(GridImprint)
    async def on_imprint(self, message: GridImprint, reply: Reply) -> None:
        await self._advance(message.now)
        routes: dict[int, list[dict[str, Any]]] = {}
        for given in message.memories:
            # Its words, stemmed once here: for the scope's counts and the region's index.
            terms = lexical.memory_terms(given["text"], given["context"], given["created"])
            wire = {**given, "terms": terms, "handle": self._handle(given["id"])}
            self._chain(wire)
            for i, tile in enumerate(self.tiles):
                if tile.touches(wire["x"], wire["y"], self.reach):
                    routes.setdefault(i, []).append(wire)
                if tile.holds(wire["x"], wire["y"]) and wire["id"] not in self.owner:
                    self.owner[wire["id"]] = i
                    self.centres[wire["id"]] = (wire["x"], wire["y"])
        await self._ask_regions(
            {
                i: GridImprint(new_request_id(), batch, message.now, message.wave)
                for i, batch in routes.items()
            },
            Ack,
        )
        found = [self.overlaps.add(wire, _scope_of(wire)) for wire in message.memories]
        associations = (
            [Association(*pair) for pairs in found for pair in pairs] if message.wave else []
        )
        await reply.send(GridImprinted(message.request_id, associations))

    def _handle(self, memory_id: str) -> int:
        """The memory's handle, given at first sight (to a chained turn, even before it is
        imprinted) and kept."""
        handle = self.handle_of.get(memory_id)
        if handle is None:
            handle = self.handle_of[memory_id] = len(self.names)
            self.names.append(memory_id)
            self.chain.make_room(handle)
        return handle

    def _chain(self, wire: dict[str, Any]) -> None:
        """Counts the memory's words for its scope and links it to the turn it followed."""
        corpus = self.frequencies.setdefault(_scope_of(wire), Frequencies())
        corpus.add(wire["terms"])
        if wire["follows"]:
            self.chain.link(self._handle(wire["follows"]), wire["handle"])

    @handles(GridRecall)
    async def on_recall(self, message: GridRecall, reply: Reply) -> None:
        await self._advance(message.now)
        corpora = self._corpora(message)
        words = lexical.weigh(message.text, corpora).to_wire()
        count = candidates_for(message.k, sum(corpus.documents for corpus in corpora))
        bits = self._sketched(np.frombuffer(message.query, dtype="<f4").astype(np.float32))
        asks = {
            i: GridRecall(
                new_request_id(),
                message.query,
                message.tenant,
                message.user,
                message.persona,
                message.k,
                message.now,
                bits,
                lexical=words,
                candidates=count,
            )
            for i in range(len(self.regions))
        }
        found = _merged(await self._ask_regions(asks, GridCandidates))
        spread = self.chain.spread(found, count)
        missing = spread.missing()  # neighbours the regions did not send
        if len(missing):
            spread = spread.knowing(*await self._scores(missing, message, words))
        chosen = spread.candidates.ranked(message.k, self.names.__getitem__)
        names, scores = self.names, chosen.scores.tolist()
        best = [Hit(names[h], s) for h, s in zip(chosen.handles.tolist(), scores, strict=True)]
        await reply.send(GridRecalled(message.request_id, best))

    def _corpora(self, message: GridRecall) -> list[Frequencies]:
        """The word counts of every scope the recall sees, in one order: the query's words are
        weighed once by them, so that every region scores alike, and they say how many
        memories the recall ranks."""
        audience = Audience(message.tenant, message.user, message.persona)
        return [c for scope, c in sorted(self.frequencies.items()) if audience.admits(scope)]

    def _sketched(self, query: npt.NDArray[np.float32]) -> bytes:
        """The query's sketch, made once for every region."""
        axes = self._axes.get(len(query))
        if axes is None:
            axes = self._axes[len(query)] = sketch.projection(len(query))
        return bytes(sketch.sketch(query, axes)[0].tobytes())

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
            i: GridScore(new_request_id(), message.query, held, message.now, words)
            for i, held in routes.items()
        }
        held: list[int] = []
        scores = [np.zeros(0, np.float32)]
        for answer in (await self._ask_regions(asks, GridScored)).values():
            held += [self.handle_of[memory_id] for memory_id in answer.ids]
            scores.append(np.frombuffer(answer.scores, "<f4").astype(np.float32))
        return np.array(held, np.int64), np.concatenate(scores)

    @handles(GridForget)
    async def on_forget(self, message: GridForget, reply: Reply) -> None:
        region = self.owner.pop(message.memory_id, None)
        self.centres.pop(message.memory_id, None)
        self._unchain(message)
        self.overlaps.remove(message.memory_id)
        if region is not None:
            forget = GridForget(new_request_id(), message.memory_id)
            await self.regions[region].ask(forget, Ack)
        await reply.send(Ack(message.request_id))

    def _unchain(self, message: GridForget) -> None:
        """Takes a forgotten memory's words out of its scope's counts and it out of its chain."""
        if message.scope:
            corpus = self.frequencies.get(message.scope)
            if corpus is not None:
                corpus.remove(lexical.memory_terms(message.text, message.context, message.created))
        handle = self.handle_of.get(message.memory_id)
        if handle is not None:
            self.chain.unlink(handle)

    @handles(GridReinforce)
    async def on_reinforce(self, message: GridReinforce, reply: Reply) -> None:
        """Updates each memory's owner and excites every tile its packet touches."""
        await self._advance(message.now)
        routes: dict[int, list[Excitation]] = {}
        for memory_id, recalls, tau in message.updates:
            if memory_id not in self.centres:
                continue
            x, y = self.centres[memory_id]
            for i, tile in enumerate(self.tiles):
                if tile.touches(x, y, self.reach) or i == self.owner[memory_id]:
                    routes.setdefault(i, []).append(Excitation(memory_id, recalls, tau, x, y))
        await self._ask_regions(
            {i: GridExcite(new_request_id(), batch, message.now) for i, batch in routes.items()},
            Ack,
        )
        await reply.send(Ack(message.request_id))

    @handles(GridSupersede)
    async def on_supersede(self, message: GridSupersede, reply: Reply) -> None:
        """Sends each update to the region holding the memory (its weight lives there)."""
        routes: dict[int, list[Supersession]] = {}
        for memory_id, superseded in message.updates:
            if memory_id in self.owner:
                routes.setdefault(self.owner[memory_id], []).append(
                    Supersession(memory_id, superseded)
                )
        await self._ask_regions(
            {i: GridSupersede(new_request_id(), batch) for i, batch in routes.items()}, Ack
        )
        await reply.send(Ack(message.request_id))

    @handles(GridExport)
    async def on_export(self, message: GridExport, reply: Reply) -> None:
        answers = await self._ask_regions(
            {i: GridExport(new_request_id()) for i in range(len(self.regions))}, GridField
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

    @handles(GridPicture)
    async def on_picture(self, message: GridPicture, reply: Reply) -> None:
        """Drawn apart: compressing the PNG takes a while (0.2 s for 256 cells a side, 2 s for
        1024), which recalls must not wait for."""
        centres = list(self.centres.values())
        self.answer_apart(message, reply, lambda owned: self._picture(message, centres, owned))

    async def _picture(
        self, message: GridPicture, centres: list[tuple[float, float]], reply: Reply
    ) -> None:
        answers = await self._ask_regions(
            {i: GridExport(new_request_id()) for i in range(len(self.regions))}, GridField
        )
        tiles = [answers[i].current[0] for i in range(len(self.regions))]

        def draw() -> bytes:
            magnitude = np.abs(tiling.joined(tiles, self.grid_size, self.per_side))
            return heatmap.png(heatmap.heatmap(magnitude, centres, message.scale))

        png = await trio.to_thread.run_sync(draw)  # beside the event loop too
        await reply.send(Picture(message.request_id, png, len(centres)))

    @handles(GridField)
    async def on_field(self, message: GridField, reply: Reply) -> None:
        if len(message.current) != len(self.regions):
            raise errors.InvalidRequest(
                f"the saved field has {len(message.current)} regions, the grid {len(self.regions)}"
            )
        self.last_step = message.last_step
        await self._ask_regions(
            {
                i: GridField(new_request_id(), [message.current[i]], [message.previous[i]], None)
                for i in range(len(self.regions))
            },
            Ack,
        )
        await reply.send(Ack(message.request_id))

    @handles(StateDigest)
    async def on_state_digest(self, message: StateDigest, reply: Reply) -> None:
        answers = await self._ask_regions(
            {i: StateDigest(new_request_id()) for i in range(len(self.regions))}, Digest
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
        every = range(len(self.regions))
        edges = await self._ask_regions({i: GridEdges(new_request_id()) for i in every}, Edges)
        await self._ask_regions({i: self._halo(i, edges) for i in every}, Ack)

    def _halo(self, i: int, edges: dict[int, Edges]) -> GridStep:
        """The edges facing tile i from its four neighbours; zeros at the grid's border."""
        blank = bytes(np.zeros(self.tiles[i].width, FIELD_DTYPE).tobytes())
        north, south, west, east = tiling.neighbours(i, self.per_side)

        def edge(neighbour: int | None, side: str) -> bytes:
            return blank if neighbour is None else bytes(getattr(edges[neighbour], side))

        return GridStep(
            new_request_id(),
            top=edge(north, "bottom"),
            bottom=edge(south, "top"),
            left=edge(west, "right"),
            right=edge(east, "left"),
            decay=FIELD_DECAY,
        )

    async def _ask_regions(self, asks: Mapping[int, Message], reply_type: type[M]) -> dict[int, M]:
        """Asks regions at once (runtime.ask_each); the answers by region index."""
        return await ask_each({i: (self.regions[i], m) for i, m in asks.items()}, reply_type)


def _merged(answers: dict[int, GridCandidates]) -> Candidates:
    """The regions' candidates as one set, in region order."""
    return Candidates.merge(
        [
            Candidates(
                np.frombuffer(a.handles, "<i8").astype(np.int64),
                np.frombuffer(a.estimates, "<f4").astype(np.float32),
                np.frombuffer(a.scores, "<f4").astype(np.float32),
            )
            for _, a in sorted(answers.items())
        ]
    )


@functools.lru_cache(maxsize=4096)
def _scope(tenant: str, user: str, persona: str) -> Scope:
    return Scope(tenant, user, persona)


def _scope_of(wire: dict[str, Any]) -> Scope:
    """A wire memory's scope, one object per scope (while 4096 are in use): a fresh Scope built
    and compared per memory cost a few percent of an imprint."""
    return _scope(wire["tenant"], wire["user"], wire["persona"])
