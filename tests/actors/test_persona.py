"""The persona actor on its own: a Chat begins at the memory actor, is judged, answered by the
backend the settings choose (the scripted one, from the backend registry) and committed."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import trio

from mem8 import errors, passages
from mem8.actors.messages import (
    Accepted,
    Chat,
    Digest,
    Done,
    Message,
    Percept,
    Remember,
    Remembered,
    Restore,
    Snapshot,
    SnapshotState,
    Token,
    Turn,
)
from mem8.actors.persona import asked, told
from mem8.actors.runtime import new_request_id
from mem8.backends.base import ToolCall
from mem8.backends.fake import ScriptedLLM
from mem8.clock import VirtualClock
from mem8.config import Settings
from mem8.system import System, open_system

PERSONA = "mem8-creative-v1"
NOW = 1_700_000_000.0


@pytest.fixture(params=["objects", "msgpack"])
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return Settings(
        storage=str(tmp_path / "mem8.db"),
        journal="off",
        encoder="lexical",
        llm_backend="scripted",
        ask_timeout=5.0,
        actor_wire=request.param,
    )


def with_system(settings: Settings, test: Callable[[System, ScriptedLLM], Awaitable[None]]) -> None:
    async def main() -> None:
        async with open_system(settings, clock=VirtualClock(NOW), journal=False) as system:
            llm = system.backends[PERSONA]
            assert isinstance(llm, ScriptedLLM)  # chosen by name from the registry
            await test(system, llm)

    trio.run(main)


def chat(text: str, persona: str = PERSONA) -> Chat:
    return Chat(new_request_id(), persona, "tenant", "alice", NOW, [Turn("user", text)])


async def replies(system: System, message: Chat) -> list[Message]:
    with await system.persona(message.persona).open_stream(message) as stream:
        return [reply async for reply in stream]


async def tallies(system: System) -> dict[str, dict[str, int]]:
    state = await system.memory.ask(Snapshot(new_request_id(), False), SnapshotState)
    found: dict[str, dict[str, int]] = state.state["tallies"]
    return found


def test_a_chat_is_accepted_then_streamed_then_done(settings: Settings) -> None:
    async def test(system: System, llm: ScriptedLLM) -> None:
        llm.enqueue(["Lisbon is lovely in June."])
        answer = await replies(system, chat("Where should I travel in June?"))
        assert isinstance(answer[0], Accepted)
        assert "".join(r.text for r in answer if isinstance(r, Token)) == (
            "Lisbon is lovely in June."
        )
        done = answer[-1]
        assert isinstance(done, Done) and done.backend == "scripted"
        assert done.finish_reason == "stop"
        (request,) = llm.history
        assert request.messages[-1].content == "Where should I travel in June?"
        assert (await tallies(system))[PERSONA]["answered"] == 1

    with_system(settings, test)


def test_a_backend_failure_fails_the_ask_with_its_class_and_is_counted(
    settings: Settings,
) -> None:
    async def test(system: System, llm: ScriptedLLM) -> None:
        llm.enqueue([errors.BackendUnavailable("Ollama is down")])
        with pytest.raises(errors.BackendUnavailable, match="Ollama is down"):
            await replies(system, chat("Hello?"))
        assert (await tallies(system))[PERSONA]["failed"] == 1

    with_system(settings, test)


def test_what_was_remembered_is_recalled_into_the_prompt(settings: Settings) -> None:
    async def test(system: System, llm: ScriptedLLM) -> None:
        percept = Percept("Alice's sister Maria lives in Porto.", "sim:1", "text", NOW - 60)
        remember = Remember(new_request_id(), "tenant", "alice", PERSONA, [percept], 1.0)
        assert (await system.memory.ask(remember, Remembered)).ids
        llm.enqueue(["She does."])
        await replies(system, chat("Does my sister Maria live in Porto?"))
        (request,) = llm.history
        assert "Maria lives in Porto" in request.messages[0].content  # the memory block

    with_system(settings, test)


def test_below_the_threshold_a_subconscious_persona_answers_without_the_llm(
    settings: Settings,
) -> None:
    bored = {
        pid: dataclasses.replace(p, interest_threshold=1.0, below_threshold="subconscious")
        for pid, p in settings.personas.items()
    }

    async def test(system: System, llm: ScriptedLLM) -> None:
        answer = await replies(system, chat("ok"))
        accepted, done = answer[0], answer[-1]
        assert isinstance(accepted, Accepted) and not accepted.conscious
        assert isinstance(done, Done) and done.backend == "subconscious"
        assert llm.history == []
        assert (await tallies(system))[PERSONA]["subconscious"] == 1

    with_system(dataclasses.replace(settings, personas=bored), test)


def test_a_window_turn_the_client_resent_is_not_repeated(settings: Settings) -> None:
    async def test(system: System, llm: ScriptedLLM) -> None:
        first = chat("My name is Alice.")
        llm.enqueue(["Hello Alice."])
        await replies(system, first)
        again = dataclasses.replace(
            chat("What is my name?"),
            conversation=first.conversation,
            messages=[
                Turn("user", "My name is Alice."),
                Turn("assistant", "Hello Alice."),
                Turn("user", "What is my name?"),
            ],
        )
        llm.enqueue(["Alice."])
        await replies(system, again)
        contents = [m.content for m in llm.history[-1].messages[1:]]
        assert contents == ["My name is Alice.", "Hello Alice.", "What is my name?"]

    with_system(settings, test)


def test_the_persona_hands_the_memory_actor_the_exchange_cut_and_encoded(
    settings: Settings,
) -> None:
    eager = {
        pid: dataclasses.replace(p, interest_threshold=0.0) for pid, p in settings.personas.items()
    }
    long = "The night shift reads the pump's pressure every hour. " * 40

    async def test(system: System, llm: ScriptedLLM) -> None:
        llm.enqueue(["Noted."])
        message = chat(long)
        await replies(system, message)
        kept = [system.store.get(f"mem-{message.request_id}-{i}", "tenant") for i in range(8)]
        stored = [m for m in kept if m is not None]
        assert [m.text for m in stored] == [*passages.passages(long), "Noted."]
        expected = system.encoder.embed_batch([m.text for m in stored])
        assert all(np.array_equal(m.vector, v) for m, v in zip(stored, expected, strict=True))

    with_system(dataclasses.replace(settings, personas=eager), test)


def test_the_exchange_kept_holds_the_tool_results_since_the_users_message() -> None:
    turns = [
        Turn("user", "Weather in Lisbon?"),
        Turn("assistant", "", tool_calls="[]"),
        Turn("tool", '{"sky": "sunny"}', tool_call_id="c1", name="get_weather"),
    ]
    assert asked(turns) == 'Weather in Lisbon?\nget_weather returned {"sky": "sunny"}'
    assert asked(turns[:1]) == "Weather in Lisbon?"


def test_a_call_is_told_as_the_persona_remembers_it() -> None:
    calls = (ToolCall("c1", "get_weather", '{"city": "Lisbon"}'), ToolCall("c2", "now", "{}"))
    assert told(calls) == 'called get_weather({"city": "Lisbon"}); called now({})'


def test_a_crashed_memory_actor_comes_back_with_its_windows_and_tallies(
    settings: Settings,
) -> None:
    """A handler's bug restarts the memory actor; the new one carries on the conversations'
    windows, the tallies and the commit count (the state hash that covers them is unchanged);
    it came back empty, and its next commit was numbered from 0 again."""

    async def test(system: System, llm: ScriptedLLM) -> None:
        await replies(system, chat("My cat is called Miso."))
        before = (await system.state_digests())["memory"]
        counted = await tallies(system)
        malformed = Restore(new_request_id(), {})  # no commit count: a KeyError in its handler
        with pytest.raises(errors.ActorUnavailable, match="failed handling"):
            await system.memory.ask(malformed, Digest)
        with trio.fail_after(20):
            while system.supervisor.restarts["memory"] == 0:
                await trio.sleep(0.01)
        assert (await system.state_digests())["memory"] == before
        assert await tallies(system) == counted

    with_system(settings, test)
