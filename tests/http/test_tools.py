"""Tools, structured output, logprobs and n > 1 through the official openai client."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai import OpenAI

from mem8.backends.base import ToolCall
from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from tests.http.test_contract import assert_matches, assert_matches_each, json_body, sse_data
from tests.support.server import RunningServer, running_server

MODEL = "mem8-creative-v1"
ASK = [{"role": "user", "content": "What is the weather in Lisbon?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
LISBON = ToolCall("call_1", "get_weather", '{"city": "Lisbon"}')


def _post(server: RunningServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30)


def _stream(server: RunningServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"{server.base_url}/chat/completions"
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=30) as response:
        assert response.status_code == 200, response.read()
        events = sse_data(response.iter_lines())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert_matches_each("CreateChatCompletionStreamResponse", chunks)
    return chunks


def test_a_scripted_tool_call_is_answered_as_tool_calls(
    client: OpenAI, llm: ScriptedLLM, server: RunningServer
) -> None:
    llm.enqueue([[LISBON]])
    body = {"model": MODEL, "messages": ASK, "tools": [WEATHER]}
    raw = json_body(_post(server, body))
    assert_matches("CreateChatCompletionResponse", raw)
    llm.enqueue([[LISBON]])
    response = client.chat.completions.create(**body)  # type: ignore[call-overload]
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name) == ("call_1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Lisbon"}
    request = llm.history[-1]
    assert [t.name for t in request.tools] == ["get_weather"]
    assert request.tools[0].parameters == WEATHER["function"]["parameters"]  # type: ignore[index]
    assert request.tool_choice == "auto"


def test_a_streamed_tool_call_arrives_whole_with_its_index(
    client: OpenAI, llm: ScriptedLLM, server: RunningServer
) -> None:
    second = ToolCall("call_2", "get_weather", '{"city": "Porto"}')
    llm.enqueue([[LISBON, second]])
    chunks = _stream(server, {"model": MODEL, "messages": ASK, "tools": [WEATHER]})
    calls = [c for chunk in chunks for c in chunk["choices"][0]["delta"].get("tool_calls", [])]
    assert [(c["index"], c["id"]) for c in calls] == [(0, "call_1"), (1, "call_2")]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    llm.enqueue([[LISBON]])
    with client.chat.completions.stream(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lisbon"}


def test_tool_results_in_the_history_reach_the_backend_and_the_memory(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue(["It is sunny in Lisbon."])
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [_call_json(LISBON)]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'},
    ]
    response = client.chat.completions.create(
        model=MODEL,
        messages=history,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert response.choices[0].message.content == "It is sunny in Lisbon."
    sent = llm.history[-1].messages
    assistant, tool = sent[-2], sent[-1]
    assert assistant.tool_calls == (LISBON,)
    assert (tool.role, tool.tool_call_id, tool.name) == ("tool", "call_1", "get_weather")
    assert tool.content == '{"sky": "sunny"}'


def test_a_tool_call_is_remembered_as_told(client: OpenAI, llm: ScriptedLLM) -> None:
    """What a conscious persona keeps of a call: "called get_weather({...})"."""
    llm.enqueue([[LISBON]])
    asked = [{"role": "user", "content": "Ava, what is the weather in Lisbon? I must know!"}]
    client.chat.completions.create(model=MODEL, messages=asked, tools=[WEATHER])  # type: ignore[arg-type, list-item]
    llm.enqueue(["ok"])
    client.chat.completions.create(
        model=MODEL,
        messages=[*asked, {"role": "user", "content": "and again?"}],  # type: ignore[list-item]
    )
    window = [m.content for m in llm.history[-1].messages]
    assert 'called get_weather({"city": "Lisbon"})' in window


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "get_weather"}}, "get_weather"),
    ],
)
def test_tool_choice_reaches_the_backend(
    client: OpenAI, llm: ScriptedLLM, choice: Any, expected: str
) -> None:
    llm.enqueue(["Sunny." if choice == "none" else [LISBON]])
    response = client.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice=choice,
    )
    assert llm.history[-1].tool_choice == expected
    if choice == "none":
        assert llm.history[-1].offered == ()
        assert response.choices[0].message.content == "Sunny."
        assert response.choices[0].finish_reason == "stop"
    else:
        assert llm.history[-1].offered[0].name == "get_weather"


def test_legacy_functions_are_answered_with_a_function_call(
    llm: ScriptedLLM, server: RunningServer
) -> None:
    llm.enqueue([[LISBON], [LISBON]])
    body = {
        "model": MODEL,
        "messages": ASK,
        "functions": [WEATHER["function"]],
        "function_call": {"name": "get_weather"},
    }
    answer = json_body(_post(server, body))
    assert_matches("CreateChatCompletionResponse", answer)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {
        "name": "get_weather",
        "arguments": '{"city": "Lisbon"}',
    }
    assert "tool_calls" not in choice["message"]
    assert llm.history[-1].tool_choice == "get_weather"
    chunks = _stream(server, body)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert {"function_call": choice["message"]["function_call"]} in deltas
    assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"


def test_json_schema_output_reaches_the_backend(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(['{"city": "Lisbon"}'])
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    response = client.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": schema, "strict": True},
        },
    )
    assert json.loads(response.choices[0].message.content or "") == {"city": "Lisbon"}
    asked = llm.history[-1].response_format
    assert asked is not None
    assert (asked.kind, asked.schema, asked.name, asked.strict) == (
        "json_schema",
        schema,
        "place",
        True,
    )
    client.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        response_format={"type": "json_object"},
    )
    assert llm.history[-1].response_format is not None
    assert llm.history[-1].response_format.kind == "json_object"


def test_logprobs_come_in_openais_shape(
    client: OpenAI, llm: ScriptedLLM, server: RunningServer
) -> None:
    llm.enqueue(["Sunny and warm", "Sunny and warm"])
    body = {"model": MODEL, "messages": ASK, "logprobs": True, "top_logprobs": 2}
    answer = json_body(_post(server, body))
    assert_matches("CreateChatCompletionResponse", answer)
    content = answer["choices"][0]["logprobs"]["content"]
    assert [item["token"] for item in content] == ["Sunny", " and", " warm"]
    assert all(len(item["top_logprobs"]) == 2 for item in content)
    assert content[0]["bytes"] == list(b"Sunny")
    chunks = _stream(server, body)
    streamed = [
        item
        for chunk in chunks
        for item in (chunk["choices"][0]["logprobs"] or {}).get("content", [])
    ]
    assert [item["token"] for item in streamed] == ["Sunny", " and", " warm"]
    llm.enqueue(["Sunny"])
    response = client.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        logprobs=True,
    )
    assert response.choices[0].logprobs is not None
    assert response.choices[0].logprobs.content is not None
    assert response.choices[0].logprobs.content[0].top_logprobs == []


def test_n_answers_are_sampled_with_their_own_seeds(
    client: OpenAI, llm: ScriptedLLM, server: RunningServer
) -> None:
    llm.enqueue(["first answer", "second answer"])
    response = client.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        n=2,
        seed=7,
    )
    assert [c.message.content for c in response.choices] == ["first answer", "second answer"]
    assert [c.index for c in response.choices] == [0, 1]
    assert [r.seed for r in llm.history[-2:]] == [7, 8]
    assert response.usage is not None and response.usage.completion_tokens == 4
    llm.enqueue(["first answer", "second answer"])
    chunks = _stream(server, {"model": MODEL, "messages": ASK, "n": 2})
    texts = ["", ""]
    for chunk in chunks:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == ["first answer", "second answer"]
    finished = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert finished == [0, 1]


def test_only_the_first_of_n_answers_is_remembered(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["kept answer", "other answer", "ok"])
    asked = [{"role": "user", "content": "Ava, tell me something remarkable! Please!"}]
    client.chat.completions.create(model=MODEL, messages=asked, n=2)  # type: ignore[arg-type]
    client.chat.completions.create(
        model=MODEL,
        messages=[*asked, {"role": "user", "content": "more"}],  # type: ignore[list-item]
    )
    window = [m.content for m in llm.history[-1].messages]
    assert "kept answer" in window
    assert "other answer" not in window


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"tools": [{"type": "function", "function": {"description": "x"}}]},
            "tools[0].function.name",
        ),
        ({"tools": [{"type": "retrieval"}]}, "tools[0]"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"n": 0}, "n"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"response_format": {"type": "xml"}}, "response_format"),
    ],
)
def test_malformed_shapes_are_refused_naming_the_field(
    server: RunningServer, extra: dict[str, Any], param: str
) -> None:
    response = _post(server, {"model": MODEL, "messages": ASK, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert_matches("ErrorResponse", response.json())


def test_a_tool_message_needs_its_call_id(server: RunningServer) -> None:
    messages = [*ASK, {"role": "tool", "content": "sunny"}]
    response = _post(server, {"model": MODEL, "messages": messages})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[1].tool_call_id"


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


class _WithoutLogprobs(ScriptedLLM):
    can_logprobs = False


def test_logprobs_from_a_backend_without_them_are_refused_naming_it(settings: Settings) -> None:
    backends = dict.fromkeys(settings.personas, _WithoutLogprobs())
    with running_server(settings, backends) as running:
        response = _post(running, {"model": MODEL, "messages": ASK, "logprobs": True})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "logprobs"
    assert "scripted:" in error["message"]


def test_a_legacy_call_and_its_answer_are_paired_by_a_made_up_id(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue(["Sunny."])
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": "{}"},
        },
        {"role": "function", "name": "get_weather", "content": "sunny"},
    ]
    client.chat.completions.create(
        model=MODEL,
        messages=history,  # type: ignore[arg-type]
        functions=[WEATHER["function"]],  # type: ignore[list-item]
    )
    assistant, answer = llm.history[-1].messages[-2:]
    (call,) = assistant.tool_calls
    assert call.id == "call_1_0"
    assert (answer.role, answer.tool_call_id, answer.name) == ("tool", "call_1_0", "get_weather")


def test_a_resent_tool_conversation_is_not_added_again_from_the_window(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue([[LISBON], "It is sunny.", "You are welcome."])
    called = {"role": "assistant", "content": None, "tool_calls": [_call_json(LISBON)]}
    answered = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    said = {"role": "assistant", "content": "It is sunny."}
    thanks = {"role": "user", "content": "Thanks!"}
    for history in ([*ASK], [*ASK, called, answered], [*ASK, called, answered, said, thanks]):
        client.chat.completions.create(
            model=MODEL,
            messages=history,  # type: ignore[arg-type]
            tools=[WEATHER],  # type: ignore[list-item]
        )
    sent = [m for m in llm.history[-1].messages if m.role != "system"]
    assert [m.role for m in sent] == ["user", "assistant", "tool", "assistant", "user"]


def test_a_stored_tool_call_is_retrieved_as_a_tool_call(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue([[LISBON]])
    created = client.chat.completions.create(
        model=MODEL,
        messages=ASK,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        store=True,
    )
    stored = client.chat.completions.retrieve(created.id)
    choice = stored.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        LISBON.name,
        LISBON.arguments,
    )
    raw = client.chat.completions.with_raw_response.retrieve(created.id).http_response
    assert_matches("CreateChatCompletionResponse", raw.json())


@pytest.mark.parametrize("stream", [False, True])
def test_a_retried_tool_call_is_answered_again_as_a_tool_call(
    server: RunningServer, llm: ScriptedLLM, stream: bool
) -> None:
    llm.enqueue([[LISBON]])
    body = {"model": MODEL, "messages": ASK, "tools": [WEATHER]}
    key = {"Idempotency-Key": f"weather-{stream}"}
    url = f"{server.base_url}/chat/completions"
    first = httpx.post(url, json=body, headers=key, timeout=30).json()
    if stream:
        with httpx.stream("POST", url, json={**body, "stream": True}, headers=key) as again:
            assert again.headers["Idempotent-Replayed"] == "true"
            chunks = [json.loads(e) for e in sse_data(again.iter_lines())[:-1]]
        calls = [c for chunk in chunks for c in chunk["choices"][0]["delta"].get("tool_calls", [])]
        assert [c["function"]["arguments"] for c in calls] == [LISBON.arguments]
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    else:
        again = httpx.post(url, json=body, headers=key, timeout=30)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["choices"] == first["choices"]
        assert again.json()["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"
    assert len(llm.history) == 1  # answered once
