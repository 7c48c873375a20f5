"""/mcp on a real server, through the official `mcp` client over streamable HTTP: tools and
resources that really keep and find memories, under the same keys and tenants as /v1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mem8.backends.fake import ScriptedLLM
from mem8.cli import main
from mem8.config import Settings
from tests.support.server import RunningServer, running_server

TOOLS = {"remember", "recall", "list_memories", "forget", "personas"}


@pytest.fixture(params=["objects", "msgpack"])
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """A server whose actors pass messages as objects, and one where they pass msgpack."""
    settings = Settings(
        port=0,
        storage=str(tmp_path / "mem8.db"),
        ask_timeout=5.0,
        encoder="minilm",
        actor_wire=request.param,
    )
    with running_server(settings, dict.fromkeys(settings.personas, ScriptedLLM())) as running:
        yield running


async def _session_calls(url: str, key: str, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """tools/list, then each tools/call in order, in one MCP session; their results."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        results = []
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            results.append(result)
        return {t.name for t in tools.tools}, results, session


def _structured(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def test_tools_keep_and_find_memories_of_the_callers_tenant(server: RunningServer) -> None:
    url = server.root + "/mcp"
    kept = "Ada's build server is called zephyr-42."
    calls = [
        ("remember", {"text": kept, "persona": "mem8-technical-v1"}),
        ("remember", {"text": "The espresso machine on floor 3 is broken."}),
        ("recall", {"query": "what is the build server called?"}),
        ("list_memories", {"persona": "mem8-technical-v1"}),
        ("personas", {}),
    ]
    tools, results, _ = anyio.run(_session_calls, url, "mem8-alice", calls)
    assert tools == TOOLS
    remembered = _structured(results[0])["ids"]
    assert len(remembered) == 1
    recalled = _structured(results[2])["memories"]
    assert recalled[0]["id"] == remembered[0] and recalled[0]["text"] == kept
    assert recalled[0]["score"] >= recalled[-1]["score"]
    listed = _structured(results[3])["memories"]
    assert [m["text"] for m in listed] == [kept]
    personas = _structured(results[4])["personas"]
    assert {p["id"] for p in personas} == set(server.settings.personas)
    assert personas[0]["traits"]["openness"] == 0.9

    # what MCP kept is the key's memory on /v1 too; another key sees none of it
    own = httpx.get(server.base_url + "/memories", headers={"Authorization": "Bearer mem8-alice"})
    assert {m["text"] for m in own.json()["data"]} >= {kept}
    other = [
        ("recall", {"query": "build server"}),
        ("forget", {"memory_id": remembered[0]}),
        ("recall", {"query": " "}),
        ("recall", {"query": "x", "limit": 0}),
    ]
    _, results, _ = anyio.run(_session_calls, url, "mem8-bob", other)
    assert _structured(results[0])["memories"] == []
    assert results[1].is_error  # not bob's to forget
    assert f"No memory '{remembered[0]}'" in results[1].content[0].text
    assert results[2].is_error and "query must not be empty" in results[2].content[0].text
    assert results[3].is_error and "limit must be 1 to 100" in results[3].content[0].text

    forgot = [("forget", {"memory_id": remembered[0]}), ("recall", {"query": "build server"})]
    _, results, _ = anyio.run(_session_calls, url, "mem8-alice", forgot)
    assert _structured(results[0]) == {"id": remembered[0], "deleted": True}
    assert kept not in [m["text"] for m in _structured(results[1])["memories"]]


async def _resources(url: str, key: str, memory_id: str) -> tuple[Any, Any, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        templates = await session.list_resource_templates()
        personas = await session.read_resource("mem8://personas")
        memory = await session.read_resource(f"mem8://memories/{memory_id}")
        return templates, personas, memory


def test_resources_show_the_personas_and_one_memory(server: RunningServer) -> None:
    url = server.root + "/mcp"
    _, results, _ = anyio.run(_session_calls, url, "k", [("remember", {"text": "Tea at five."})])
    memory_id = _structured(results[0])["ids"][0]
    templates, personas, memory = anyio.run(_resources, url, "k", memory_id)
    assert [t.uri_template for t in templates.resource_templates] == ["mem8://memories/{memory_id}"]
    assert {p["id"] for p in json.loads(personas.contents[0].text)} == set(server.settings.personas)
    assert json.loads(memory.contents[0].text)["text"] == "Tea at five."


def test_once_keys_exist_mcp_needs_one(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "alice", "--storage", server.settings.storage]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    refused = httpx.post(server.root + "/mcp", json=body, headers={"Authorization": "Bearer no"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="mem8"'
    assert refused.headers["Connection"] == "close"
    calls = [("remember", {"text": "Keys work."})]
    _, results, _ = anyio.run(_session_calls, server.root + "/mcp", secret, calls)
    assert _structured(results[0])["ids"]
    listed = httpx.get(server.base_url + "/memories", headers={"Authorization": f"Bearer {secret}"})
    assert [m["text"] for m in listed.json()["data"]] == ["Keys work."]


def test_a_foreign_host_is_refused_on_a_loopback_server(server: RunningServer) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 gets no memory."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Host": "evil.example", "Accept": "application/json, text/event-stream"}
    refused = httpx.post(server.root + "/mcp", json=body, headers=headers)
    assert refused.status_code == 421, refused.text  # Misdirected Request
    origin = {**headers, "Host": "127.0.0.1", "Origin": "http://evil.example"}
    assert httpx.post(server.root + "/mcp", json=body, headers=origin).status_code == 403


def test_mcp_requests_are_logged_and_counted_with_their_request_id(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="mem8.requests")
    url = server.root + "/mcp"
    anyio.run(_session_calls, url, "mem8-alice", [("personas", {})])
    refused = httpx.post(url, json={}, headers={"Host": "evil.example", "x-request-id": "ab-1"})
    assert refused.headers["x-request-id"] == "ab-1"

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if "route=mcp" in r.getMessage()]

    deadline = time.monotonic() + 10  # a request's line is written just after its answer
    while not any("request_id=ab-1" in line for line in logged()):
        assert time.monotonic() < deadline, logged()
        time.sleep(0.05)
    lines = logged()
    assert any("tenant=key-" in line and "status=200" in line for line in lines)
    assert any(
        "request_id=ab-1" in line and f"status={refused.status_code}" in line for line in lines
    )
    metrics = httpx.get(server.root + "/metrics", timeout=10).text
    assert 'mem8_requests_total{persona="",route="mcp",status="200"}' in metrics
    assert f'route="mcp",status="{refused.status_code}"' in metrics
