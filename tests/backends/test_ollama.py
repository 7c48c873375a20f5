"""OllamaBackend against a real HTTP server speaking Ollama's NDJSON chat stream."""

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
from mem8.backends.ollama import OllamaBackend
from mem8.config import Settings
from mem8.errors import BackendFailed, BackendUnavailable
from tests.backends import driving
from tests.backends.driving import SLOW, collect_into, generate_all, text_of
from tests.backends.wire_servers import OllamaServer, Script, closed_port_url, running


@pytest.fixture
def ollama() -> Iterator[OllamaServer]:
    with running(OllamaServer(Script())) as server:
        yield server


def backend_at(url: str, *, timeout: float = 10.0) -> OllamaBackend:
    return OllamaBackend(Settings(ollama_api_base=url, backend_timeout=timeout))


def chat(
    model: str = "llama2:latest", *, temperature: float = 0.7, **options: Any
) -> GenerationRequest:
    return driving.chat(model, temperature=temperature, **options)


def test_streams_the_text_then_one_finish_with_the_token_counts(ollama: OllamaServer) -> None:
    items = generate_all(backend_at(ollama.url), chat())
    assert text_of(items) == "Hello, wave world"
    assert [type(item) for item in items] == [TextDelta] * 4 + [Finish]
    assert items[-1] == Finish("stop", prompt_tokens=11, completion_tokens=4)


def test_sends_the_conversation_streamed_with_every_sampling_option(
    ollama: OllamaServer,
) -> None:
    request = chat(temperature=0.3, top_p=0.9, max_tokens=50, stop=("\n\n", "User:"), seed=7)
    generate_all(backend_at(ollama.url), request)
    received = ollama.received[-1]
    assert (received.method, received.path) == ("POST", "/api/chat")
    assert received.body == {
        "model": "llama2:latest",
        "messages": [
            {"role": "system", "content": "You are Ada."},
            {"role": "user", "content": "Hello?"},
        ],
        "stream": True,
        "options": {
            "temperature": 0.3,
            "top_p": 0.9,
            "num_predict": 50,
            "stop": ["\n\n", "User:"],
            "seed": 7,
        },
    }


def test_leaves_unset_options_out(ollama: OllamaServer) -> None:
    generate_all(backend_at(ollama.url), chat(temperature=0.0))
    assert ollama.last_body()["options"] == {"temperature": 0.0}


def test_hitting_num_predict_finishes_with_length(ollama: OllamaServer) -> None:
    items = generate_all(backend_at(ollama.url), chat(max_tokens=2))
    assert text_of(items) == "Hello,"
    assert items[-1] == Finish("length", prompt_tokens=11, completion_tokens=2)


def test_counts_missing_from_the_done_line_are_zero() -> None:
    with running(OllamaServer(Script(send_counts=False))) as server:
        items = generate_all(backend_at(server.url), chat())
    assert items[-1] == Finish("stop", prompt_tokens=0, completion_tokens=0)


def test_a_name_without_tag_means_latest(ollama: OllamaServer) -> None:
    items = generate_all(backend_at(ollama.url), chat("llama2"))
    assert text_of(items) == "Hello, wave world"


def test_a_missing_model_is_unavailable_and_says_how_to_pull_it(ollama: OllamaServer) -> None:
    with pytest.raises(BackendUnavailable) as caught:
        generate_all(backend_at(ollama.url), chat("mistral:7b"))
    message = caught.value.message
    assert "ollama pull mistral:7b" in message
    assert ollama.url in message
    assert 'model "mistral:7b" not found' in message


def test_a_closed_port_is_unavailable_and_says_what_to_do() -> None:
    url = closed_port_url()
    with pytest.raises(BackendUnavailable) as caught:
        generate_all(backend_at(url), chat())
    message = caught.value.message
    assert f"Ollama at {url} is not reachable" in message
    assert "ollama serve" in message
    assert "OLLAMA_API_BASE" in message
    assert "MEM8_LLM_BACKEND=embedded" in message


def test_another_http_error_fails_with_the_status_and_ollamas_text(ollama: OllamaServer) -> None:
    with pytest.raises(BackendFailed) as caught:
        generate_all(backend_at(ollama.url + "/elsewhere"), chat())
    assert "HTTP 404: 404 page not found" in caught.value.message


def test_a_connection_dropped_mid_stream_fails_after_the_text_so_far() -> None:
    items: list[Generated] = []
    with (
        running(OllamaServer(Script(drop_after=2))) as server,
        pytest.raises(BackendFailed) as caught,
    ):
        trio.run(collect_into, backend_at(server.url), chat(), items)
    assert text_of(items) == "Hello,"
    assert "stream was cut" in caught.value.message


def test_a_stream_ending_without_its_done_line_fails() -> None:
    with (
        running(OllamaServer(Script(drop_after=2, framing="close"))) as server,
        pytest.raises(BackendFailed) as caught,
    ):
        generate_all(backend_at(server.url), chat())
    assert "stream was cut" in caught.value.message


def test_an_error_line_mid_stream_fails_with_ollamas_message() -> None:
    with (
        running(OllamaServer(Script(error_after=1))) as server,
        pytest.raises(BackendFailed) as caught,
    ):
        generate_all(backend_at(server.url), chat())
    assert "llama runner process has terminated" in caught.value.message


def test_no_answer_within_the_backend_timeout_is_unavailable() -> None:
    with (
        running(OllamaServer(Script(token_delay=2.0))) as server,
        pytest.raises(BackendUnavailable) as caught,
    ):
        generate_all(backend_at(server.url, timeout=0.2), chat())
    assert "did not answer within 0.2 s" in caught.value.message


