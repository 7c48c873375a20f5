"""The running system: personas and the journal as actors under one supervisor."""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from mem8 import errors
from mem8.actors.encoding import EncodingActor
from mem8.actors.grid import GridActor, GridRegionActor
from mem8.actors.journal import JournalActor, size_on_disk
from mem8.actors.memory import MemoryActor
from mem8.actors.messages import (
    Ack,
    Digest,
    JournalClose,
    JournalStart,
    Persist,
    ReadAgain,
    Recollect,
    Regrid,
    Resume,
    StateDigest,
)
from mem8.actors.persona import PersonaActor
from mem8.actors.runtime import Actor, ActorRef, Placement, Recipe, Supervisor, new_request_id
from mem8.actors.senses import HearingActor, ReadingActor
from mem8.backends.base import LLMBackend
from mem8.backends.select import choose_backends
from mem8.clock import Clock, WallClock
from mem8.config import Settings
from mem8.encoders import open_encoder, open_named
from mem8.encoders.base import Encoder
from mem8.grid.placement import Placer
from mem8.grid.tiling import Tile, tiles
from mem8.keys import KeyRing
from mem8.metrics import Metrics
from mem8.personas import Persona
from mem8.reencoding import check_encoder, follow_encoder
from mem8.senses import documents
from mem8.senses.audio import WhisperTranscriber
from mem8.storage.sqlite import MemoryStore
from mem8.windows import WindowLimits

log = logging.getLogger(__name__)


@dataclass
class System:
    settings: Settings
    clock: Clock
    supervisor: Supervisor
    personas: dict[str, ActorRef]
    backends: Mapping[str, LLMBackend]
    journal: ActorRef | None
    memory: ActorRef
    grid: ActorRef
    store: MemoryStore
    encoder: Encoder
    hearing: ActorRef  # the audio channel: transcribes and remembers
    reading: ActorRef  # the document and image channel: reads in a child process, keeps
    encoding: ActorRef  # texts to their waves (/v1/embeddings)
    keys: KeyRing  # the API keys the server accepts (none: open, on loopback only)
    metrics: Metrics  # what GET /metrics shows

    def persona(self, model: str) -> ActorRef:
        """The persona actor a model name means (a persona's id, an alias, or the default)."""
        persona = self.persona_id(model)
        if persona not in self.personas:  # a system opened without chat (`mem8 mcp`)
            raise errors.ActorUnavailable(f"{persona} does not chat in this process")
        return self.personas[persona]

    def persona_id(self, model: str, *, default: bool = True) -> str:
        """The persona a model name means: itself, the persona its alias names, or (if
        `default`) the default persona; else the spec's 404."""
        personas = self.settings.personas
        if model in personas:
            return model
        target = self.settings.aliases.get(model) or (
            self.settings.default_persona if default else ""
        )
        if target not in personas:
            raise errors.UnknownModel(model)
        return target

    def journal_bytes(self) -> int:
        """Bytes the journal's files take on disk (0 without a journal); reads the disk."""
        directory = self.settings.journal_dir() if self.journal is not None else None
        return size_on_disk(directory) if directory is not None else 0

    async def state_digests(self) -> dict[str, str]:
        """The memory actor's state hash (windows, tallies, commit count, and the grid's) and the
        grid's on its own: replay compares these."""
        memory = await self.memory.ask(StateDigest(new_request_id()), Digest)
        grid = await self.grid.ask(StateDigest(new_request_id()), Digest)
        return {"memory": memory.sha256, "grid": grid.sha256}


def journal_header(
    settings: Settings, clock: Clock, encoder: Encoder, run: str | None = None
) -> dict[str, Any]:
    """What replay needs to rebuild the same system: the personas, the grid, the encoder and
    the start time; and the run it heads (one per start of the system, restarts of the journal
    actor included)."""
    return {
        "run": run or secrets.token_hex(8),
        "started": clock.now(),
        "personas": {pid: p.to_wire() for pid, p in settings.personas.items()},
        "grid": {"grid_size": settings.grid_size, "grid_tiles": settings.grid_tiles},
        "encoder": encoder.name,
    }


