"""The embedded model held to schemas: grammar-made tool calls and JSON replies from SmolLM2,
checked only for what mem8 controls (they parse and match the schema), over several seeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import jsonschema
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
)
from mem8.backends.constrained import constraint, read_calls, rendered
from mem8.backends.embedded import EmbeddedBackend, _Generation
from mem8.config import Settings

if TYPE_CHECKING:
    from llama_cpp import Llama

WEATHER = Tool(
    "get_weather",
    "The weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "unit", "days"],
        "additionalProperties": False,
    },
)
TIME = Tool("get_time", "The time in a city", {"type": "object", "properties": {}})
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
    },
    "required": ["name", "age", "hobbies"],
    "additionalProperties": False,
}
SEEDS = (1, 2, 3)  # 1 to 5 pass; three keep the run short


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    shared = EmbeddedBackend(Settings(embedded_model="smollm2-135m", embedded_logprobs=True))
    trio.run(shared.start)
    yield shared
    trio.run(shared.aclose)


def _generate(backend: EmbeddedBackend, request: GenerationRequest) -> list[Generated]:
    async def collect() -> list[Generated]:
        return [item async for item in backend.generate(request)]

    return trio.run(collect)


def _ask(text: str, seed: int, **options: Any) -> GenerationRequest:
    messages = (ChatMessage("system", "You are helpful."), ChatMessage("user", text))
    return GenerationRequest("smol", messages, 0.9, max_tokens=120, seed=seed, **options)


@pytest.mark.embedded
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("choice", ["required", "get_weather"])
def test_a_due_call_is_json_matching_the_tools_schema(
    backend: EmbeddedBackend, seed: int, choice: str
) -> None:
    request = _ask("Weather for Lisbon this week?", seed, tools=(WEATHER, TIME), tool_choice=choice)
    items = _generate(backend, request)
    calls, finish = items
    assert isinstance(calls, ToolCalls) and isinstance(finish, Finish)
    assert finish.finish_reason == "tool_calls"
    (call,) = calls.calls
    if choice == "get_weather":
        assert call.name == "get_weather"
    tool = {"get_weather": WEATHER, "get_time": TIME}[call.name]
    jsonschema.validate(json.loads(call.arguments), tool.parameters)


@pytest.mark.embedded
@pytest.mark.parametrize("seed", SEEDS)
def test_a_reply_in_a_json_schema_format_validates(backend: EmbeddedBackend, seed: int) -> None:
    wanted = ResponseFormat("json_schema", PERSON, "person", strict=True)
    items = _generate(backend, _ask("Invent a person.", seed, response_format=wanted))
    assert isinstance(items[-1], Finish) and items[-1].finish_reason == "stop"
    text = "".join(item.text for item in items if isinstance(item, TextDelta))
    jsonschema.validate(json.loads(text), PERSON)


@pytest.mark.embedded
def test_a_json_object_format_gives_an_object(backend: EmbeddedBackend) -> None:
    items = _generate(
        backend, _ask("Describe Lisbon.", 1, response_format=ResponseFormat("json_object"))
    )
    text = "".join(item.text for item in items if isinstance(item, TextDelta))
    assert isinstance(json.loads(text), dict)


@pytest.mark.embedded
def test_auto_gives_text_or_a_call_never_a_mix(backend: EmbeddedBackend) -> None:
    for seed in SEEDS:
        items = _generate(backend, _ask("Weather for Lisbon?", seed, tools=(WEATHER,)))
        texts = [item for item in items if isinstance(item, TextDelta)]
        calls = [item for item in items if isinstance(item, ToolCalls)]
        assert not (texts and calls)
        assert not any(t.text.startswith("<tool_call>") for t in texts[:1])


@pytest.mark.embedded
def test_logprobs_come_with_each_piece(backend: EmbeddedBackend) -> None:
    items = _generate(backend, _ask("Say hello.", 1, logprobs=True, top_logprobs=3))
    deltas = [item for item in items if isinstance(item, TextDelta)]
    assert deltas and all(delta.logprobs for delta in deltas)
    for delta in deltas:
        for item in delta.logprobs:
            assert item.logprob <= 0 and len(item.top) == 3
    assert "".join(i.token for d in deltas for i in d.logprobs) == "".join(d.text for d in deltas)


def test_tool_turns_are_written_as_the_model_writes_them() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Lisbon"}')
    messages = (
        ChatMessage("system", "Be brief."),
        ChatMessage("assistant", "", (call,)),
        ChatMessage("tool", "sunny", tool_call_id="call_1", name="get_weather"),
    )
    turns = rendered(messages, "HINT")
    assert turns[0] == {"role": "system", "content": "Be brief.\n\nHINT"}
    assert turns[1]["content"] == (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Lisbon"}}</tool_call>'
    )
    assert turns[2] == {
        "role": "user",
        "content": "<tool_response>\nget_weather: sunny\n</tool_response>",
    }
    (read,) = read_calls(turns[1]["content"])
    assert (read.name, json.loads(read.arguments)) == ("get_weather", {"city": "Lisbon"})
    assert read_calls('<tool_call>{"name": "get_we') == ()


def test_tool_choice_none_and_no_format_leave_the_model_free() -> None:
    request = _ask("hi", 1, tools=(WEATHER,), tool_choice="none")
    assert constraint(request).grammar is None
    assert constraint(_ask("hi", 1)).mode == "text"


def test_definitions_of_the_parameters_are_found_from_the_call() -> None:
    nested = Tool(
        "book",
        "",
        {
            "type": "object",
            "properties": {"where": {"$ref": "#/$defs/Place"}},
            "required": ["where"],
            "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}}},
        },
    )
    held = constraint(_ask("hi", 1, tools=(nested,), tool_choice="required"))
    assert held.mode == "call" and held.grammar is not None and "city" in held.grammar


def _chunks(*pieces: str) -> Iterator[Any]:
    for piece in pieces:
        yield {"choices": [{"delta": {"content": piece}, "finish_reason": None}]}
    yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}


def _steps(generation: _Generation) -> list[Generated]:
    items = []
    while (item := generation.step()) is not None:
        items.append(item)
    return items


def test_under_auto_prose_streams_as_it_comes() -> None:
    llama = cast("Llama", SimpleNamespace(n_tokens=15))
    generation = _Generation(llama, _chunks("Sun", "ny"), 10, "either", call=lambda: _chunks())
    assert _steps(generation) == [TextDelta("Sun"), TextDelta("ny"), Finish("stop", 10, 5)]


def test_under_auto_a_begun_call_is_made_again_under_the_grammar() -> None:
    remade: list[bool] = []

    def call() -> Iterator[Any]:
        remade.append(True)
        return _chunks('<tool_call>{"name": "get_weather", ', '"arguments": {"city": "Lisbon"}}')

    llama = cast("Llama", SimpleNamespace(n_tokens=15))
    generation = _Generation(
        llama, _chunks("\n", '{"name": "get_w', "eather"), 10, "either", call=call
    )
    calls, finish = _steps(generation)
    assert remade == [True]
    assert isinstance(calls, ToolCalls)
    assert [(c.name, json.loads(c.arguments)) for c in calls.calls] == [
        ("get_weather", {"city": "Lisbon"})
    ]
    assert finish == Finish("tool_calls", 10, 5)


@pytest.mark.parametrize(
    ("pieces", "remade"),
    [
        (("``", "`json\n", '{"name"'), True),  # a call written as a fenced JSON block
        (("```", "python\n", "print(1)"), False),  # code: prose
        (("`", "x` is a variable"), False),
    ],
)
def test_under_auto_a_fenced_json_block_is_a_call_begun(
    pieces: tuple[str, ...], remade: bool
) -> None:
    made: list[bool] = []

    def call() -> Iterator[Any]:
        made.append(True)
        return _chunks('<tool_call>{"name": "get_weather", "arguments": {"city": "Lisbon"}}')

    llama = cast("Llama", SimpleNamespace(n_tokens=15))
    generation = _Generation(llama, _chunks(*pieces), 10, "either", call=call)
    steps = _steps(generation)
    assert bool(made) == remade
    if remade:
        assert isinstance(steps[0], ToolCalls)
    else:
        assert "".join(s.text for s in steps if isinstance(s, TextDelta)) == "".join(pieces)
