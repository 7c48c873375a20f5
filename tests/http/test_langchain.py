"""langchain-openai's tools and structured output against a live server (scripted backend)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import openai
import pytest
from langchain_core.messages import AIMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from mem8.backends.base import ToolCall
from mem8.backends.fake import ScriptedLLM
from tests.support.server import RunningServer

MODEL = "mem8-creative-v1"


class Weather(BaseModel):
    """The weather in a city."""

    city: str = Field(description="the city")
    unit: Literal["celsius", "fahrenheit"] = "celsius"


@pytest.fixture
def chat(server: RunningServer) -> Iterator[ChatOpenAI]:
    # a client of its own: langchain caches its default one by base URL, and closing that
    # would leave it closed for a later test's server on the same port
    with openai.DefaultHttpxClient() as http:
        yield ChatOpenAI(
            base_url=server.base_url,
            api_key="mem8-dummy-key",
            model=MODEL,
            max_retries=0,
            http_client=http,
        )  # type: ignore[call-arg]


def test_bind_tools_gives_tool_calls(chat: ChatOpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue([[ToolCall("call_9", "Weather", '{"city": "Lisbon", "unit": "celsius"}')]])
    answer = chat.bind_tools([Weather]).invoke("What is the weather in Lisbon?")
    assert isinstance(answer, AIMessage)
    assert answer.tool_calls == [
        {
            "name": "Weather",
            "args": {"city": "Lisbon", "unit": "celsius"},
            "id": "call_9",
            "type": "tool_call",
        }
    ]
    (tool,) = llm.history[-1].tools
    assert tool.name == "Weather"
    assert tool.parameters["properties"]["city"]["type"] == "string"


def test_bind_tools_streams_tool_calls(chat: ChatOpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue([[ToolCall("call_9", "Weather", '{"city": "Porto"}')]])
    chunks = list(chat.bind_tools([Weather]).stream("Weather in Porto?"))
    whole: Any = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert [(c["name"], c["args"]) for c in whole.tool_calls] == [("Weather", {"city": "Porto"})]


@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
def test_with_structured_output_gives_the_model(
    chat: ChatOpenAI, llm: ScriptedLLM, method: str
) -> None:
    arguments = json.dumps({"city": "Lisbon", "unit": "fahrenheit"})
    llm.enqueue(
        [[ToolCall("call_1", "Weather", arguments)] if method == "function_calling" else arguments]
    )
    structured = chat.with_structured_output(Weather, method=method)  # type: ignore[arg-type]
    answer = structured.invoke("Weather in Lisbon, as JSON with city and unit")
    assert answer == Weather(city="Lisbon", unit="fahrenheit")
    request = llm.history[-1]
    if method == "function_calling":
        assert request.tool_choice == "Weather"
    elif method == "json_schema":
        assert request.response_format is not None
        assert request.response_format.kind == "json_schema"
        assert request.response_format.schema is not None
        assert set(request.response_format.schema["properties"]) == {"city", "unit"}
    else:
        assert request.response_format is not None
        assert request.response_format.kind == "json_object"
