"""The memory actor: how a recalled memory is shown, and percepts remembered through it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import trio

from mem8 import errors
from mem8.actors.memory import ACTOR_STATE, recalled_memory
from mem8.actors.messages import (
    Ack,
    Begin,
    Begun,
    Chat,
    Commit,
    Digest,
    Finished,
    GridImprint,
    Idempotency,
    IdempotentFind,
    IdempotentFound,
    MemoryForget,
    MemoryPage,
    MemoryQuery,
    MemorySearch,
    MemoryTenants,
    Outcome,
    Percept,
    Remember,
    Remembered,
    Restore,
    Snapshot,
    SnapshotState,
    Tenanted,
    Turn,
)
from mem8.actors.runtime import new_request_id
from mem8.clock import VirtualClock
from mem8.config import Settings
from mem8.memory import Emotion, Memory
from mem8.passages import PASSAGE_CHARS
from mem8.scope import Scope
from mem8.storage.sqlite import GRID_STATE, MemoryStore
from mem8.system import System, open_system

FILLER = "The quarterly numbers were reviewed line by line and nothing stood out at all. " * 12


def memory(text: str) -> Memory:
    return Memory(
        id="mem-1",
        text=text,
        source="chat:r1:assistant",
        modality="text",
        scope=Scope("t", "u", "p"),
        created=100.0,
        emotion=Emotion(),
        importance=1.0,
        band=0,
        phase=0.0,
        tau=1e6,
        x=1.0,
        y=1.0,
        amplitude=1.0,
        vector=np.zeros(4, np.float32),
    )


def test_a_long_memory_kept_whole_is_recalled_by_its_most_relevant_passage() -> None:
    whole = FILLER + "Priya maintains the billing service, which is written in Go. " + FILLER
    recalled = recalled_memory(memory(whole), "who maintains the billing service?", 0.5, 0.4)
    assert recalled.excerpt is True and len(recalled.text) <= PASSAGE_CHARS
    assert "billing service" in recalled.text
    assert (recalled.source, recalled.superseded_by) == ("chat:r1:assistant", "")


def test_a_short_memory_is_recalled_whole() -> None:
    recalled = recalled_memory(memory("Lisbon in June."), "where?", 0.5, 0.4)
    assert (recalled.text, recalled.excerpt) == ("Lisbon in June.", False)


def test_long_percepts_become_one_percept_per_passage_in_order() -> None:
    long = Percept(FILLER * 2, "audio:1", "audio", 5.0)
    short = Percept("It rained.", "audio:2", "audio", 6.0)
    cut = [passage for percept in [long, short] for passage in percept.passages()]
    assert len(cut) > 3 and cut[-1] == short
    assert all(p.source == "audio:1" and len(p.text) <= PASSAGE_CHARS for p in cut[:-1])


def memory_settings(tmp_path: Path) -> Settings:
    """A store in tmp_path, the model-free encoder, the scripted LLM, no journal."""
    return Settings(
        storage=str(tmp_path / "mem8.db"), journal="off", encoder="lexical", llm_backend="scripted"
    )


def run_memory(test: Callable[[System], Awaitable[None]], tmp_path: Path) -> None:
    settings = memory_settings(tmp_path)

    async def main() -> None:
        async with open_system(settings, clock=VirtualClock(1e9), journal=False) as system:
            await test(system)

    trio.run(main)


def test_remembered_percepts_are_kept_in_order_and_searchable(tmp_path: Path) -> None:
    async def test(system: System) -> None:
        percepts = [
            Percept("Maria moved to Porto.", "sim:1", "text", 1e9),
            Percept("   ", "sim:2", "text", 1e9 + 1),  # no text: not kept
            Percept("She works at a bakery.", "sim:3", "text", 1e9 + 2),
        ]
        remember = Remember(new_request_id(), "t", "alice", "p", percepts, 1.0)
        ids = (await system.memory.ask(remember, Remembered)).ids
        assert len(ids) == 2
        kept = [system.store.get(memory_id, "t") for memory_id in ids]
        assert [m.source for m in kept if m is not None] == ["sim:1", "sim:3"]
        assert kept[1] is not None and kept[1].follows == ids[0]  # chained to the turn before
        search = MemorySearch(new_request_id(), "t", "where does Maria live", "alice", "p")
        page = await system.memory.ask(search, MemoryPage)
        assert page.memories[0]["id"] == ids[0]

    run_memory(test, tmp_path)


def test_percepts_the_sender_encoded_keep_their_vectors(tmp_path: Path) -> None:
    async def test(system: System) -> None:
        vector = np.zeros(system.encoder.dimensions, np.float32)
        vector[3] = 1.0
        percept = Percept("Lisbon in June.", "audio:1", "audio", 1e9, vector.tobytes())
        remember = Remember(new_request_id(), "t", "alice", "p", [percept], 1.0)
        (memory_id,) = (await system.memory.ask(remember, Remembered)).ids
        stored = system.store.get(memory_id, "t")
        assert stored is not None and stored.modality == "audio"
        assert np.array_equal(stored.vector, vector)

    run_memory(test, tmp_path)


def test_a_run_drops_the_state_it_resumed_from_so_a_crash_later_rebuilds_it(
    tmp_path: Path,
) -> None:
    """The field and windows saved at a clean stop are taken back at the next start and then
    dropped: were that run to crash, the start after it rebuilds the field from every memory
    (the one added since included), not from the stop before."""
    settings = memory_settings(tmp_path)

    async def remember(system: System, text: str) -> None:
        percept = Percept(text, f"sim:{text}", "text", 1e9)
        await system.memory.ask(
            Remember(new_request_id(), "t", "u", "p", [percept], 1.0), Remembered
        )

    async def main() -> None:
        async with open_system(settings, clock=VirtualClock(1e9), journal=False) as system:
            await remember(system, "Maria moved to Porto.")
        async with open_system(settings, clock=VirtualClock(1e9 + 60), journal=False) as system:
            assert system.store.get_state(GRID_STATE) is None
            assert system.store.get_state(ACTOR_STATE) is None
            await remember(system, "She works at a bakery.")
        with MemoryStore.open(Path(settings.storage)) as store:  # a clean stop saves them again
            assert store.get_state(GRID_STATE) is not None
        async with open_system(
            settings, clock=VirtualClock(1e9 + 120), journal=False, persist=False
        ) as system:  # the CLI beside a server leaves them alone
            pass
        with MemoryStore.open(Path(settings.storage)) as store:
            assert store.get_state(GRID_STATE) is not None

    trio.run(main)


def commit(percepts: list[Percept], request_id: str = "r1", at: float = 1e9) -> Commit:
    outcome = Outcome(["Noted."], Finished("stop", 3, 1), None)
    exchange = [Turn("user", "Lisbon in June."), Turn("assistant", "Noted.")]
    return Commit(
        request_id, "p", "t", "alice", "conv", at, exchange, True, 0.9, [], outcome,
        outcome.digest(), "scripted", percepts,
    )  # fmt: skip


def test_a_commit_is_stored_with_the_vectors_its_sender_encoded(tmp_path: Path) -> None:
    async def test(system: System) -> None:
        vector = np.zeros(system.encoder.dimensions, np.float32)
        vector[7] = 1.0
        sent = [Percept("Lisbon in June.", "chat:r1:user", "text", 1e9, vector.tobytes())]
        await system.memory.ask(commit(sent), Ack)
        stored = system.store.get("mem-r1-0", "t")
        assert stored is not None and np.array_equal(stored.vector, vector)  # not re-encoded

    run_memory(test, tmp_path)


def test_a_commit_whose_caller_stopped_waiting_keeps_nothing(tmp_path: Path) -> None:
    async def test(system: System) -> None:
        vector = np.ones(system.encoder.dimensions, np.float32).tobytes()
        sent = [Percept("Lisbon in June.", "chat:r1:user", "text", 1e9, vector)]
        stream = await system.memory.open_stream(commit(sent), first_timeout=5.0)
        stream.close()  # the caller gives up before the memory actor takes it
        await system.memory.ask(commit([], "r2"), Ack)  # after the first, in the same mailbox
        assert system.store.get("mem-r1-0", "t") is None
        state = (await system.memory.ask(Snapshot(new_request_id(), False), SnapshotState)).state
        assert state["tallies"]["p"]["failed"] == 1 and state["tallies"]["p"]["answered"] == 1
        assert list(state["windows"]) == ["conv"]  # the answered one's window alone

    run_memory(test, tmp_path)


def test_windows_keep_their_order_through_a_snapshot(tmp_path: Path) -> None:
    async def test(system: System) -> None:
        await system.memory.ask(commit([], "r1", 1e9), Ack)
        state = (await system.memory.ask(Snapshot(new_request_id(), False), SnapshotState)).state
        assert state["window_order"] == [["conv", 1e9]]
        digest = await system.state_digests()
        await system.memory.ask(Restore(new_request_id(), state), Digest)
        assert await system.state_digests() == digest

    run_memory(test, tmp_path)


def test_a_commit_racing_an_answered_one_with_its_key_keeps_nothing(tmp_path: Path) -> None:
    async def test(system: System) -> None:
        vector = np.ones(system.encoder.dimensions, np.float32).tobytes()
        key = Idempotency("retry", "sha")
        for request_id in ("r1", "r2"):
            sent = [Percept("Lisbon in June.", f"chat:{request_id}:user", "text", 1e9, vector)]
            await system.memory.ask(replace(commit(sent, request_id), idempotency=key), Ack)
        assert system.store.get("mem-r1-0", "t") is not None
        assert system.store.get("mem-r2-0", "t") is None
        find = IdempotentFind(new_request_id(), "t", "retry", 1e9 + 1)
        found = await system.memory.ask(find, IdempotentFound)
        assert found.request_sha256 == "sha" and found.answer

    run_memory(test, tmp_path)


def test_a_begin_in_a_scope_with_memories_asks_for_the_query_s_vector(tmp_path: Path) -> None:
    """The memory actor, which every chat waits on, never encodes: in a scope that holds
    memories a Begin without a vector is sent back for one (nothing begun), in an empty scope
    it begins at once."""

    async def test(system: System) -> None:
        percept = Percept("Maria moved to Porto.", "sim:1", "text", 1e9)
        await system.memory.ask(
            Remember(new_request_id(), "t", "u", "p", [percept], 1.0), Remembered
        )

        def begin(user: str, vector: bytes | None = None) -> Begin:
            chat = Chat(
                new_request_id(), "p", "t", user, 1e9 + 5, [Turn("user", "Where is Maria?")]
            )
            return Begin(chat.request_id, chat, "c", vector)

        empty = await system.memory.ask(begin("nobody"), Begun)
        assert not empty.vector_wanted and empty.recalled == []
        wanted = await system.memory.ask(begin("u"), Begun)
        assert wanted.vector_wanted and wanted.recalled == [] and wanted.window == []
        vector = system.encoder.embed("Where is Maria?").astype("<f4").tobytes()
        begun = await system.memory.ask(begin("u", vector), Begun)
        assert not begun.vector_wanted
        assert [r.text for r in begun.recalled] == ["Maria moved to Porto."]

    run_memory(test, tmp_path)


def test_a_crashed_grid_actor_is_filled_again_from_the_store(tmp_path: Path) -> None:
    """The router and a region each crash on a malformed imprint and restart empty; the memory
    actor then imprints the store again, so recall finds every memory (once) as before."""

    async def search(system: System) -> list[str]:
        query = MemorySearch(new_request_id(), "t", "where does Maria live", "alice", "p", 10)
        return [m["id"] for m in (await system.memory.ask(query, MemoryPage)).memories]

    async def test(system: System) -> None:
        percepts = [Percept(text, "sim:1", "text", 1e9) for text in ("Maria moved to Porto.",)]
        percepts.append(Percept("Maria lives near the river.", "sim:2", "text", 1e9 + 1))
        remember = Remember(new_request_id(), "t", "alice", "p", percepts, 1.0)
        ids = (await system.memory.ask(remember, Remembered)).ids
        before = await search(system)
        assert sorted(before) == sorted(ids)
        for name in ("grid", "region:0"):
            broken = GridImprint(new_request_id(), [{"id": "mem-broken"}], 1e9 + 2, True)
            with pytest.raises(errors.ActorUnavailable, match="failed handling"):
                await system.supervisor.refs[name].ask(broken, Ack)
            with trio.fail_after(20):
                while system.supervisor.restarts[name] == 0:
                    await trio.sleep(0.01)
                while (found := await search(system)) != before:
                    await trio.sleep(0.05)
            assert found == before

    run_memory(test, tmp_path)


def test_the_tenants_holding_memories_are_named_with_how_many(tmp_path: Path) -> None:
    async def test(system: System) -> None:
        said = [Percept("Maria moved to Porto.", "sim:1", "text", 1e9)]
        for tenant, user in [("t", "alice"), ("t", "bob"), ("u", "carol")]:
            remember = Remember(new_request_id(), tenant, user, "p", said, 1.0)
            await system.memory.ask(remember, Remembered)
        held = await system.memory.ask(MemoryTenants(new_request_id()), Tenanted)
        assert held.memories == {"t": 2, "u": 1}
        (only,) = (await system.memory.ask(MemoryQuery(new_request_id(), "u"), MemoryPage)).memories
        await system.memory.ask(MemoryForget(new_request_id(), "u", only["id"], 1e9), Ack)
        held = await system.memory.ask(MemoryTenants(new_request_id()), Tenanted)
        assert held.memories == {"t": 2}  # a tenant with none left is not named

    run_memory(test, tmp_path)