@asynccontextmanager
async def open_system(
    settings: Settings,
    *,
    clock: Clock | None = None,
    backends: Mapping[str, LLMBackend] | None = None,
    journal: bool = True,
    encoder: Encoder | None = None,
    persist: bool = True,
    resume: bool = True,
    run: str | None = None,
    chat: bool = True,
) -> AsyncIterator[System]:
    """Starts every actor, restoring memory from storage, and (if `resume`, as a server does;
    not replay, which repeats what the journal says) reads again the files whose reading the
    last run's end cut short; on exit saves the grid and the memory actor's state (unless not
    `persist`: the CLI beside a server), writes the journal's final state and stops them.
    Without `chat` (`mem8 mcp`: memory only) no persona actor starts and no backend is chosen."""
    clock = clock or WallClock()
    if encoder is None:
        encoder = await trio.to_thread.run_sync(
            open_encoder, settings.encoder, settings.encoder_threads
        )
    if not chat:
        backends = {}
    chosen = dict(backends) if backends is not None else await choose_backends(settings)
    given = backends is not None  # else each persona's Ray worker chooses its backend
    placed = settings.runtime == "ray"  # a persona placed there starts its own backend
    recipes = {  # how a Ray worker builds each persona
        pid: _persona_recipe(persona, chosen.get(pid) if given else None, settings, encoder.name)
        for pid, persona in settings.personas.items()
        if chat and placed
    }
    here = [b for pid, b in chosen.items() if not placed or recipes.get(pid) is None]
    for backend in {id(b): b for b in here}.values():
        await backend.start()
    store = await trio.to_thread.run_sync(MemoryStore.open, Path(settings.storage))
    placer = Placer(encoder.dimensions, settings.grid_size)
    keys = KeyRing(Path(settings.storage))
    metrics = Metrics()
    try:
        if persist:  # a server brings its store to its encoder; the CLI beside it must not
            await trio.to_thread.run_sync(follow_encoder, store, encoder, placer)
        else:
            check_encoder(store, encoder)
        async with _placement(settings) as placement, trio.open_nursery() as nursery:
            supervisor = Supervisor(
                nursery,
                ask_timeout=settings.ask_timeout,
                mailbox_size=settings.mailbox_size,
                wire="msgpack" if settings.actor_wire == "msgpack" else "objects",
                placement=placement,
            )
            sources: dict[str, ActorRef] = {}  # whose state a journal snapshot holds
            journal_ref = (
                _start_journal(supervisor, settings, clock, encoder, sources, run)
                if journal
                else None
            )
            grid = _start_grid(supervisor, settings, encoder.dimensions, placer.packet_sigma())
            snapshots = settings.journal_dir() if journal_ref is not None else None
            # the first start restores through Recollect, below; a restart after a crash
            # carries on the crashed actor's windows, tallies and commit count
            last: list[MemoryActor] = []

            def memory_actor() -> MemoryActor:
                actor = MemoryActor(
                    store,
                    encoder,
                    placer,
                    grid,
                    journal_ref,
                    snapshots,
                    window_limits(settings),
                    settings.idempotency_seconds,
                    metrics=metrics,
                    restarted=bool(last),
                    carried=last[0].saved() if last else None,
                )
                last[:] = [actor]
                return actor

            memory = supervisor.start("memory", memory_actor)
            personas = {
                pid: supervisor.start(
                    f"persona:{pid}",
                    lambda p=persona: PersonaActor(  # type: ignore[misc]
                        p, chosen[p.id], memory, settings.memory_budget, encoder, metrics
                    ),
                    recipe=recipes.get(pid),
                )
                for pid, persona in settings.personas.items()
                if chat
            }
            sources["memory"] = memory
            hearing, reading = _start_senses(supervisor, settings, encoder, memory, clock)
            system = System(
                settings,
                clock,
                supervisor,
                personas,
                chosen,
                journal_ref,
                memory,
                grid,
                store,
                encoder,
                hearing,
                reading,
                supervisor.start("encoding", lambda: EncodingActor(encoder)),
                keys,
                metrics,
            )
            if placement is not None:  # up before the first ask, whose timer would be running
                await placement.started(supervisor.placed)
            await restore_grid(system)
            # a server drops what it resumed from (the next clean stop saves it again); the CLI
            # beside a running server leaves it alone
            await system.memory.ask(Resume(new_request_id(), clear=persist), Ack)
            if journal_ref is not None:  # the state this run starts from, as recovered
                await journal_ref.ask(JournalStart(new_request_id()), Ack, timeout=math.inf)
            if persist and resume:  # files whose reading the last run's end cut short
                await reading.ask(ReadAgain(new_request_id()), Ack, timeout=math.inf)
            try:
                yield system
            finally:
                with trio.CancelScope(shield=True):
                    await _close(system, persist)
                nursery.cancel_scope.cancel()
    finally:
        keys.close()
        store.close()


def window_limits(settings: Settings) -> WindowLimits:
    return WindowLimits(
        settings.window_conversations, settings.window_chars, settings.window_idle_seconds
    )


def _start_senses(
    supervisor: Supervisor, settings: Settings, encoder: Encoder, memory: ActorRef, clock: Clock
) -> tuple[ActorRef, ActorRef]:
    """The sensory channels; their models and packages load on first use, so a server
    without them starts and answers those routes with an error naming what is missing."""
    transcriber = WhisperTranscriber(settings.audio_threads)
    limits = documents.Limits(
        seconds=settings.extract_seconds, memory=settings.extract_memory_mb << 20
    )
    hearing = supervisor.start(
        "senses:hearing", lambda: HearingActor(transcriber, encoder, memory, clock)
    )
    starts = itertools.count()  # a restarted reader reads again the files its crash cut short
    reading = supervisor.start(
        "senses:reading",
        lambda: ReadingActor(
            limits, encoder, memory, settings.file_max_chunks, restarted=next(starts) > 0
        ),
    )
    return hearing, reading


