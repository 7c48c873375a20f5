"""`mem8 mcp`: a real subprocess over stdio, driven by the official `mcp` client; what it keeps
is the tenant's memory, in the store a server opens."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from mem8.cli import main

ROOT = Path(__file__).resolve().parents[1]


async def _calls(storage: Path, tenant: str, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """tools/list, then each tools/call, against a `mem8 mcp` process; their results."""
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mem8", "mcp", "--storage", str(storage), "--tenant", tenant],
        env={"PYTHONPATH": str(ROOT), "MEM8_ENCODER": "minilm", "PATH": os.environ["PATH"]},
        cwd=str(storage.parent),
    )
    async with (
        stdio_client(server) as (read, write, *_),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        results = [await session.call_tool(name, arguments) for name, arguments in calls]
        personas = await session.read_resource("mem8://personas")
    return {t.name for t in tools.tools}, results, json.loads(personas.contents[0].text)


def _structured(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def test_mem8_mcp_keeps_and_finds_the_tenants_memories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "mem8.db"
    kept = "The staging database moved to host orca-7 on Tuesday."
    calls = [
        ("remember", {"text": kept, "persona": "mem8-technical-v1", "user": "ada"}),
        ("remember", {"text": "Lunch is at noon on Fridays."}),
        ("recall", {"query": "where is the staging database?", "user": "ada"}),
        ("personas", {}),
        ("remember", {"text": "x", "persona": "gpt-nobody"}),
    ]
    tools, results, personas = anyio.run(_calls, storage, "alice", calls)
    assert tools == {"remember", "recall", "list_memories", "forget", "personas"}
    memory_id = _structured(results[0])["ids"][0]
    recalled = _structured(results[2])["memories"]
    assert recalled[0]["id"] == memory_id and recalled[0]["persona"] == "mem8-technical-v1"
    assert recalled[0]["user"] == "ada" and "score" in recalled[0]
    assert {p["id"] for p in _structured(results[3])["personas"]} == {p["id"] for p in personas}
    assert results[4].is_error and "gpt-nobody" in results[4].content[0].text

    # kept in the store, as the tenant's: what `mem8 memory list` (and a server) sees
    assert main(["memory", "list", "--storage", str(storage), "--tenant", "alice", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["text"] for m in listed} == {kept, "Lunch is at noon on Fridays."}

    # another tenant sees none of it; the owner lists and forgets it in a later process
    _, results, _ = anyio.run(_calls, storage, "bob", [("recall", {"query": "staging database"})])
    assert _structured(results[0])["memories"] == []
    later = [
        ("list_memories", {"persona": "mem8-technical-v1"}),
        ("forget", {"memory_id": memory_id}),
        ("list_memories", {}),
    ]
    _, results, _ = anyio.run(_calls, storage, "alice", later)
    assert [m["id"] for m in _structured(results[0])["memories"]] == [memory_id]
    assert _structured(results[1]) == {"id": memory_id, "deleted": True}
    assert [m["text"] for m in _structured(results[2])["memories"]] == [
        "Lunch is at noon on Fridays."
    ]
