"""Recalled memory never breaks a chat: the context budget, passages and the reply's cap,
through the official client against a live server whose scripted model has a real context."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import trio
from openai import OpenAI

from mem8.backends.embedded import EmbeddedBackend
from mem8.backends.fake import RecordingLLM, ScriptedLLM, WordTokens
from mem8.config import Settings
from mem8.passages import PASSAGE_CHARS
from mem8.personas import Persona, Traits
from mem8.replay import replay
from tests.support.server import RunningServer, running_server

TECHNICAL = "mem8-technical-v1"
PRIYA = (
    "My name is Priya and I maintain the billing service written in Go. What is a goroutine leak?"
)
# What a small model says when nothing stops it: about 9,500 characters, ~1,500 words.
RAMBLE = " ".join(
    f"Point {i}: a goroutine that blocks forever on a channel keeps its stack and everything it "
    "references alive, so the process grows until it is killed."
    for i in range(1, 70)
)
WORDS = WordTokens()


@pytest.fixture
def small_model() -> ScriptedLLM:
    return ScriptedLLM(context=700)  # words: a short context, like the embedded model's


@pytest.fixture
def small_server(settings: Settings, small_model: ScriptedLLM) -> Iterator[RunningServer]:
    with running_server(settings, dict.fromkeys(settings.personas, small_model)) as server:
        yield server


def chat(server: RunningServer, text: str, **extra: object) -> openai.types.chat.ChatCompletion:
    with OpenAI(base_url=server.base_url, api_key="key-priya", max_retries=0) as client:
        return client.chat.completions.create(
            model=TECHNICAL,
            messages=[{"role": "user", "content": text}],
            **extra,  # type: ignore[arg-type]
        )


def memories(server: RunningServer) -> list[dict[str, object]]:
    listed = httpx.get(
        server.base_url + "/memories",
        params={"limit": 100},
        headers={"Authorization": "Bearer key-priya"},
    )
    data: list[dict[str, object]] = listed.json()["data"]
    return data


def test_a_rambling_reply_is_cut_kept_as_passages_and_never_breaks_the_next_chats(
    small_server: RunningServer, small_model: ScriptedLLM
) -> None:
    small_model.enqueue([RAMBLE])
    first = chat(small_server, PRIYA)  # no max_tokens: the persona's cap applies
    assert first.choices[0].finish_reason == "length"
    assert first.usage is not None and first.usage.completion_tokens < len(RAMBLE.split())
    kept = memories(small_server)
    assert len(kept) > 2 and all(len(str(m["text"])) <= PASSAGE_CHARS for m in kept)
    assert kept[0]["text"] == PRIYA  # the message, then the reply's passages in order
    for text in ("Hi, how are you?", "Tell me a joke about cats.", "Which service do I maintain?"):
        answer = chat(small_server, text)  # each a new conversation: recall, not the window
        assert answer.choices[0].finish_reason in ("stop", "length")
        request = small_model.history[-1]
        assert request.max_tokens is not None
        assert WORDS.prompt(request.messages) + request.max_tokens <= 700
    system = small_model.history[-1].messages[0].content
    assert "billing service" in system and "What you remember" in system


def test_the_client_s_own_messages_beyond_the_context_are_context_length_exceeded(
    small_server: RunningServer, small_model: ScriptedLLM
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        chat(small_server, " ".join(["word"] * 800))
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "700" in error["message"] and "800" in error["message"]
    assert small_model.history == []  # refused before the model was asked


def test_the_persona_s_reply_cap_applies_unless_the_client_sets_one(settings: Settings) -> None:
    terse = Persona(
        id="mem8-terse-v1",
        name="Terse",
        traits=Traits(),
        model="m",
        temperature=0.5,
        system_prompt="You are terse.",
        max_tokens=5,
    )
    configured = dataclasses.replace(settings, personas={**settings.personas, terse.id: terse})
    llm = ScriptedLLM()
    with running_server(configured, dict.fromkeys(configured.personas, llm)) as server:
        client = OpenAI(base_url=server.base_url, api_key="key-a", max_retries=0)
        hello = [{"role": "user", "content": "Hello!"}]
        llm.enqueue(["one two three four five six seven eight nine ten"])
        capped = client.chat.completions.create(model=terse.id, messages=hello)  # type: ignore[arg-type]
        llm.enqueue(["one two three four five six seven eight nine ten"])
        asked = client.chat.completions.create(model=terse.id, messages=hello, max_tokens=8)  # type: ignore[arg-type]
        client.close()
    assert capped.choices[0].finish_reason == "length" and capped.usage is not None
    assert capped.usage.completion_tokens == 5
    assert asked.usage is not None and asked.usage.completion_tokens == 8


@pytest.mark.embedded
def test_a_real_model_s_prompts_stay_within_its_context_after_a_long_answer(
    settings: Settings,
) -> None:
    """The steps a new user took, on a real model and its real tokenizer (SmolLM2: the words do
    not matter here): an answer without max_tokens, then two unrelated questions."""
    embedded = dataclasses.replace(settings, llm_backend="embedded", embedded_model="smollm2-135m")
    recorder = RecordingLLM(EmbeddedBackend(embedded))
    with running_server(embedded, dict.fromkeys(embedded.personas, recorder)) as server:
        first = chat(server, PRIYA)
        later = [
            chat(server, text, max_tokens=8)
            for text in ("Hi, how are you?", "Tell me a joke about cats.")
        ]
        counted = [recorder.counter(TECHNICAL).prompt(r.messages) for r in recorder.history]
        requests = list(recorder.history)
    assert first.usage is not None and first.usage.completion_tokens <= 512  # the persona's cap
    assert all(answer.choices[0].message.content is not None for answer in later)
    assert "What you remember" in requests[-1].messages[0].content  # memories were recalled
    for request, prompt_tokens in zip(requests, counted, strict=True):
        assert request.max_tokens is not None
        assert prompt_tokens + request.max_tokens <= embedded.embedded_context


def test_requests_refused_and_served_for_their_length_replay_identically(
    settings: Settings,
) -> None:
    model = ScriptedLLM(context=600)
    patient = dataclasses.replace(settings, ask_timeout=60.0)  # long messages take a while
    with running_server(patient, dict.fromkeys(settings.personas, model)) as server:
        chat(server, PRIYA)
        with pytest.raises(openai.BadRequestError):
            chat(server, " ".join(["word"] * 700))
        model.enqueue(["Noted."])
        # 500 of this model's tokens, but ~4,500 by the estimate a backend that knows nothing
        # of its model makes: replay's recorded backend must not refuse what was served.
        chat(server, " ".join(["abcdefghijklmnopqrstuvwxyz"] * 500))
    report = trio.run(replay, Path(settings.storage + ".journal"))
    assert report.problems == [] and report.mismatches == []
    assert report.requests == report.matched == 3 and report.state_matched is True
