"""The running system: personas and the journal as actors under one supervisor."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from mem8 import errors
from mem8.actors.journal import JournalActor
from mem8.actors.messages import Ack, Digest, JournalClose, JournalFlush, StateDigest
from mem8.actors.persona import PersonaActor
from mem8.actors.runtime import ActorRef, Supervisor
from mem8.backends.base import LLMBackend
from mem8.backends.select import choose_backends
from mem8.clock import Clock, WallClock
from mem8.config import Settings

log = logging.getLogger(__name__)


@dataclass
class System:
    settings: Settings
    clock: Clock
    supervisor: Supervisor
    personas: dict[str, ActorRef]
    backends: Mapping[str, LLMBackend]
    journal: ActorRef | None

    def persona(self, model: str) -> ActorRef:
        ref = self.personas.get(model)
        if ref is None:
            raise errors.UnknownModel(model)
        return ref

    async def state_digests(self) -> dict[str, str]:
        """Each persona's state hash: replay compares these."""
        digests = {}
        for name, ref in sorted(self.personas.items()):
            digests[name] = (await ref.ask(StateDigest(uuid.uuid4().hex), Digest)).sha256
        return digests

    async def flush_journal(self) -> None:
        if self.journal is not None:
            await self.journal.ask(JournalFlush(uuid.uuid4().hex), Ack)


def journal_header(settings: Settings, clock: Clock) -> dict[str, Any]:
    """What replay needs to rebuild the same system: the personas and the start time."""
    return {
        "started": clock.now(),
        "personas": {pid: p.to_wire() for pid, p in settings.personas.items()},
    }


@asynccontextmanager
async def open_system(
    settings: Settings,
    *,
    clock: Clock | None = None,
    backends: Mapping[str, LLMBackend] | None = None,
    journal: bool = True,
) -> AsyncIterator[System]:
    """Starts every actor; on exit writes the journal's final state and stops them."""
    clock = clock or WallClock()
    chosen = dict(backends) if backends is not None else await choose_backends(settings)
    for backend in {id(b): b for b in chosen.values()}.values():
        await backend.start()
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(
            nursery, ask_timeout=settings.ask_timeout, mailbox_size=settings.mailbox_size
        )
        sources: dict[str, ActorRef] = {}  # whose state a journal snapshot holds
        journal_ref = _start_journal(supervisor, settings, clock, sources) if journal else None
        personas = {
            pid: supervisor.start(
                f"persona:{pid}",
                lambda p=persona: PersonaActor(p, chosen[p.id], clock, journal_ref),  # type: ignore[misc]
            )
            for pid, persona in settings.personas.items()
        }
        sources.update(personas)
        system = System(settings, clock, supervisor, personas, chosen, journal_ref)
        try:
            yield system
        finally:
            with trio.CancelScope(shield=True):
                await _close(system)
            nursery.cancel_scope.cancel()


def _start_journal(
    supervisor: Supervisor, settings: Settings, clock: Clock, sources: dict[str, ActorRef]
) -> ActorRef | None:
    directory = settings.journal_dir()
    if directory is None:
        return None
    header = journal_header(settings, clock)
    return supervisor.start(
        "journal",
        lambda: JournalActor(
            directory,
            header,
            segment_bytes=settings.journal_segment_bytes,
            keep_segments=settings.journal_keep_segments,
            sources=sources,
        ),
    )


async def _close(system: System) -> None:
    try:
        digests = await system.state_digests()
        if system.journal is not None:
            await system.journal.ask(JournalClose(uuid.uuid4().hex, digests), Ack)
    except errors.Mem8Error as error:
        log.warning("could not close the journal cleanly: %s", error)
    for backend in {id(b): b for b in system.backends.values()}.values():
        await backend.aclose()
