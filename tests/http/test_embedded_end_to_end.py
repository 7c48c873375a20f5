"""The whole path with nothing faked: the openai client, hypercorn, the actors, SmolLM2."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import openai
import pytest
from openai import OpenAI

from mem8.config import Settings
from tests.http.test_contract import assert_matches
from tests.support.server import running_server


@pytest.mark.embedded
def test_a_real_answer_streams_back_from_the_embedded_model(settings: Settings) -> None:
    embedded = dataclasses.replace(settings, llm_backend="embedded")
    with running_server(embedded) as server:  # backends chosen as `mem8 serve` chooses them
        client = OpenAI(base_url=server.base_url, api_key="mem8-dummy-key", max_retries=0)
        stream = client.chat.completions.create(
            model="mem8-creative-v1",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=24,
            temperature=0,
            seed=1,
        )
        chunks = list(stream)
        client.close()
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    answer = "".join(pieces)
    assert len(pieces) > 3  # it streamed, token by token
    assert "paris" in answer.lower()
    usage = chunks[-1].usage
    assert usage is not None and 0 < usage.completion_tokens <= 24 and usage.prompt_tokens > 10


CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
FORECAST = {"type": "function", "function": {"name": "forecast", "parameters": CITY}}


@pytest.mark.embedded
def test_a_real_tool_call_and_json_reply_match_their_schemas(settings: Settings) -> None:
    """SmolLM2 through the whole path: what mem8 controls is that the call and the reply
    parse and validate, whatever the small model puts in them."""
    small = dataclasses.replace(settings, llm_backend="embedded", embedded_model="smollm2-135m")
    asked = [{"role": "user", "content": "Forecast for Lisbon, three days?"}]
    with running_server(small) as server:
        client = OpenAI(base_url=server.base_url, api_key="mem8-dummy-key", max_retries=0)
        called = client.chat.completions.create(
            model="mem8-creative-v1",
            messages=asked,  # type: ignore[arg-type]
            tools=[FORECAST],  # type: ignore[list-item]
            tool_choice="required",
            max_tokens=80,
            seed=3,
        )
        replied = client.chat.completions.create(
            model="mem8-creative-v1",
            messages=asked,  # type: ignore[arg-type]
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "place", "schema": CITY, "strict": True},
            },
            max_tokens=80,
            seed=3,
        )
        with pytest.raises(openai.BadRequestError, match="MEM8_EMBEDDED_LOGPROBS") as refused:
            client.chat.completions.create(
                model="mem8-creative-v1",
                messages=asked,  # type: ignore[arg-type]
                logprobs=True,
            )
        client.close()
    assert refused.value.body["param"] == "logprobs"  # type: ignore[index]
    assert called.choices[0].finish_reason == "tool_calls"
    (call,) = called.choices[0].message.tool_calls or []
    assert call.function.name == "forecast"
    jsonschema.validate(json.loads(call.function.arguments), CITY)
    jsonschema.validate(json.loads(replied.choices[0].message.content or ""), CITY)


@pytest.mark.embedded
def test_real_logprobs_come_in_openais_shape(settings: Settings) -> None:
    small = dataclasses.replace(
        settings, llm_backend="embedded", embedded_model="smollm2-135m", embedded_logprobs=True
    )
    with running_server(small) as server:
        client = OpenAI(base_url=server.base_url, api_key="mem8-dummy-key", max_retries=0)
        response = client.chat.completions.with_raw_response.create(
            model="mem8-creative-v1",
            messages=[{"role": "user", "content": "Say hello."}],
            logprobs=True,
            top_logprobs=2,
            max_tokens=8,
            seed=1,
        )
        client.close()
    body = json.loads(response.text)
    assert_matches("CreateChatCompletionResponse", body)
    content = body["choices"][0]["logprobs"]["content"]
    assert "".join(item["token"] for item in content) == body["choices"][0]["message"]["content"]
    assert all(item["logprob"] <= 0 and len(item["top_logprobs"]) == 2 for item in content)
