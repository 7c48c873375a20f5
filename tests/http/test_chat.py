"""POST /v1/chat/completions through the official openai client against a live server."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import ClassVar

import httpx
import openai
import pytest
import trio
from openai import AsyncOpenAI, OpenAI

from mem8.backends.base import Finish, Generated, GenerationRequest, LLMBackend, TextDelta
from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.errors import BackendUnavailable
from tests.support.server import RunningServer, running_server

HELLO = [{"role": "user", "content": "Hello!"}]


def test_the_spec_example_works_unchanged(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore"])
    response = client.chat.completions.create(model="mem8-creative-v1", messages=HELLO)  # type: ignore[arg-type]
    assert response.choices[0].message.content == "Waves upon the shore"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].finish_reason == "stop"
    assert response.object == "chat.completion"
    assert response.model == "mem8-creative-v1"
    assert response.id.startswith("chatcmpl-")
    assert response.usage is not None
    assert response.usage.completion_tokens == 4
    assert response.usage.total_tokens == response.usage.prompt_tokens + 4


def test_the_persona_prompt_and_temperature_reach_the_backend(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    client.chat.completions.create(model="mem8-technical-v1", messages=HELLO)  # type: ignore[arg-type]
    request = llm.history[-1]
    assert request.model == "codellama:latest"
    assert request.temperature == 0.3
    assert request.messages[0].role == "system"
    assert "Technical Analyst" in request.messages[0].content
    assert request.messages[-1].content == "Hello!"


def test_sampling_parameters_are_honoured(client: OpenAI, llm: ScriptedLLM) -> None:
    client.chat.completions.create(
        model="mem8-creative-v1",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "part one"},
                    {"type": "text", "text": "part two"},
                ],
            },
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "go on"},
        ],
        temperature=0.2,
        top_p=0.5,
        max_tokens=7,
        stop=["\n\n", "END"],
        seed=42,
        user="alice",
    )
    request = llm.history[-1]
    assert (request.temperature, request.top_p, request.max_tokens, request.seed) == (
        0.2,
        0.5,
        7,
        42,
    )
    assert request.stop == ("\n\n", "END")
    assert [m.role for m in request.messages] == ["system", "system", "user", "assistant", "user"]
    assert request.messages[2].content == "part one\npart two"


def test_max_completion_tokens_cuts_the_answer(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["one two three four five six"])
    response = client.chat.completions.create(
        model="mem8-creative-v1",
        messages=HELLO,
        max_completion_tokens=2,  # type: ignore[arg-type]
    )
    assert response.choices[0].message.content == "one two"
    assert response.choices[0].finish_reason == "length"


def test_streaming_sends_role_tokens_finish_usage_and_done(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue(["Once upon a time"])
    chunks = list(
        client.chat.completions.create(
            model="mem8-creative-v1",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Once upon a time"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert len({c.id for c in chunks}) == 1


def test_stream_without_usage_option_has_no_usage_chunk(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["a b"])
    chunks = list(
        client.chat.completions.create(
            model="mem8-creative-v1",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_raw_stream_ends_with_done(server: RunningServer, llm: ScriptedLLM) -> None:
    llm.enqueue(["a b"])
    body = {"model": "mem8-creative-v1", "messages": HELLO, "stream": True}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_async_client(async_client: AsyncOpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["async reply", "streamed reply"])

    async def talk() -> tuple[str, str]:
        response = await async_client.chat.completions.create(
            model="mem8-counselor-v1",
            messages=HELLO,  # type: ignore[arg-type]
        )
        stream = await async_client.chat.completions.create(
            model="mem8-counselor-v1",
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream])
        await async_client.close()
        return response.choices[0].message.content or "", streamed

    import asyncio

    assert asyncio.run(talk()) == ("async reply", "streamed reply")


class RendezvousLLM(LLMBackend):
    """Answers only once `parties` generations are running at the same time."""

    name: ClassVar[str] = "rendezvous"

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.running = 0
        self.all_here = trio.Event()

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        self.running += 1
        if self.running >= self.parties:
            self.all_here.set()
        with trio.fail_after(10):
            await self.all_here.wait()
        yield TextDelta("together")
        yield Finish("stop", 1, 1)


def test_one_persona_serves_concurrent_requests(settings: Settings) -> None:
    backend = RendezvousLLM(parties=3)
    body = {"model": "mem8-creative-v1", "messages": HELLO}
    with running_server(settings, dict.fromkeys(settings.personas, backend)) as server:

        async def three_at_once() -> list[int]:
            statuses: list[int] = []
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:

                async def one() -> None:
                    response = await http.post("/chat/completions", json=body)
                    statuses.append(response.status_code)

                async with trio.open_nursery() as nursery:
                    for _ in range(3):
                        nursery.start_soon(one)
            return statuses

        assert trio.run(three_at_once) == [200, 200, 200]


def test_a_client_that_disconnects_mid_stream_cancels_the_generation(settings: Settings) -> None:
    slow = ScriptedLLM(token_delay=0.05)
    slow.enqueue([" ".join(["word"] * 400)])
    body = {"model": "mem8-creative-v1", "messages": HELLO, "stream": True}
    with running_server(settings, dict.fromkeys(settings.personas, slow)) as server:
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
        assert slow.closed_early.wait(timeout=5)  # the persona notices at its next token (50 ms)
        assert slow.cancelled == 1


# --- errors -----------------------------------------------------------------------------------


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, object] = body["error"]
    return error


def test_unknown_model_is_the_spec_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="mem8-unknown", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.body == {
        "message": "Model 'mem8-unknown' not found",
        "type": "invalid_request_error",
        "param": "model",
        "code": 404,
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HELLO}, "model"),
        ({"model": "mem8-creative-v1"}, "messages"),
        ({"model": "mem8-creative-v1", "messages": []}, "messages"),
        (
            {"model": "mem8-creative-v1", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {"model": "mem8-creative-v1", "messages": [{"role": "user", "content": 5}]},
            "messages[0].content",
        ),
        (
            {
                "model": "mem8-creative-v1",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            },
            "messages[0].content[0]",
        ),
        ({"model": "mem8-creative-v1", "messages": HELLO, "temperature": 3}, "temperature"),
        ({"model": "mem8-creative-v1", "messages": HELLO, "temperature": "hot"}, "temperature"),
        ({"model": "mem8-creative-v1", "messages": HELLO, "top_p": 1.5}, "top_p"),
        ({"model": "mem8-creative-v1", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "mem8-creative-v1", "messages": HELLO, "max_tokens": True}, "max_tokens"),
        (
            {"model": "mem8-creative-v1", "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]},
            "stop",
        ),
        ({"model": "mem8-creative-v1", "messages": HELLO, "seed": 1.5}, "seed"),
        ({"model": "mem8-creative-v1", "messages": HELLO, "n": 9}, "n"),
        ({"model": "mem8-creative-v1", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "mem8-creative-v1", "messages": HELLO, "user": 7}, "user"),
        ({"model": "mem8-creative-v1", "messages": HELLO, "stream_options": []}, "stream_options"),
        (
            {
                "model": "mem8-creative-v1",
                "messages": HELLO,
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": "sometimes",
            },
            "tool_choice",
        ),
    ],
)
def test_invalid_fields_are_400_naming_the_param(
    server: RunningServer, body: dict[str, object], param: str
) -> None:
    response = httpx.post(server.base_url + "/chat/completions", json=body)
    assert response.status_code == 400
    error = _error(response)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b"\xff\xfe", b"[" * 100_000])
def test_malformed_json_is_400(server: RunningServer, raw: bytes) -> None:
    response = httpx.post(
        server.base_url + "/chat/completions",
        content=raw,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert _error(response)["type"] == "invalid_request_error"


def test_oversized_body_is_413(server: RunningServer) -> None:
    too_big = b'{"model": "' + b"x" * server.settings.max_body_bytes + b'"}'
    json_type = {"Content-Type": "application/json"}
    response = httpx.post(server.base_url + "/chat/completions", content=too_big, headers=json_type)
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_unknown_route_is_404_and_wrong_method_405(server: RunningServer) -> None:
    missing = httpx.get(server.base_url + "/nothing/here")
    assert missing.status_code == 404
    assert _error(missing)["code"] == "not_found"
    wrong = httpx.put(server.base_url + "/chat/completions")  # GET lists stored ones
    assert wrong.status_code == 405
    assert _error(wrong)["code"] == "method_not_allowed"


def test_backend_down_is_503_naming_it(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(
        [
            BackendUnavailable(
                "Ollama at http://localhost:11434 is not reachable: run `ollama serve`"
            )
        ]
    )
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="mem8-creative-v1", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 503
    assert "ollama serve" in str(caught.value.body)


def test_backend_down_before_a_stream_is_a_503_not_a_broken_stream(
    server: RunningServer, llm: ScriptedLLM
) -> None:
    llm.enqueue([BackendUnavailable("down")])
    body = {"model": "mem8-creative-v1", "messages": HELLO, "stream": True}
    response = httpx.post(server.base_url + "/chat/completions", json=body)
    assert response.status_code == 503
    assert _error(response)["code"] == "backend_unavailable"


def test_a_backend_bug_is_a_502_without_a_trace(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue([RuntimeError("boom in the backend")])
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="mem8-creative-v1", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.status_code == 502
    assert "Traceback" not in json.dumps(caught.value.body)
    # and the persona still answers afterwards
    assert client.chat.completions.create(model="mem8-creative-v1", messages=HELLO).choices  # type: ignore[arg-type]