def _start_grid(
    supervisor: Supervisor, settings: Settings, dimensions: int, sigma: float
) -> ActorRef:
    per_side = settings.grid_tiles

    def region(i: int, tile: Tile) -> Callable[[], GridRegionActor]:
        return lambda: GridRegionActor(f"region:{i}", tile, dimensions, sigma)

    refill = partial(_regrid, supervisor)
    regions = [
        supervisor.start(
            f"region:{i}",
            region(i, tile),
            refill,
            Recipe(partial(_region_elsewhere, i, tile, dimensions, sigma)),
        )
        for i, tile in enumerate(tiles(settings.grid_size, per_side))
    ]
    return supervisor.start(
        "grid", lambda: GridActor(settings.grid_size, per_side, regions, sigma), refill
    )


@asynccontextmanager
async def _placement(settings: Settings) -> AsyncIterator[Placement | None]:
    """Where grid regions and personas run: here, or (runtime ray) in a Ray cluster's actors,
    the memory actor, its store and the journal staying here."""
    if settings.runtime != "ray":
        yield None
        return
    from mem8.actors.ray_host import RayPlacement, joined

    with joined(settings.ray_address):
        yield RayPlacement(settings.ask_timeout, settings.mailbox_size)


async def _region_elsewhere(
    i: int, tile: Tile, dimensions: int, sigma: float, refs: Mapping[str, ActorRef]
) -> Actor:
    return GridRegionActor(f"region:{i}", tile, dimensions, sigma)


def _persona_recipe(
    persona: Persona, backend: LLMBackend | None, settings: Settings, encoder: str
) -> Recipe | None:
    """How another process builds the persona: with a copy of the backend given, or one chosen
    there (None given); none if the backend cannot travel, and the persona stays here."""
    if backend is not None and not backend.travels:
        return None
    return Recipe(partial(_persona_elsewhere, persona, backend, settings, encoder), ("memory",))


async def _persona_elsewhere(
    persona: Persona,
    backend: LLMBackend | None,
    settings: Settings,
    encoder: str,
    refs: Mapping[str, ActorRef],
) -> Actor:
    """A persona in another process: its backend a copy of the one given, else chosen there as
    the server chooses; its encoder opened there by name; its metrics its own (not /metrics)."""
    if backend is None:
        backend = (await choose_backends(settings))[persona.id]
    await backend.start()
    memory, share = refs["memory"], settings.memory_budget
    encoding = open_named(encoder, settings.encoder_threads)
    return PersonaActor(persona, backend, memory, share, encoding, Metrics())


async def _regrid(supervisor: Supervisor) -> None:
    """A grid actor came back empty from a crash: the memory actor fills the grid again from
    the store (else recall finds nothing of what it held until the server restarts)."""
    try:
        await supervisor.refs["memory"].tell(Regrid(new_request_id()))
    except errors.Mem8Error as error:  # the memory actor is down or stopping: nothing to fill
        log.warning("grid not refilled after a restart: %s", error)


async def restore_grid(system: System) -> None:
    recollect = Recollect(new_request_id(), system.settings.grid_size, system.settings.grid_tiles)
    await system.memory.ask(recollect, Ack, timeout=math.inf)  # a large store takes a while


def _start_journal(
    supervisor: Supervisor,
    settings: Settings,
    clock: Clock,
    encoder: Encoder,
    sources: dict[str, ActorRef],
    run: str | None,
) -> ActorRef | None:
    directory = settings.journal_dir()
    if directory is None:
        return None
    header = journal_header(settings, clock, encoder, run)
    return supervisor.start(
        "journal",
        lambda: JournalActor(
            directory,
            header,
            segment_bytes=settings.journal_segment_bytes,
            keep_segments=settings.journal_keep_segments,
            sources=sources,
            snapshot_bytes=settings.journal_snapshot_bytes,
        ),
    )


async def _close(system: System, persist: bool) -> None:
    try:
        if persist:
            settings = system.settings
            save = Persist(new_request_id(), settings.grid_size, settings.grid_tiles)
            await system.memory.ask(save, Ack, timeout=math.inf)  # a large field takes a while
        digests = await system.state_digests()
    except errors.Mem8Error as error:
        log.warning("could not save the state at stop: %s", error)
        # the journal is still closed (its file with it), its digests saying why they are not
        # there: replay then reports the final state as differing, which it does
        digests = {"memory": f"unavailable: {error}", "grid": "unavailable"}
    try:
        if system.journal is not None:
            await system.journal.ask(JournalClose(new_request_id(), digests), Ack)
    except errors.Mem8Error as error:
        log.warning("could not close the journal cleanly: %s", error)
    for backend in {id(b): b for b in system.backends.values()}.values():
        await backend.aclose()
