"""OpenAIUpstreamBackend against a real HTTP server speaking OpenAI's streamed chat (SSE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from mem8.backends.base import (
    ChatMessage,
    Finish,
    Generated,
    GenerationRequest,
    ResponseFormat,
    TextDelta,
    Tool,
    ToolCall,
    ToolCalls,
    registry,
)
from mem8.backends.openai_upstream import OpenAIUpstreamBackend
from mem8.config import Settings
from mem8.errors import BackendFailed, BackendUnavailable
from tests.backends import driving
from tests.backends.driving import SLOW, collect_into, generate_all, text_of
from tests.backends.wire_servers import OpenAIServer, Script, closed_port_url, running


@pytest.fixture
def upstream() -> Iterator[OpenAIServer]:
    with running(OpenAIServer(Script())) as server:
        yield server


def backend_at(url: str, *, key: str = "", timeout: float = 10.0) -> OpenAIUpstreamBackend:
    settings = Settings(openai_api_base=url, upstream_api_key=key, backend_timeout=timeout)
    return OpenAIUpstreamBackend(settings)


def v1(server: OpenAIServer) -> str:
    return f"{server.url}/v1"


def chat(model: str = "smol", *, temperature: float = 0.7, **options: Any) -> GenerationRequest:
    return driving.chat(model, temperature=temperature, **options)


def test_streams_the_text_then_one_finish_with_the_usage(upstream: OpenAIServer) -> None:
    items = generate_all(backend_at(v1(upstream)), chat())
    assert text_of(items) == "Hello, wave world"
    assert isinstance(items[-1], Finish)
    assert all(isinstance(item, TextDelta) for item in items[:-1])
    assert items[-1] == Finish("stop", prompt_tokens=11, completion_tokens=4)


def test_sends_the_conversation_streamed_with_usage_and_every_sampling_option(
    upstream: OpenAIServer,
) -> None:
    request = chat(temperature=0.3, top_p=0.9, max_tokens=50, stop=("\n\n",), seed=7)
    generate_all(backend_at(v1(upstream)), request)
    received = upstream.received[-1]
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert "authorization" not in received.headers
    assert received.body == {
        "model": "smol",
        "messages": [
            {"role": "system", "content": "You are Ada."},
            {"role": "user", "content": "Hello?"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": ["\n\n"],
        "seed": 7,
    }


def test_leaves_unset_options_out(upstream: OpenAIServer) -> None:
    generate_all(backend_at(v1(upstream)), chat(temperature=1.0))
    body = upstream.last_body()
    assert {"top_p", "max_tokens", "stop", "seed"}.isdisjoint(body)
    assert body["temperature"] == 1.0


def test_hitting_max_tokens_finishes_with_length(upstream: OpenAIServer) -> None:
    items = generate_all(backend_at(v1(upstream)), chat(max_tokens=2))
    assert text_of(items) == "Hello,"
    assert items[-1] == Finish("length", prompt_tokens=11, completion_tokens=2)


def test_an_upstream_without_usage_counts_zero_tokens() -> None:
    with running(OpenAIServer(Script(send_counts=False))) as server:
        items = generate_all(backend_at(v1(server)), chat())
    assert text_of(items) == "Hello, wave world"
    assert items[-1] == Finish("stop", prompt_tokens=0, completion_tokens=0)


def test_an_upstream_that_does_not_stream_still_answers() -> None:
    with running(OpenAIServer(Script(), stream_reply=False)) as server:
        items = generate_all(backend_at(v1(server)), chat())
    assert items == [TextDelta("Hello, wave world"), Finish("stop", 11, 4)]


def test_sends_the_key_as_a_bearer_token() -> None:
    with running(OpenAIServer(Script(), api_key="sk-local")) as server:
        items = generate_all(backend_at(v1(server), key="sk-local"), chat())
    assert text_of(items) == "Hello, wave world"
    assert server.received[-1].headers["authorization"] == "Bearer sk-local"


def test_a_rejected_key_fails_with_the_upstreams_message() -> None:
    with (
        running(OpenAIServer(Script(), api_key="sk-local")) as server,
        pytest.raises(BackendFailed) as caught,
    ):
        generate_all(backend_at(v1(server), key="sk-wrong"), chat())
    message = caught.value.message
    assert "HTTP 401: Incorrect API key provided." in message
    assert "MEM8_UPSTREAM_API_KEY" in message


def test_a_server_error_fails_with_the_status_and_the_upstreams_message() -> None:
    with (
        running(OpenAIServer(Script(), fail_status=500)) as server,
        pytest.raises(BackendFailed) as caught,
    ):
        generate_all(backend_at(v1(server)), chat())
    assert f"{v1(server)} answered HTTP 500: CUDA error: out of memory" in caught.value.message


def test_an_error_event_mid_stream_fails_with_its_message() -> None:
    with (
        running(OpenAIServer(Script(error_after=1))) as server,
        pytest.raises(BackendFailed) as caught,
    ):
        generate_all(backend_at(v1(server)), chat())
    assert "the model crashed" in caught.value.message


def test_a_closed_port_is_unavailable_and_names_the_setting() -> None:
    url = closed_port_url() + "/v1"
    with pytest.raises(BackendUnavailable) as caught:
        generate_all(backend_at(url), chat())
    message = caught.value.message
    assert f"upstream at {url} is not reachable" in message
    assert "OPENAI_API_BASE" in message


def test_no_upstream_configured_is_unavailable() -> None:
    with pytest.raises(BackendUnavailable) as caught:
        generate_all(backend_at(""), chat())
    assert "set OPENAI_API_BASE" in caught.value.message


def test_a_connection_dropped_mid_stream_fails_after_the_text_so_far() -> None:
    items: list[Generated] = []
    with (
        running(OpenAIServer(Script(drop_after=2))) as server,
        pytest.raises(BackendFailed) as caught,
    ):
        trio.run(collect_into, backend_at(v1(server)), chat(), items)
    assert text_of(items) == "Hello,"
    assert "stream was cut" in caught.value.message


def test_a_stream_ending_without_done_fails() -> None:
    with (
        running(OpenAIServer(Script(drop_after=2, framing="close"))) as server,
        pytest.raises(BackendFailed) as caught,
    ):
        generate_all(backend_at(v1(server)), chat())
    assert "stream was cut" in caught.value.message


def test_closing_the_generator_early_stops_the_upstream_stream() -> None:
    async def take_two_then_close(backend: OpenAIUpstreamBackend) -> list[Generated]:
        stream = backend.generate(chat())
        items = [await anext(stream), await anext(stream)]
        await stream.aclose()
        return items

    with running(OpenAIServer(SLOW)) as server:
        items = trio.run(take_two_then_close, backend_at(v1(server)))
        assert server.disconnected.wait(5)
    assert text_of(items) == " t0 t1"
    assert server.tokens_sent < len(SLOW.tokens)


def test_cancelling_the_consumer_stops_the_upstream_stream() -> None:
    items: list[Generated] = []

    async def consume_briefly(backend: OpenAIUpstreamBackend) -> None:
        with trio.move_on_after(0.3):
            await collect_into(backend, chat(), items)

    with running(OpenAIServer(SLOW)) as server:
        trio.run(consume_briefly, backend_at(v1(server)))
        assert server.disconnected.wait(5)
    assert 0 < len(items) < len(SLOW.tokens)
    assert server.tokens_sent < len(SLOW.tokens)


def test_has_model_reads_the_model_list(upstream: OpenAIServer) -> None:
    backend = backend_at(v1(upstream))
    assert trio.run(backend.has_model, "smol")
    assert not trio.run(backend.has_model, "llama2")
    assert upstream.received[-1].path == "/v1/models"


def test_has_model_assumes_yes_when_the_upstream_lists_no_models() -> None:
    with running(OpenAIServer(Script(), list_models=False)) as server:
        assert trio.run(backend_at(v1(server)).has_model, "anything")


def test_has_model_is_false_when_the_upstream_is_down_or_unset_or_refuses() -> None:
    assert not trio.run(backend_at(closed_port_url() + "/v1").has_model, "smol")
    assert not trio.run(backend_at("").has_model, "smol")
    with running(OpenAIServer(Script(), api_key="sk-local")) as server:
        assert not trio.run(backend_at(v1(server), key="sk-wrong").has_model, "smol")
        assert trio.run(backend_at(v1(server), key="sk-local").has_model, "smol")


def test_is_registered_under_its_name_and_needs_no_key() -> None:
    backend = registry.create("openai", Settings(openai_api_base="http://vllm.test:8000/v1/"))
    assert isinstance(backend, OpenAIUpstreamBackend)
    assert backend.base_url == "http://vllm.test:8000/v1"
    assert not OpenAIUpstreamBackend.needs_key
    assert backend.describe("smol") == "openai:smol at http://vllm.test:8000/v1"


def test_a_model_s_context_is_the_persona_s_or_the_upstream_s_or_the_default() -> None:
    with running(OpenAIServer(Script(), max_model_len=32768)) as listed:
        backend = backend_at(v1(listed))
        assert trio.run(backend.context_window, "smol", None) == 32768  # vLLM lists it
        assert trio.run(backend.context_window, "smol", 2000) == 2000
    with running(OpenAIServer(Script())) as silent:
        assert trio.run(backend_at(v1(silent)).context_window, "smol", None) == 4096


WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.mark.parametrize(
    ("choice", "native"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tools_and_their_choice_are_sent_natively(
    upstream: OpenAIServer, choice: str, native: Any
) -> None:
    generate_all(backend_at(v1(upstream)), chat(tools=(WEATHER,), tool_choice=choice))
    body = upstream.last_body()
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert body["tool_choice"] == native
    assert "parallel_tool_calls" not in body


def test_history_calls_and_answers_keep_their_ids(upstream: OpenAIServer) -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Lisbon"}')
    messages = (
        ChatMessage("user", "Weather?"),
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", "sunny", tool_call_id="call_1", name="get_weather"),
    )
    request = GenerationRequest("smol", messages, 0.5, tools=(WEATHER,), parallel_tool_calls=False)
    generate_all(backend_at(v1(upstream)), request)
    body = upstream.last_body()
    assert body["messages"][1]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
        }
    ]
    assert body["messages"][2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
    assert body["parallel_tool_calls"] is False


def test_streamed_call_parts_are_joined_into_whole_calls() -> None:
    calls = (
        {"name": "get_weather", "arguments": {"city": "Lisbon"}},
        {"name": "get_weather", "arguments": {"city": "Porto"}},
    )
    with running(OpenAIServer(Script(tokens=(), tool_calls=calls))) as server:
        items = generate_all(backend_at(v1(server)), chat(tools=(WEATHER,)))
    called, finish = items
    assert isinstance(called, ToolCalls) and isinstance(finish, Finish)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in called.calls] == [
        ("call_0", "get_weather", {"city": "Lisbon"}),
        ("call_1", "get_weather", {"city": "Porto"}),
    ]
    assert finish.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("response_format", "native"),
    [
        (ResponseFormat("json_object"), {"type": "json_object"}),
        (
            ResponseFormat("json_schema", {"type": "object"}, "place", strict=True),
            {
                "type": "json_schema",
                "json_schema": {"name": "place", "schema": {"type": "object"}, "strict": True},
            },
        ),
    ],
)
def test_the_response_format_is_sent_natively(
    upstream: OpenAIServer, response_format: ResponseFormat, native: Any
) -> None:
    generate_all(backend_at(v1(upstream)), chat(response_format=response_format))
    assert upstream.last_body()["response_format"] == native


def test_logprobs_are_asked_for_and_passed_on(upstream: OpenAIServer) -> None:
    items = generate_all(backend_at(v1(upstream)), chat(logprobs=True, top_logprobs=2))
    body = upstream.last_body()
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    deltas = [item for item in items if isinstance(item, TextDelta)]
    assert [d.logprobs[0].token for d in deltas] == ["Hello", ",", " wave", " world"]
    assert deltas[0].logprobs[0].logprob == -0.5
    assert [top.token for top in deltas[0].logprobs[0].top] == ["Hello", "x"]


def test_no_logprobs_nor_tools_are_sent_unless_asked(upstream: OpenAIServer) -> None:
    generate_all(backend_at(v1(upstream)), chat())
    body = upstream.last_body()
    assert not {"logprobs", "top_logprobs", "tools", "tool_choice", "response_format"} & set(body)
