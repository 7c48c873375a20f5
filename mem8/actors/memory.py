"""The memory actor: the one sequencer of everything that reads or changes memory.

Requests begin here (perceive, recall, the conversation's window) and end here (persist, imprint,
reinforce, journal). Because one mailbox orders them all, the journal records them in the order
they took effect, and replay can follow that order exactly."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
import trio

from mem8 import errors, passages, supersession
from mem8.actors.messages import (
    Ack,
    Begin,
    Begun,
    Chat,
    Commit,
    Counted,
    Digest,
    ErrorReport,
    FileAsk,
    FileForget,
    FileKeep,
    FilePage,
    FileRead,
    FileReread,
    FilesUnread,
    GridExport,
    GridField,
    GridForget,
    GridImprint,
    GridImprinted,
    GridRecall,
    GridRecalled,
    GridReinforce,
    GridReset,
    GridSupersede,
    Hit,
    IdempotentFind,
    IdempotentFound,
    JournalAppend,
    MemoryCount,
    MemoryForget,
    MemoryPage,
    MemoryQuery,
    MemorySearch,
    MemoryTenants,
    Outcome,
    Percept,
    Persist,
    RecalledMemory,
    Recollect,
    Regrid,
    Reinforcement,
    Remember,
    Remembered,
    Restore,
    Resume,
    Snapshot,
    SnapshotState,
    StateDigest,
    StoredAsk,
    StoredChange,
    StoredPage,
    Supersession,
    Tenanted,
    last_user_text,
)
from mem8.actors.percepts import vectors_of
from mem8.actors.runtime import Actor, ActorRef, Reply, handles, new_request_id
from mem8.emotion import amplitude, perceive
from mem8.encoders.base import Encoder
from mem8.grid import kernels
from mem8.grid.dynamics import decay_constant, reinforced_tau, strong_enough
from mem8.grid.placement import Placer
from mem8.memory import Memory, Modality, memory_to_wire
from mem8.metrics import Metrics
from mem8.scope import EVERY_PERSONA, Audience, Scope
from mem8.storage.files import MemoryTrace, StoredFile, file_status
from mem8.storage.sqlite import GRID_STATE, MemoryStore
from mem8.storage.stored import StoredExchange
from mem8.windows import WindowLimits, Windows

ACTOR_STATE = "actor:memory"  # the row holding this actor's state saved at the last clean stop
RESTORE_BATCH = 500
TALLIES = ("answered", "subconscious", "failed", "cancelled", "prompt_tokens", "completion_tokens")
log = logging.getLogger(__name__)
BINDING_WINDOW = 2.0  # seconds within which percepts are bound
RECALL_K = 5
CONTEXT_SPAN = 1800.0  # seconds: a turn within this of its scope's last one continues it
SUPERSEDED_STEPS = 3  # how far recall follows a superseded memory to the current one


class Binder:
    """Percepts of one user within +-2 s of each other belong together: they share the phase
    of the first of them, so their waves add up."""

    def __init__(self) -> None:
        self.recent: deque[Memory] = deque()

    def bind(self, memories: list[Memory]) -> None:
        now = max(m.created for m in memories)
        while self.recent and self.recent[0].created < now - BINDING_WINDOW:
            self.recent.popleft()
        user = (memories[0].scope.tenant, memories[0].scope.user)
        window = [m for m in self.recent if (m.scope.tenant, m.scope.user) == user] + memories
        window.sort(key=lambda m: (m.created, m.id))
        times = np.array([m.created for m in window], np.float64)
        groups = kernels.temporal_bind(times, BINDING_WINDOW)
        new = {id(m) for m in memories}  # by identity: comparing memories compares their vectors
        first: dict[int, Memory] = {}
        for memory, group in zip(window, groups.tolist(), strict=True):
            leader = first.setdefault(group, memory)
            if id(memory) in new and leader is not memory:
                memory.phase = leader.phase
        self.recent.extend(memories)


class MemoryActor(Actor):
    def __init__(
        self,
        store: MemoryStore,
        encoder: Encoder,
        placer: Placer,
        grid: ActorRef,
        journal: ActorRef | None,
        snapshots: Path | None = None,
        windows: WindowLimits | None = None,
        idempotency_seconds: float = 86400.0,
        *,
        metrics: Metrics,
        restarted: bool = False,
        carried: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.metrics = metrics
        self.restarted = restarted  # by its supervisor, after a crash: recount from the store
        self.snapshots = snapshots  # where a snapshot's copy of the store goes (the journal's)
        self.store = store
        self.encoder = encoder
        self.placer = placer
        self.grid = grid
        self.journal = journal
        self.seq = 0  # commits so far: replay skips those a snapshot already holds
        self.binder = Binder()
        self.population: Counter[Scope] = Counter()  # memories per scope
        # Per persona: answered, subconscious, failed, cancelled, prompt and completion tokens.
        # Kept here, in commit order, so that one snapshot holds them consistently with seq.
        self.tallies: dict[str, dict[str, int]] = {}
        self.window_limits = windows or WindowLimits()
        self.windows = Windows(self.window_limits)
        self.idempotency_seconds = idempotency_seconds  # how long a retry gets the first answer
        # Per scope, its latest memory: the context the next one is encoded with.
        self.latest: dict[Scope, Memory] = {}
        if carried is not None:  # what the actor this one replaces after its crash held
            self._take(carried)

    @handles(Begin)
    async def on_begin(self, message: Begin, reply: Reply) -> None:
        chat = message.chat
        holds = self._holds(chat.tenant, chat.user, chat.persona)  # else nothing to recall
        if holds and message.vector is None:  # the sender encodes it: encoding here held us
            await reply.send(Begun(message.request_id, [], 1.0, [], [], vector_wanted=True))
            return
        await self._record(
            "chat", {"message": chat.to_map(), "conversation": message.conversation}, chat.arrival
        )
        text = last_user_text(chat.messages)
        recalled = []
        if holds and message.vector is not None:
            vector = np.frombuffer(message.vector, "<f4")
            with self.metrics.recall_seconds.time():
                recalled = await self._recall(text, vector, chat, RECALL_K)
            self.metrics.memories.labels("recalled").inc(len(recalled))
        best = max((r.resonance for r in recalled), default=0.0)
        emotion = perceive(text)
        window = self.windows.get(message.conversation)
        await reply.send(
            Begun(
                message.request_id,
                [emotion.valence, emotion.arousal, emotion.dominance],
                float(min(1.0, max(0.0, 1.0 - best))),
                recalled,
                window,
            )
        )

    async def _recall(
        self, text: str, vector: npt.NDArray[np.float32], chat: Chat, k: int
    ) -> list[RecalledMemory]:
        ask = recall_request(text, vector, chat.tenant, chat.user, chat.persona, k, chat.arrival)
        hits = (await self.grid.ask(ask, GridRecalled)).hits
        return [
            recalled_memory(memory, text, score, float(memory.vector @ vector))
            for memory, score in self._current_ranked(hits, chat.tenant)
        ]

    def _current_ranked(self, hits: list[Hit], tenant: str) -> list[tuple[Memory, float]]:
        """The recalled memories and their scores, best first, each superseded one right after
        what superseded it (which takes its place and score): the current belief comes first."""
        ranked: dict[str, tuple[Memory, float]] = {}
        memories = self._load([hit.memory_id for hit in hits], tenant)
        for (_, score), memory in zip(hits, memories, strict=True):
            for shown in self._current_first(memory, tenant) if memory is not None else []:
                ranked.setdefault(shown.id, (shown, score))
        return list(ranked.values())

    def _current_first(self, memory: Memory, tenant: str) -> list[Memory]:
        """A recalled memory, preceded by what superseded it (and what superseded that, a few
        steps at most): the current belief comes first, the outdated one is still shown."""
        chain = [memory]
        while chain[0].superseded_by and len(chain) <= SUPERSEDED_STEPS:
            newer = self.store.get(chain[0].superseded_by, tenant)
            if newer is None:
                break
            chain.insert(0, newer)
        return chain

    async def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """The encoder's vectors, computed on a worker thread: a semantic encoder takes
        milliseconds a text, which the event loop (HTTP, every actor) must not wait for."""
        return await vectors_of(self.encoder, texts)

    def _load(self, ids: list[str], tenant: str) -> list[Memory | None]:
        """Keyed reads, inline: a page-cache read by primary key costs less than a thread hop.
        (Writes, which wait for the disk, go to a worker thread.)"""
        return [self.store.get(memory_id, tenant) for memory_id in ids]

    @handles(Commit)
    async def on_commit(self, message: Commit, reply: Reply) -> None:
        message = self._refused(message, reply)
        self.seq += 1
        self._tally(message)
        answered = message.outcome.error is None
        if answered:  # the window last: a commit that fails on the way leaves none
            await self._keep_exchange(message)
            self._remember_window(message)
        body = {
            "request_id": message.request_id,
            "persona": message.persona,
            "seq": self.seq,
            "interest": message.interest,
            "imprinted": answered and message.imprint,
            "outcome": message.outcome.to_map(),
            "response_sha256": message.response_sha256,
        }
        await self._record("commit", body, message.arrival)
        await reply.send(Ack(message.request_id))

    def _tally(self, message: Commit) -> None:
        tally = self.tallies.setdefault(message.persona, dict.fromkeys(TALLIES, 0))
        error, finish = message.outcome.error, message.outcome.finish
        if error is None:
            assert finish is not None
            tally["answered"] += 1
            tally["subconscious"] += message.answered_by == "subconscious"
            tally["prompt_tokens"] += finish.prompt_tokens
            tally["completion_tokens"] += finish.completion_tokens
        else:
            tally["cancelled" if error.name == "GenerationCancelled" else "failed"] += 1

    def _refused(self, message: Commit, reply: Reply) -> Commit:
        """The commit as it takes effect: failed, so that nothing of it is kept, if its caller
        stopped waiting before it got here (the client was told of a failure) or if its
        Idempotency-Key was answered already (a retry racing the first request)."""
        if reply.abandoned:
            why = ErrorReport("ActorUnavailable", "the request was abandoned before it was stored")
        elif self._answered_already(message):
            why = ErrorReport(
                "IdempotencyConflict",
                "a request with this Idempotency-Key was answered already",
            )
        else:
            return message
        outcome = Outcome(message.outcome.text, None, why)
        return replace(message, outcome=outcome, response_sha256=outcome.digest(), passages=[])

    def _answered_already(self, message: Commit) -> bool:
        key = message.idempotency
        if key is None or message.outcome.error is not None:
            return False
        since = message.arrival - self.idempotency_seconds
        return self.store.idempotency.find(message.tenant, key.key, since) is not None

    def _key_answer(self, message: Commit) -> Callable[[], None] | None:
        """The write that keeps an answered request's Idempotency-Key with what it answered,
        for its retries (None without a key)."""
        key = message.idempotency
        if key is None:
            return None
        finish = message.outcome.finish
        assert finish is not None
        answer = {
            "request_id": message.request_id,
            "persona": message.persona,
            "arrival": message.arrival,
            "text": "".join(message.outcome.text),
            "calls": message.outcome.tool_calls(),
            "finish": list(finish),
            "answered_by": message.answered_by,
            "interest": message.interest,
            "conscious": message.imprint,
        }
        packed = msgpack.packb(answer, use_bin_type=True)
        expired = message.arrival - self.idempotency_seconds
        return lambda: self.store.idempotency.keep(
            message.tenant, key.key, key.request_sha256, message.arrival, packed, expired
        )

    @handles(StoredAsk)
    async def on_stored_ask(self, message: StoredAsk, reply: Reply) -> None:
        shelf = self.store.stored
        if message.id is not None:
            found = [shelf.get(message.id, message.tenant, message.kind)]  # a keyed read
            await reply.send(StoredPage(message.request_id, [found[0].to_wire()], False))
            return
        page, more = await trio.to_thread.run_sync(
            lambda: shelf.list(
                message.tenant,
                message.kind,
                model=message.model,
                metadata=message.metadata,
                limit=message.limit,
                after=message.after,
                descending=message.descending,
            )
        )
        await reply.send(StoredPage(message.request_id, [s.to_wire() for s in page], more))

    @handles(StoredChange)
    async def on_stored_change(self, message: StoredChange, reply: Reply) -> None:
        """A stored exchange's metadata changed or the exchange deleted; journaled (it changes
        the store), without a commit count: it changes no memory."""
        shelf = self.store.stored
        if message.forget:
            await trio.to_thread.run_sync(shelf.delete, message.id, message.tenant, message.kind)
            shown = []
        else:
            changed = await trio.to_thread.run_sync(
                shelf.set_metadata, message.id, message.tenant, message.kind, message.metadata
            )
            shown = [changed.to_wire()]
        await self._record("stored", {"message": message.to_map()}, message.at)
        await reply.send(StoredPage(message.request_id, shown, False))

    @handles(IdempotentFind)
    async def on_idempotent_find(self, message: IdempotentFind, reply: Reply) -> None:
        since = message.now - self.idempotency_seconds
        kept = self.store.idempotency.find(message.tenant, message.key, since)  # a keyed read
        sha256, answer = kept if kept is not None else ("", b"")
        await reply.send(IdempotentFound(message.request_id, sha256, answer))

    def _remember_window(self, message: Commit) -> None:
        self.windows.extend(message.conversation, message.exchange, message.arrival)

    async def _keep_exchange(self, message: Commit) -> None:
        """What an answered request leaves, durable in one transaction (one wait for the disk,
        and a retry's key never without the memories it answered with), then in the grid: if
        it was imprinted, both sides of the exchange (cut into passages and encoded by the
        sender, bound to each other and to what the same user perceived within +-2 s) and
        the facts the user's words supersede; the recalled memories' reinforcement; the
        Idempotency-Key's answer."""
        kept: list[Memory] = []
        pairs: list[tuple[str, str]] = []
        if message.imprint:
            scope = Scope(message.tenant, message.user, message.persona)
            made = await self._memories_of(
                message.request_id, scope, message.passages, message.interest
            )
            kept = self._prepared(made)
            said = [m for m in kept if m.source.endswith(":user")]
            pairs = self._supersessions(said, message.recalled, message.tenant)
        updates = self._reinforcements(message)
        keep_key = self._key_answer(message)
        stored = _stored(message)
        rows = [(memory_id, recalls, message.arrival, tau) for memory_id, recalls, tau in updates]

        def store() -> None:
            with self.store.batch():
                if kept:
                    self.store.add(kept)
                if pairs:
                    self.store.supersede(pairs)
                if rows:
                    self.store.record_recalls(rows)
                if keep_key is not None:
                    keep_key()
                if stored is not None:
                    self.store.stored.add(stored)

        await trio.to_thread.run_sync(store)
        await self._imprinted(kept)
        if pairs:
            superseded = [Supersession(old, True) for old, _ in pairs]
            await self.grid.ask(GridSupersede(new_request_id(), superseded), Ack)
        if updates:
            await self.grid.ask(GridReinforce(new_request_id(), updates, message.arrival), Ack)

    def _supersessions(
        self, said: list[Memory], recalled: list[str], tenant: str
    ) -> list[tuple[str, str]]:
        """(old, new): the facts among the memories the user's words recalled that what they
        just said replaces (kept, but weighed less and shown as outdated)."""
        pairs = []
        for old in self._load(recalled, tenant):
            if old is None or old.superseded_by:
                continue
            new = next(
                (
                    new
                    for new in said
                    if old.created < new.created
                    and supersession.supersedes(_statement(new), _statement(old))
                ),
                None,
            )
            if new is not None:
                pairs.append((old.id, new.id))
        return pairs

    @handles(Remember)
    async def on_remember(self, message: Remember, reply: Reply) -> None:
        """Percepts from senses, simulations and benchmarks: kept like a conversation's turns."""
        self.seq += 1
        scope = Scope(message.tenant, message.user, message.persona)
        kept = await self._perceive(message.request_id, scope, message.percepts, message.importance)
        body = {"message": message.to_map(), "seq": self.seq}
        await self._record("remember", body, kept[-1].created if kept else 0.0)
        await reply.send(Remembered(message.request_id, [m.id for m in kept]))

    async def _perceive(
        self,
        request_id: str,
        scope: Scope,
        percepts: list[Percept],
        importance: float,
        file_id: str | None = None,
    ) -> list[Memory]:
        """Percepts kept as memories: durable, then imprinted."""
        kept = self._prepared(await self._memories_of(request_id, scope, percepts, importance))
        if kept:
            await trio.to_thread.run_sync(lambda: self.store.add(kept, file_id=file_id))
        await self._imprinted(kept)
        return kept

    async def _memories_of(
        self, request_id: str, scope: Scope, percepts: list[Percept], importance: float
    ) -> list[Memory]:
        """The percepts that hold text as memories (encoded here if the sender did not)."""
        percepts = [p for p in percepts if p.text.strip()]
        if all(p.vector is not None for p in percepts):  # cut and encoded by the sender
            vectors = np.array(
                [np.frombuffer(p.vector or b"", "<f4") for p in percepts], np.float32
            ).reshape(len(percepts), self.encoder.dimensions)
        else:
            percepts = [passage for percept in percepts for passage in percept.passages()]
            vectors = await self._embed([p.text for p in percepts])
        memories = [
            self._memory(
                f"mem-{request_id}-{i}",
                percept.text,
                percept.source,
                percept.modality,
                scope,
                percept.created,
                importance,
                vector,
            )
            for i, (percept, vector) in enumerate(zip(percepts, vectors, strict=True))
        ]
        return memories

    @handles(FileKeep)
    async def on_file_keep(self, message: FileKeep, reply: Reply) -> None:
        """An upload: the file is stored first (its memories refer to it), then what was read
        from it is kept, then it is marked processed. Journaled without its bytes."""
        self.seq += 1
        final = StoredFile.from_wire(message.file)
        stored = replace(final, status="uploaded") if final.status == "processed" else final
        shelf = self.store.files
        await trio.to_thread.run_sync(shelf.add, stored, message.content)
        scope = Scope(stored.tenant, stored.user, stored.persona)
        kept = await self._perceive(
            message.request_id, scope, message.percepts, message.importance, stored.id
        )
        if final.status != stored.status:
            await trio.to_thread.run_sync(shelf.set_status, stored.id, final.status, None)
        journaled = {**message.to_map(), "content": b""}
        await self._record(
            "file", {"message": journaled, "seq": self.seq}, float(stored.created_at)
        )
        await reply.send(Remembered(message.request_id, [m.id for m in kept]))

    @handles(FileRead)
    async def on_file_read(self, message: FileRead, reply: Reply) -> None:
        """A batch read from a file in the background: kept as its memories, then the file's
        status says how far reading has come. Journaled with the batch, like Remember."""
        shelf = self.store.files
        stored = shelf.get(message.file_id, message.tenant)  # NotFound: deleted meanwhile
        self.seq += 1
        scope = Scope(stored.tenant, stored.user, stored.persona)
        kept = await self._perceive(
            message.request_id, scope, message.percepts, message.importance, stored.id
        )
        await trio.to_thread.run_sync(
            shelf.set_status, stored.id, file_status(message.status), message.details
        )
        body = {"message": message.to_map(), "seq": self.seq}
        await self._record("file_read", body, float(stored.created_at))
        await reply.send(Remembered(message.request_id, [m.id for m in kept]))

    @handles(FileReread)
    async def on_file_reread(self, message: FileReread, reply: Reply) -> None:
        """A file whose reading a restart cut short forgets what was read of it, to be read
        again from the start."""
        shelf = self.store.files
        stored = shelf.get(message.file_id, message.tenant)
        self.seq += 1
        memories = shelf.memories(stored.id)
        await trio.to_thread.run_sync(shelf.forget_memories, stored.id)
        for memory in memories:
            await self._unlearn(memory)
        details = "read into memory again from the start: a restart cut its reading short"
        await trio.to_thread.run_sync(shelf.set_status, stored.id, "uploaded", details)
        body = {"message": message.to_map(), "seq": self.seq}
        await self._record("file_reread", body, float(stored.created_at))
        await reply.send(Ack(message.request_id))

    @handles(FilesUnread)
    async def on_files_unread(self, message: FilesUnread, reply: Reply) -> None:
        unread = await trio.to_thread.run_sync(self.store.files.unread)
        await reply.send(FilePage(message.request_id, [f.to_wire() for f in unread], False))

    @handles(FileAsk)
    async def on_file_ask(self, message: FileAsk, reply: Reply) -> None:
        shelf = self.store.files
        if message.file_id is None:
            found, more = shelf.list(
                message.tenant,
                purpose=message.purpose,
                limit=message.limit,
                after=message.after,
                descending=message.descending,
            )
            page = FilePage(message.request_id, [f.to_wire() for f in found], more)
        elif message.content:
            content = await trio.to_thread.run_sync(shelf.content, message.file_id, message.tenant)
            page = FilePage(message.request_id, [], False, content)
        else:
            stored = shelf.get(message.file_id, message.tenant)
            page = FilePage(message.request_id, [stored.to_wire()], False)
        await reply.send(page)

    @handles(FileForget)
    async def on_file_forget(self, message: FileForget, reply: Reply) -> None:
        """Deletes the file (the store cascades to its memories), then takes each memory out of
        the grid and out of this actor's counts."""
        shelf = self.store.files
        shelf.get(message.file_id, message.tenant)  # NotFound for another tenant's file
        memories = shelf.memories(message.file_id)
        await trio.to_thread.run_sync(shelf.delete, message.file_id, message.tenant)
        for memory in memories:
            await self._unlearn(memory)
        await self._record(
            "file_forget", {"tenant": message.tenant, "file_id": message.file_id}, message.at
        )
        await reply.send(Ack(message.request_id))

    def _prepared(self, memories: list[Memory]) -> list[Memory]:
        """Those strong enough to keep, bound to what the same user perceived within +-2 s and
        chained to their scope's latest turns."""
        memories = [m for m in memories if strong_enough(m.amplitude, m.importance)]
        if memories:
            self.binder.bind(memories)
        for memory in memories:
            self._follow(memory)
        return memories

    async def _imprinted(self, memories: list[Memory]) -> None:
        """Memories already durable, counted and imprinted in the grid."""
        if not memories:
            return
        self.population[memories[0].scope] += len(memories)
        self.metrics.memories.labels("imprinted").inc(len(memories))
        wires = [memory_to_wire(m) for m in memories]
        now = max(m.created for m in memories)
        # The associations the grid answers with are not kept: nothing reads them (yet).
        await self.grid.ask(GridImprint(new_request_id(), wires, now), GridImprinted)

    def _follow(self, memory: Memory) -> None:
        """Links a memory to its scope's latest one, if that was within CONTEXT_SPAN."""
        before = self.latest.get(memory.scope)
        if before is not None and 0 <= memory.created - before.created <= CONTEXT_SPAN:
            memory.context, memory.follows = before.text, before.id
        self.latest[memory.scope] = memory

    def _memory(
        self,
        memory_id: str,
        text: str,
        source: str,
        modality: Modality,
        scope: Scope,
        created: float,
        importance: float,
        vector: npt.NDArray[np.float32],
    ) -> Memory:
        emotion = perceive(text)
        place = self.placer.place(vector, text, modality)
        return Memory(
            id=memory_id,
            text=text,
            source=source,
            modality=modality,
            scope=scope,
            created=created,
            emotion=emotion,
            importance=importance,
            band=place.band,
            phase=place.phase,
            tau=decay_constant(emotion.valence, emotion.arousal, importance),
            x=place.x,
            y=place.y,
            amplitude=amplitude(emotion),
            vector=vector,
        )

    def _reinforcements(self, message: Commit) -> list[Reinforcement]:
        """Each recalled memory: one more recall, a longer decay constant."""
        return [
            Reinforcement(m.id, m.recalls + 1, reinforced_tau(m.tau, m.recalls + 1))
            for m in self._load(message.recalled, message.tenant)
            if m is not None
        ]

    async def started(self) -> None:
        """After a crash, the counts and chains that went with it, from the store: else every
        scope looks empty and recall skips it. (The grid kept its memories; the rolling windows
        and tallies, which the store holds only at a clean stop, start again.)"""
        if self.restarted:
            await trio.to_thread.run_sync(self._recount)
            log.warning("memory restarted: %d memories recounted", self.population.total())

    def _recount(self) -> None:
        for memory in self.store.iter_all():
            self.latest[memory.scope] = memory
            self.population[memory.scope] += 1

    @handles(Recollect)
    async def on_recollect(self, message: Recollect, reply: Reply) -> None:
        saved = await trio.to_thread.run_sync(self.store.get_state, GRID_STATE)
        field = saved_field(saved, message.grid_size, message.tiles) if saved else None
        await self._imprint_stored(field)
        await reply.send(Ack(message.request_id))

    @handles(Regrid)
    async def on_regrid(self, message: Regrid, reply: Reply) -> None:
        """A grid actor crashed and came back empty: the grid again from the store, while
        this actor's mailbox waits (a recall in between would find part of the memories)."""
        await self.grid.ask(GridReset(new_request_id()), Ack)
        await self._imprint_stored(None)
        await reply.send(Ack(message.request_id))

    async def _imprint_stored(self, field: GridField | None) -> None:
        """Every stored memory into the grid, and the field as saved (None: rebuilt from the
        memories' waves); the counts of each scope from them too."""
        stored = self.store.iter_all()  # read a batch at a time: a large store is not held twice
        self.population = Counter()
        while memories := await trio.to_thread.run_sync(
            lambda: list(itertools.islice(stored, RESTORE_BATCH))
        ):
            batch = [memory_to_wire(m) for m in memories]
            for memory in memories:
                self.latest[memory.scope] = memory
            self.population.update(memory.scope for memory in memories)
            imprint = GridImprint(new_request_id(), batch, batch[-1]["created"], wave=field is None)
            await self.grid.ask(imprint, GridImprinted)
        if field is not None:
            await self.grid.ask(field, Ack)
        log.info(
            "memory restored: %d memories (field %s)",
            self.population.total(),
            "as saved" if field is not None else "rebuilt from the memories",
        )

    @handles(MemoryQuery)
    async def on_query(self, message: MemoryQuery, reply: Reply) -> None:
        if message.memory_id is not None:
            found = self.store.get(message.memory_id, message.tenant)
            if found is None:
                raise errors.NotFound(f"No memory '{message.memory_id}'", param="memory_id")
            shown = await trio.to_thread.run_sync(self._shown, [found])
            await reply.send(MemoryPage(message.request_id, shown, False))
            return
        page = await trio.to_thread.run_sync(
            lambda: self.store.list(
                message.tenant,
                user=message.user,
                persona=message.persona,
                modality=message.modality,
                limit=message.limit + 1,
                after=message.after,
            )
        )
        shown = await trio.to_thread.run_sync(self._shown, page[: message.limit])
        await reply.send(MemoryPage(message.request_id, shown, len(page) > message.limit))

    def _shown(self, memories: list[Memory]) -> list[dict[str, Any]]:
        """Memories as the API shows them, each with the ids of those it superseded."""
        return [{**public_wire(m), "supersedes": self.store.superseded(m.id)} for m in memories]

    def _holds(self, tenant: str, user: str | None, persona: str | None) -> bool:
        """Whether any memory matches these filters (None: any user / any persona; a persona
        also sees its scope's memories shared with every persona)."""
        if user is not None and persona is not None:  # a request's own scope
            return (
                self.population[Scope(tenant, user, persona)] > 0
                or self.population[Scope(tenant, user, EVERY_PERSONA)] > 0
            )
        audience = Audience(tenant, user, persona)
        return any(count > 0 and audience.admits(scope) for scope, count in self.population.items())

    @handles(MemoryCount)
    async def on_count(self, message: MemoryCount, reply: Reply) -> None:
        audience = Audience(message.tenant, message.user, message.persona)
        count = sum(n for scope, n in self.population.items() if audience.admits(scope))
        await reply.send(Counted(message.request_id, count))

    @handles(MemoryTenants)
    async def on_tenants(self, message: MemoryTenants, reply: Reply) -> None:
        held: Counter[str] = Counter()
        for scope, count in self.population.items():
            held[scope.tenant] += count
        memories = {tenant: count for tenant, count in sorted(held.items()) if count > 0}
        await reply.send(Tenanted(message.request_id, memories))

    @handles(MemorySearch)
    async def on_search(self, message: MemorySearch, reply: Reply) -> None:
        if not self._holds(message.tenant, message.user, message.persona):
            await reply.send(MemoryPage(message.request_id, [], False))
            return
        (vector,) = await self._embed([message.query])
        ask = recall_request(
            message.query,
            vector,
            message.tenant,
            message.user,
            message.persona,
            message.limit,
            message.now,
        )
        with self.metrics.recall_seconds.time():
            hits = (await self.grid.ask(ask, GridRecalled)).hits
            ranked = self._current_ranked(hits, message.tenant)[: message.limit]
        self.metrics.memories.labels("recalled").inc(len(ranked))
        shown = await trio.to_thread.run_sync(self._shown, [m for m, _ in ranked])
        results = [{**wire, "score": s} for wire, (_, s) in zip(shown, ranked, strict=True)]
        await reply.send(MemoryPage(message.request_id, results, False))

    @handles(MemoryForget)
    async def on_forget(self, message: MemoryForget, reply: Reply) -> None:
        found = self.store.get(message.memory_id, message.tenant)
        forgotten = await trio.to_thread.run_sync(
            self.store.forget, message.memory_id, message.tenant
        )
        if not forgotten or found is None:
            raise errors.NotFound(f"No memory '{message.memory_id}'", param="memory_id")
        scope = found.scope
        await self._unlearn(
            MemoryTrace(
                found.id,
                scope.tenant,
                scope.user,
                scope.persona,
                found.text,
                found.context,
                found.created,
            )
        )
        await self._record(
            "forget", {"tenant": message.tenant, "memory_id": message.memory_id}, message.at
        )
        await reply.send(Ack(message.request_id))

    async def _unlearn(self, memory: MemoryTrace) -> None:
        """A memory deleted from the store leaves the grid and this actor's counts; what it
        superseded is current again."""
        reinstated = await trio.to_thread.run_sync(self.store.reinstate, memory.id)
        if reinstated:
            updates = [Supersession(memory_id, False) for memory_id in reinstated]
            await self.grid.ask(GridSupersede(new_request_id(), updates), Ack)
        key = Scope(memory.tenant, memory.user, memory.persona)
        self.population[key] -= 1
        self.metrics.memories.labels("forgotten").inc()
        latest = self.latest.get(key)
        if latest is not None and latest.id == memory.id:
            del self.latest[key]
        forget = GridForget(
            new_request_id(), memory.id, key, memory.text, memory.context, memory.created
        )
        await self.grid.ask(forget, Ack)

    async def _record(self, kind: str, body: dict[str, Any], at: float) -> None:
        if self.journal is not None:
            await self.journal.tell(JournalAppend(kind, at, body))

    @handles(StateDigest)
    async def on_state_digest(self, message: StateDigest, reply: Reply) -> None:
        grid = await self.grid.ask(StateDigest(new_request_id()), Digest)
        state = msgpack.packb([self.export(), grid.sha256], use_bin_type=True)
        await reply.send(Digest(message.request_id, "memory", hashlib.sha256(state).hexdigest()))

    @handles(Snapshot)
    async def on_snapshot(self, message: Snapshot, reply: Reply) -> None:
        """Everything replay needs to start here: windows, the store's copy, the field."""
        state = self.saved()
        if self.snapshots is not None and message.for_journal:
            name = message.store_name or f"store-{self.seq:012d}.db"
            await trio.to_thread.run_sync(self.store.copy_to, self.snapshots / name)
            field = await self.grid.ask(GridExport(new_request_id()), GridField)
            state["store"] = name
            state["grid"] = {
                "current": field.current,
                "previous": field.previous,
                "last_step": field.last_step,
            }
        await reply.send(SnapshotState(message.request_id, "memory", state))

    @handles(Restore)
    async def on_restore(self, message: Restore, reply: Reply) -> None:
        """Takes a snapshot's windows and commit count (the store and field come separately)."""
        self._take(message.state)
        await reply.send(Digest(message.request_id, "memory", ""))

    def _take(self, state: dict[str, Any]) -> None:
        self.seq = state["seq"]
        self.tallies = {p: dict(t) for p, t in state.get("tallies", {}).items()}
        self.windows = Windows.restored(
            self.window_limits, state["windows"], state.get("window_order")
        )

    def export(self) -> dict[str, Any]:
        """The state its hash covers: the windows' contents, not their times (so that a journal
        written before windows were bounded still verifies)."""
        return {
            "tallies": {p: dict(t) for p, t in sorted(self.tallies.items())},
            "seq": self.seq,
            "windows": self.windows.contents(),
        }

    def saved(self) -> dict[str, Any]:
        """The state a snapshot and a clean stop keep: with the windows' order and times."""
        return {**self.export(), "window_order": self.windows.order()}

    @handles(Persist)
    async def on_persist(self, message: Persist, reply: Reply) -> None:
        """At a clean stop: the field, then this actor's state, into the store."""
        field = await self.grid.ask(GridExport(new_request_id()), GridField)
        grid = {
            "grid_size": message.grid_size,
            "tiles": message.tiles,
            "current": field.current,
            "previous": field.previous,
            "last_step": field.last_step,
        }
        await self._put_state(GRID_STATE, grid)
        await self._put_state(ACTOR_STATE, self.saved())
        await reply.send(Ack(message.request_id))

    async def _put_state(self, name: str, state: dict[str, Any]) -> None:
        packed = msgpack.packb(state, use_bin_type=True)
        await trio.to_thread.run_sync(self.store.put_state, name, packed)

    @handles(Resume)
    async def on_resume(self, message: Resume, reply: Reply) -> None:
        """At start: the state saved at the last clean stop, if there is one."""
        saved = await trio.to_thread.run_sync(self.store.get_state, ACTOR_STATE)
        if saved is not None:
            self._take(msgpack.unpackb(saved, raw=False))
        if message.clear:
            await trio.to_thread.run_sync(self.store.delete_states, [GRID_STATE, ACTOR_STATE])
        await reply.send(Ack(message.request_id))


def _stored(message: Commit) -> StoredExchange | None:
    """An answered request kept with `store: true`, with its answer, as the store keeps it."""
    keep, finish = message.keep, message.outcome.finish
    if keep is None or finish is None:
        return None
    answer = {
        "text": "".join(message.outcome.text),
        "calls": message.outcome.tool_calls(),
        "finish_reason": finish.finish_reason,
        "prompt_tokens": finish.prompt_tokens,
        "completion_tokens": finish.completion_tokens,
        "answered_by": message.answered_by,
    }
    return StoredExchange(
        id=keep.id,
        tenant=message.tenant,
        kind=keep.kind,
        model=message.persona,
        user=message.user,
        created=message.arrival,
        metadata=dict(keep.metadata),
        request=keep.request,
        answer=json.dumps(answer),
    )


def saved_field(saved: bytes, grid_size: int, tiles: int) -> GridField | None:
    """The field saved at the last clean stop, if it fits this grid's size and tiling."""
    state = msgpack.unpackb(saved, raw=False)
    if state.get("grid_size") != grid_size or state.get("tiles") != tiles:
        log.warning("the saved field is for another grid size or tiling: rebuilding it")
        return None
    return GridField(new_request_id(), state["current"], state["previous"], state["last_step"])


def recall_request(
    text: str,
    vector: npt.NDArray[np.float32],
    tenant: str,
    user: str | None,
    persona: str | None,
    k: int,
    now: float,
) -> GridRecall:
    """The grid's recall of a query (its words and its vector): what chat, search and the
    benchmarks all ask."""
    wire = vector.astype("<f4").tobytes()
    return GridRecall(new_request_id(), wire, tenant, user, persona, k, now, text=text)


def public_wire(memory: Memory) -> dict[str, Any]:
    """A memory as the API shows it: everything but its vector."""
    wire = memory_to_wire(memory)
    del wire["vector"]
    return wire


def _statement(memory: Memory) -> supersession.Statement:
    return supersession.Statement(memory.text, memory.vector)


def recalled_memory(memory: Memory, query: str, score: float, resonance: float) -> RecalledMemory:
    """A recalled memory as Begun carries it; a long one (stored before memories were kept
    as passages) by its passage most relevant to the query."""
    text, excerpt = passages.most_relevant(memory.text, query)
    return RecalledMemory(
        id=memory.id,
        text=text,
        excerpt=excerpt,
        created=memory.created,
        emotion=[memory.emotion.valence, memory.emotion.arousal, memory.emotion.dominance],
        source=memory.source,
        superseded_by=memory.superseded_by,
        score=score,
        resonance=resonance,
    )
