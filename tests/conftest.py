"""Shared fixtures: settings on a temporary storage file, a live server with a scripted LLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import AsyncOpenAI, OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.grid.threads import configure_threads
from tests.support.server import RunningServer, running_server

configure_threads()  # the test process's numba threads, as a server's


@pytest.fixture(params=["objects", "msgpack"])
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Every server test runs with messages passed as objects (the default) and as msgpack
    bytes at every hop, which proves each message survives the wire."""
    return Settings(
        port=0, storage=str(tmp_path / "mem8.db"), ask_timeout=5.0, actor_wire=request.param
    )


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def server(settings: Settings, llm: ScriptedLLM) -> Iterator[RunningServer]:
    with running_server(settings, dict.fromkeys(settings.personas, llm)) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.base_url, api_key="mem8-dummy-key", max_retries=0) as openai:
        yield openai


@pytest.fixture
def async_client(server: RunningServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key="mem8-dummy-key", max_retries=0)
