"""The npm `openai` package (tests/node, pinned in its package-lock.json) against a live server
with the scripted backend: chat plain and streamed both ways, a named tool call, embeddings,
files and the Responses API, as a Node user makes those calls."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from mem8.backends.base import ToolCall
from mem8.backends.fake import ScriptedLLM
from tests.support.server import RunningServer

MODEL = "mem8-creative-v1"
NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "client.mjs"
# What the backend says to each call of client.mjs that reaches it, in the script's order.
CHAT = "Hello from the persona"
STREAMED = "Waves upon the shore"
HELPED = "Hills under the rain"
LISBON = ToolCall("call_7", "get_weather", '{"city": "Lisbon"}')
RESPONDED = "A plain response"
RESPONSE_STREAMED = "A streamed response at last"


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail(
            "node or tests/node/node_modules is missing: ./scripts/setup.sh installs them "
            "(Debian's nodejs and npm, then npm ci in tests/node)"
        )
    return node


def _run_client(server: RunningServer) -> dict[str, Any]:
    done = subprocess.run(
        [_node(), str(SCRIPT), server.base_url, MODEL],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def test_the_npm_openai_package_works_against_mem8(
    server: RunningServer, llm: ScriptedLLM, client: OpenAI
) -> None:
    llm.enqueue([CHAT, STREAMED, HELPED, [LISBON], RESPONDED, RESPONSE_STREAMED])
    results = _run_client(server)
    assert results["chat"] == CHAT
    assert "".join(results["chat_stream"]) == STREAMED
    assert len(results["chat_stream"]) > 1  # streamed in pieces, not one chunk
    helped = results["chat_stream_helper"]
    assert "".join(helped["deltas"]) == helped["final"] == HELPED
    assert results["tool_call"] == {
        "finish_reason": "tool_calls",
        "calls": [{"id": "call_7", "name": "get_weather", "arguments": {"city": "Lisbon"}}],
    }
    assert llm.history[3].tool_choice == "get_weather"
    python = client.embeddings.create(model=MODEL, input="Hello from Python")
    assert results["embedding_length"] == len(python.data[0].embedding) > 0
    files = results["files"]
    assert files["id"] in files["listed"] and files["filename"] == "node-notes.txt"
    assert results["response"]["text"] == RESPONDED
    assert results["response"]["id"].startswith("resp_")
    streamed = results["response_stream"]
    assert "".join(streamed["deltas"]) == streamed["completed"] == RESPONSE_STREAMED
