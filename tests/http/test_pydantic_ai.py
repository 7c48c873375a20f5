"""pydantic-ai's Agent over its OpenAI chat model against a live server (scripted backend): a plain
text run, and structured output, which pydantic-ai asks for as a call of its output tool."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.output import DEFAULT_OUTPUT_TOOL_NAME
from pydantic_ai.providers.openai import OpenAIProvider

from mem8.backends.base import ToolCall
from mem8.backends.fake import ScriptedLLM
from tests.support.server import RunningServer

MODEL = "mem8-creative-v1"


class Weather(BaseModel):
    """The weather in a city."""

    city: str = Field(description="the city")
    unit: Literal["celsius", "fahrenheit"] = "celsius"


def _run(server: RunningServer, prompt: str, output_type: Any = str) -> Any:
    """The agent's output for one run; its client is closed after, else the server waits out
    the kept-alive connection."""

    async def run() -> Any:
        provider = OpenAIProvider(base_url=server.base_url, api_key="mem8-dummy-key")
        agent = Agent(OpenAIChatModel(MODEL, provider=provider), output_type=output_type)
        try:
            return (await agent.run(prompt)).output
        finally:
            await provider.client.close()

    return asyncio.run(run())


def test_a_plain_agent_run_gives_the_persona_text(server: RunningServer, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore"])
    assert _run(server, "Tell me of the sea") == "Waves upon the shore"
    assert llm.history[-1].messages[-1].content == "Tell me of the sea"


def test_output_type_arrives_as_the_model_instance(server: RunningServer, llm: ScriptedLLM) -> None:
    arguments = json.dumps({"city": "Lisbon", "unit": "fahrenheit"})
    llm.enqueue([[ToolCall("call_3", DEFAULT_OUTPUT_TOOL_NAME, arguments)]])
    assert _run(server, "Weather in Lisbon?", Weather) == Weather(city="Lisbon", unit="fahrenheit")
    request = llm.history[-1]
    (tool,) = request.tools
    assert tool.name == DEFAULT_OUTPUT_TOOL_NAME
    assert set(tool.parameters["properties"]) == {"city", "unit"}
    assert request.tool_choice == "required"  # pydantic-ai allows no text answer here
