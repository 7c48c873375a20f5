"""The Responses API through the official openai client against a live server: a response is a
chat with the persona, stored by default, continued by `previous_response_id`, streamed as
OpenAI's typed events; every object validates against OpenAI's description."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from mem8.backends.base import ToolCall
from mem8.backends.fake import ScriptedLLM
from mem8.errors import BackendUnavailable
from tests.http.test_contract import assert_matches, assert_matches_each, sse_data
from tests.support.server import RunningServer

MODEL = "mem8-creative-v1"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
LISBON = ToolCall("call_1", "get_weather", '{"city": "Lisbon"}')
EVENTS_IN_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture
def http(server: RunningServer, client: OpenAI) -> Iterator[httpx.Client]:
    auth = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as http:
        yield http


def test_a_string_input_is_answered_by_the_persona(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore"])
    response = client.responses.create(model=MODEL, input="Tell me of the sea")
    assert response.output_text == "Waves upon the shore"
    assert response.status == "completed" and response.object == "response"
    assert response.id.startswith("resp_") and response.model == MODEL
    assert response.usage is not None and response.usage.output_tokens == 4
    request = llm.history[-1]
    assert request.messages[0].role == "system"  # the persona's own prompt comes first
    assert (request.messages[-1].role, request.messages[-1].content) == (
        "user",
        "Tell me of the sea",
    )


def test_input_items_and_instructions_reach_the_backend(client: OpenAI, llm: ScriptedLLM) -> None:
    client.responses.create(
        model=MODEL,
        instructions="Answer in one line.",
        input=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Go"}]},
        ],
        max_output_tokens=20,
        temperature=0.2,
        top_p=0.5,
    )
    request = llm.history[-1]
    said = [(m.role, m.content) for m in request.messages[1:]]
    assert said == [
        ("system", "Answer in one line."),
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", "Go"),
    ]
    assert (request.temperature, request.top_p, request.max_tokens) == (0.2, 0.5, 20)


def test_previous_response_id_continues_the_conversation(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["Lisbon, in June.", "Two weeks.", "Yes."])
    first = client.responses.create(model=MODEL, input="Where did we meet?", instructions="Be kind")
    second = client.responses.create(
        model=MODEL, input="How long did we stay?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    said = [(m.role, m.content) for m in llm.history[-1].messages[1:]]
    assert said == [  # the earlier turn, without its instructions (as OpenAI does)
        ("user", "Where did we meet?"),
        ("assistant", "Lisbon, in June."),
        ("user", "How long did we stay?"),
    ]
    client.responses.create(model=MODEL, input="Was it hot?", previous_response_id=second.id)
    said = [m.content for m in llm.history[-1].messages[1:]]
    assert said == [
        "Where did we meet?",
        "Lisbon, in June.",
        "How long did we stay?",
        "Two weeks.",
        "Was it hot?",
    ]


def test_a_stored_response_is_retrieved_listed_and_deleted(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue(["Waves upon the shore"])
    created = client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "Sing"}], metadata={"k": "v"}
    )
    found = client.responses.retrieve(created.id)
    assert found.output_text == "Waves upon the shore"
    assert found.metadata == {"k": "v"}
    items = client.responses.input_items.list(created.id)
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]  # type: ignore[union-attr]
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="Again?", previous_response_id=created.id)


def test_input_items_are_paged_newest_first(client: OpenAI) -> None:
    created = client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": f"line {i}"} for i in range(3)],
    )
    texts = [i.content[0].text for i in client.responses.input_items.list(created.id)]  # type: ignore[union-attr]
    assert texts == ["line 2", "line 1", "line 0"]
    page = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert [i.content[0].text for i in page.data] == ["line 0", "line 1"]  # type: ignore[union-attr]
    assert page.has_more


def test_store_false_keeps_nothing_to_continue(client: OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="Hi", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_one_key_never_sees_anothers_responses(server: RunningServer, client: OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="Mine")
    with OpenAI(base_url=server.base_url, api_key="another-key", max_retries=0) as other:
        for attempt in (
            lambda: other.responses.retrieve(created.id),
            lambda: other.responses.delete(created.id),
            lambda: other.responses.input_items.list(created.id),
            lambda: other.responses.create(
                model=MODEL, input="Yours?", previous_response_id=created.id
            ),
        ):
            with pytest.raises(openai.NotFoundError):
                attempt()
    assert client.responses.retrieve(created.id).output_text == "echo: Mine"


def test_streamed_events_come_in_order_and_add_up(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore"])
    with client.responses.stream(model=MODEL, input="Sing") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k] == EVENTS_IN_ORDER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(deltas) == "Waves upon the shore" == final.output_text
    assert client.responses.retrieve(final.id).output_text == "Waves upon the shore"


def test_a_response_cut_at_its_length_is_incomplete(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore"])
    response = client.responses.create(model=MODEL, input="Sing", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("stream", [False, True])
def test_a_backend_that_is_down_is_a_503_and_the_next_response_is_answered(
    client: OpenAI, llm: ScriptedLLM, stream: bool
) -> None:
    llm.enqueue([BackendUnavailable("the test backend is down")])
    with pytest.raises(openai.InternalServerError) as refused:
        client.responses.create(model=MODEL, input="Hi", stream=stream)
    assert refused.value.status_code == 503
    assert "the test backend is down" in str(refused.value)
    created = client.responses.create(model=MODEL, input="Hi again")
    assert created.output_text == "echo: Hi again"
    assert client.responses.input_items.list(created.id).data[0].content[0].text == "Hi again"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0]"),
        ({"tools": [{"type": "function", "parameters": {}}]}, "tools[0].name"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"background": True}, "background"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "f"}}, "tool_choice"),
        ({"text": {"format": {"type": "xml"}}}, "text.format"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"input": [{"type": "function_call_output", "output": "4"}]}, "input[0].call_id"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, None),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, None),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, None),
    ],
)
def test_what_would_change_the_answers_shape_is_refused_naming_it(
    client: OpenAI, extra: dict[str, Any], param: str | None
) -> None:
    body = {"model": MODEL, "input": "Hi", **extra}
    with pytest.raises(openai.BadRequestError) as refused:
        client.post("/responses", body=body, cast_to=httpx.Response)
    named = refused.value.body["param"]  # type: ignore[index]
    assert named == param or (param is None and str(named).startswith("input[0]"))


def test_what_the_routes_answer_is_what_openais_description_says(http: httpx.Client) -> None:
    created = http.post("/responses", json={"model": MODEL, "input": "Hi", "metadata": {"a": "b"}})
    assert created.status_code == 200, created.text
    response = created.json()
    assert_matches("Response", response)
    assert_matches("Response", http.get(f"/responses/{response['id']}").json())
    assert_matches("ResponseItemList", http.get(f"/responses/{response['id']}/input_items").json())
    body = {"model": MODEL, "input": "Hi", "stream": True}
    with http.stream("POST", "/responses", json=body) as streamed:
        assert streamed.headers["content-type"].startswith("text/event-stream")
        lines = list(streamed.iter_lines())
    events = [json.loads(data) for data in sse_data(lines)]
    assert_matches_each("ResponseStreamEvent", events)
    named = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert named == [e["type"] for e in events]
    deleted = http.delete(f"/responses/{response['id']}")
    assert deleted.json() == {"id": response["id"], "object": "response", "deleted": True}


def test_a_function_call_is_an_output_item_and_its_output_continues_the_response(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue([[LISBON], "Sunny in Lisbon."])
    called = client.responses.create(
        model=MODEL,
        input="Weather in Lisbon?",
        tools=[WEATHER],  # type: ignore[list-item]
    )
    (item,) = called.output
    assert item.type == "function_call"
    assert (item.call_id, item.name, item.arguments) == ("call_1", LISBON.name, LISBON.arguments)
    assert llm.history[-1].tools[0].name == "get_weather"
    assert llm.history[-1].tools[0].parameters == WEATHER["parameters"]
    assert called.tools[0].name == "get_weather" and called.tool_choice == "auto"
    answered = client.responses.create(
        model=MODEL,
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": "call_1", "output": '{"sky": "sun"}'}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert answered.output_text == "Sunny in Lisbon."
    sent = llm.history[-1].messages
    assert sent[-2].role == "assistant" and sent[-2].tool_calls == (LISBON,)
    assert (sent[-1].role, sent[-1].tool_call_id, sent[-1].name) == (
        "tool",
        "call_1",
        "get_weather",
    )
    assert sent[-1].content == '{"sky": "sun"}'
    (listed,) = client.responses.input_items.list(answered.id).data
    assert listed.type == "function_call_output" and listed.call_id == "call_1"
    assert client.responses.retrieve(called.id).output[0].type == "function_call"


def test_calls_sent_back_as_input_items_are_one_assistant_turn(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    paris = {"type": "function_call", "call_id": "call_2", "name": "get_weather"}
    client.responses.create(
        model=MODEL,
        tools=[WEATHER],  # type: ignore[list-item]
        input=[  # type: ignore[list-item]
            {"role": "user", "content": "Lisbon and Paris?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": LISBON.arguments,
            },
            {**paris, "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sun"},
            {"type": "function_call_output", "call_id": "call_2", "output": "rain"},
        ],
    )
    sent = llm.history[-1].messages
    assert [m.role for m in sent[-4:]] == ["user", "assistant", "tool", "tool"]
    assert [c.id for c in sent[-3].tool_calls] == ["call_1", "call_2"]
    assert [m.content for m in sent[-2:]] == ["sun", "rain"]


def test_a_streamed_function_call_comes_as_its_items_events(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue([[LISBON]])
    with client.responses.stream(
        model=MODEL,
        input="Weather?",
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    (item,) = final.output
    assert item.type == "function_call" and item.arguments == LISBON.arguments


def test_tool_choice_and_a_json_schema_format_reach_the_backend(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue(['{"city": "Lisbon"}'])
    schema = WEATHER["parameters"]
    response = client.responses.create(
        model=MODEL,
        input="Where?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="none",
        text={"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}},  # type: ignore[typeddict-item]
    )
    asked = llm.history[-1]
    assert asked.tool_choice == "none"
    assert asked.response_format is not None and asked.response_format.schema == schema
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]
    assert json.loads(response.output_text) == {"city": "Lisbon"}


def test_function_calls_and_their_events_are_what_openais_description_says(
    http: httpx.Client, llm: ScriptedLLM
) -> None:
    llm.enqueue([[LISBON], [LISBON]])
    body = {"model": MODEL, "input": "Weather?", "tools": [WEATHER], "tool_choice": "required"}
    created = http.post("/responses", json=body)
    assert created.status_code == 200, created.text
    assert_matches("Response", created.json())
    asked = {**body, "tool_choice": {"type": "function", "name": "get_weather"}, "stream": True}
    with http.stream("POST", "/responses", json=asked) as streamed:
        events = [json.loads(data) for data in sse_data(streamed.iter_lines())]
    assert_matches_each("ResponseStreamEvent", events)
    assert events[-1]["response"]["tool_choice"] == {"type": "function", "name": "get_weather"}
    follow = {
        "model": MODEL,
        "previous_response_id": created.json()["id"],
        "input": [{"type": "function_call_output", "call_id": "call_1", "output": "sun"}],
    }
    answered = http.post("/responses", json=follow)
    assert_matches("Response", answered.json())
    items = http.get(f"/responses/{answered.json()['id']}/input_items").json()
    assert_matches("ResponseItemList", items)


def test_a_finished_response_cannot_be_cancelled(client: OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="Hi")
    with pytest.raises(openai.BadRequestError, match="background"):
        client.responses.cancel(created.id)
    assert client.responses.retrieve(created.id).status == "completed"