def test_closing_the_generator_early_stops_the_upstream_stream() -> None:
    async def take_two_then_close(backend: OllamaBackend) -> list[Generated]:
        stream = backend.generate(chat())
        items = [await anext(stream), await anext(stream)]
        await stream.aclose()
        return items

    with running(OllamaServer(SLOW)) as server:
        items = trio.run(take_two_then_close, backend_at(server.url))
        assert server.disconnected.wait(5)
    assert text_of(items) == " t0 t1"
    assert server.tokens_sent < len(SLOW.tokens)


def test_cancelling_the_consumer_stops_the_upstream_stream() -> None:
    items: list[Generated] = []

    async def consume_briefly(backend: OllamaBackend) -> None:
        with trio.move_on_after(0.3):
            await collect_into(backend, chat(), items)

    with running(OllamaServer(SLOW)) as server:
        trio.run(consume_briefly, backend_at(server.url))
        assert server.disconnected.wait(5)
    assert 0 < len(items) < len(SLOW.tokens)
    assert server.tokens_sent < len(SLOW.tokens)


def test_has_model_reads_the_tags(ollama: OllamaServer) -> None:
    backend = backend_at(ollama.url)
    assert trio.run(backend.has_model, "llama2:latest")
    assert trio.run(backend.has_model, "llama2")
    assert not trio.run(backend.has_model, "llama2:13b")
    assert not trio.run(backend.has_model, "mistral")
    assert ollama.received[-1].path == "/api/tags"


def test_has_model_is_false_when_ollama_is_down() -> None:
    assert not trio.run(backend_at(closed_port_url()).has_model, "llama2")


def test_reachable(ollama: OllamaServer) -> None:
    assert trio.run(backend_at(ollama.url).reachable)
    assert not trio.run(backend_at(closed_port_url()).reachable)


def test_is_registered_under_its_name() -> None:
    settings = Settings(ollama_api_base="http://ollama.test:11434/")
    backend = registry.create("ollama", settings)
    assert isinstance(backend, OllamaBackend)
    assert backend.base_url == "http://ollama.test:11434"
    assert backend.describe("llama2") == "ollama:llama2 at http://ollama.test:11434"


def test_the_context_is_sent_as_num_ctx(ollama: OllamaServer) -> None:
    generate_all(backend_at(ollama.url), chat(temperature=0.0, context=3000))
    assert ollama.last_body()["options"] == {"temperature": 0.0, "num_ctx": 3000}


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ({"model_info": {"llama.context_length": 2048}}, 2048),  # what the model was trained for
        ({"model_info": {"qwen2.context_length": 32768}}, 4096),  # capped: Ollama's own default
        ({"parameters": "stop <|im_end|>\nnum_ctx 8192", "model_info": {}}, 8192),  # Modelfile
        ({"details": {}}, 4096),  # nothing said: ollama_context
    ],
)
def test_a_model_s_context_comes_from_api_show(shown: dict[str, Any], expected: int) -> None:
    with running(OllamaServer(Script(), shown=shown)) as server:
        backend = backend_at(server.url)
        assert trio.run(backend.context_window, "llama2:latest", None) == expected
        assert trio.run(backend.context_window, "llama2:latest", 1234) == 1234  # the persona's
        asked = [r for r in server.received if r.path == "/api/show"]
    assert len(asked) == 1 and asked[0].body == {"model": "llama2:latest"}  # asked once


def test_an_unreachable_ollama_s_context_is_the_default_and_asked_again() -> None:
    backend = backend_at(closed_port_url())
    assert trio.run(backend.context_window, "llama2:latest", None) == 4096
    assert backend._contexts.known == {}


WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PLACE = {"type": "object", "properties": {"city": {"type": "string"}}}


def test_tools_and_history_calls_are_sent_in_ollamas_form(ollama: OllamaServer) -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Lisbon"}')
    messages = (
        ChatMessage("user", "Weather?"),
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", '{"sky": "sunny"}', tool_call_id="call_1", name="get_weather"),
    )
    request = GenerationRequest("llama2:latest", messages, 0.5, tools=(WEATHER,))
    generate_all(backend_at(ollama.url), request)
    body = ollama.last_body()
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
    assert body["messages"][1]["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Lisbon"}}}
    ]
    assert body["messages"][2] == {
        "role": "tool",
        "content": '{"sky": "sunny"}',
        "tool_name": "get_weather",
    }


def test_tool_choice_none_sends_no_tools(ollama: OllamaServer) -> None:
    generate_all(backend_at(ollama.url), chat(tools=(WEATHER,), tool_choice="none"))
    assert "tools" not in ollama.last_body()


def test_ollamas_tool_calls_are_answered_as_tool_calls() -> None:
    called = {"name": "get_weather", "arguments": {"city": "Lisbon"}}
    with running(OllamaServer(Script(tokens=(), tool_calls=(called,)))) as server:
        items = generate_all(backend_at(server.url), chat(tools=(WEATHER,)))
    calls, finish = items
    assert isinstance(calls, ToolCalls) and isinstance(finish, Finish)
    (call,) = calls.calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Lisbon"})
    assert call.id.startswith("call_")
    assert finish.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [(ResponseFormat("json_object"), "json"), (ResponseFormat("json_schema", PLACE), PLACE)],
)
def test_the_response_format_is_sent_as_format(
    ollama: OllamaServer, response_format: ResponseFormat, expected: Any
) -> None:
    generate_all(backend_at(ollama.url), chat(response_format=response_format))
    assert ollama.last_body()["format"] == expected


def test_ollama_gives_no_logprobs() -> None:
    assert not OllamaBackend.can_logprobs
