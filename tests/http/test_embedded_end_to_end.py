"""The whole path with nothing faked: the openai client, hypercorn, the actors, SmolLM2."""

from __future__ import annotations

import dataclasses

import pytest
from openai import OpenAI

from mem8.config import Settings
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
