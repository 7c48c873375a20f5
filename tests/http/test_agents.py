"""openai-agents, OpenAI's agent SDK, on its default Responses model against a live server: a
persona answers an agent's run, and a run continued by its last response id sees the earlier
turn (the SDK builds on /v1/responses and previous_response_id)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from openai import AsyncOpenAI

from mem8.backends.base import ToolCall
from mem8.backends.fake import ScriptedLLM
from tests.support.server import RunningServer

agents = pytest.importorskip("agents")

MODEL = "mem8-creative-v1"
Run = Callable[[Any], Awaitable[Any]]


def with_agent(server: RunningServer, run: Run) -> Any:
    """Runs `run(agent)` on one event loop with a client closed at its end (warnings are errors:
    a client left to another loop's end leaves its sockets open)."""

    async def main() -> Any:
        agents.set_tracing_disabled(True)  # it would post traces to OpenAI
        key = "mem8-dummy-key"
        async with AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
            model = agents.OpenAIResponsesModel(model=MODEL, openai_client=client)
            return await run(agents.Agent(name="poet", instructions="Be brief.", model=model))

    return asyncio.run(main())


def test_an_agent_run_is_answered_and_continued(server: RunningServer, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore", "Twice, then."])

    async def two_turns(agent: Any) -> tuple[str, str]:
        first = await agents.Runner.run(agent, "Sing of the sea")
        second = await agents.Runner.run(
            agent, "Again?", previous_response_id=first.last_response_id
        )
        return first.final_output, second.final_output

    assert with_agent(server, two_turns) == ("Waves upon the shore", "Twice, then.")
    said = [(m.role, m.content) for m in llm.history[-1].messages[1:]]
    assert said == [
        ("system", "Be brief."),
        ("user", "Sing of the sea"),
        ("assistant", "Waves upon the shore"),
        ("user", "Again?"),
    ]


def test_a_streamed_agent_run_adds_up(server: RunningServer, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore"])

    async def streamed(agent: Any) -> tuple[str, str]:
        result = agents.Runner.run_streamed(agent, "Sing")
        deltas = [
            event.data.delta
            async for event in result.stream_events()
            if event.type == "raw_response_event"
            and event.data.type == "response.output_text.delta"
        ]
        return "".join(deltas), str(result.final_output)

    joined, final = with_agent(server, streamed)
    assert joined == final == "Waves upon the shore"


def test_an_agent_calls_its_function_tool_and_answers_with_the_result(
    server: RunningServer, llm: ScriptedLLM
) -> None:
    """The SDK sends the tool, runs the call the persona makes, sends the result back as a
    function_call_output item, and the persona's next answer is the run's output."""
    seen: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        seen.append(city)
        return f"sunny in {city}"

    llm.enqueue([[ToolCall("call_1", "get_weather", '{"city": "Lisbon"}')], "It is sunny."])

    async def run(agent: Any) -> str:
        agent = agent.clone(tools=[get_weather])
        return str((await agents.Runner.run(agent, "Weather in Lisbon?")).final_output)

    assert with_agent(server, run) == "It is sunny."
    assert seen == ["Lisbon"]
    first, second = llm.history[-2:]
    assert [t.name for t in first.tools] == ["get_weather"]
    assert first.tools[0].parameters["required"] == ["city"]
    result = second.messages[-1]
    assert (result.role, result.tool_call_id, result.content) == (
        "tool",
        "call_1",
        "sunny in Lisbon",
    )
