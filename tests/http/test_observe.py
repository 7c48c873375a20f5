"""Each request's id and log line on a live server: the client's x-request-id echoed (or a new
one), one line per request at its end (a stream's: its last chunk) with the tenant, route,
persona, status, timings and tokens; as JSON with MEM8_LOG_FORMAT=json, from a real `mem8
serve`, and never with the API key or what was said."""

from __future__ import annotations

import json
import logging
import re
import signal
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.cli import main
from mem8.config import Settings
from mem8.logs import fields
from tests.support.processes import free_port, mem8_serve, wait_healthy
from tests.support.server import RunningServer, running_server

PERSONA = "mem8-counselor-v1"
GENERATED = re.compile(r"[0-9a-f]{16}")
SECRET_WORD = "Zanzibarquux"  # said in a chat: it must appear in no log line
HELLO = [{"role": "user", "content": f"My cat {SECRET_WORD} ran away and I am heartbroken!"}]


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [dict(fields(r)) for r in caplog.records if r.name == "mem8.requests"]


def test_the_clients_request_id_is_echoed_or_a_new_one_given(
    server: RunningServer, client: OpenAI
) -> None:
    given = client.chat.completions.create(
        model=PERSONA, messages=HELLO, extra_headers={"x-request-id": "trace-42.a:b"}
    )
    assert given._request_id == "trace-42.a:b"
    for insane in ("has spaces", "x" * 200, "<script>"):
        replaced = client.chat.completions.with_raw_response.create(
            model=PERSONA, messages=HELLO, extra_headers={"x-request-id": insane}
        )
        assert GENERATED.fullmatch(replaced.headers["x-request-id"])
    fresh = [client.models.list()._request_id for _ in range(2)]
    assert all(GENERATED.fullmatch(str(i)) for i in fresh) and fresh[0] != fresh[1]
    refused = httpx.get(server.base_url + "/no-such-route", timeout=10)
    assert refused.status_code == 404 and GENERATED.fullmatch(refused.headers["x-request-id"])
    with client.chat.completions.with_streaming_response.create(
        model=PERSONA, messages=HELLO, stream=True, extra_headers={"x-request-id": "stream-1"}
    ) as streamed:
        assert streamed.headers["x-request-id"] == "stream-1"


def test_a_stream_is_logged_once_when_it_ends(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mem8.requests")
    llm = ScriptedLLM(token_delay=0.05)
    llm.enqueue(["one two three four five six seven eight nine ten"])
    with running_server(settings, dict.fromkeys(settings.personas, llm)) as server:
        body = {"model": PERSONA, "messages": HELLO, "stream": True}
        headers = {"Authorization": "Bearer mem8-dummy-key", "x-request-id": "slow-stream"}
        with httpx.stream(
            "POST", server.base_url + "/chat/completions", json=body, headers=headers, timeout=30
        ) as response:
            assert response.status_code == 200
            assert [line for line in response.iter_lines() if line][-1] == "data: [DONE]"
        httpx.get(server.root + "/health", timeout=10)  # logged after the stream's line
    lines = request_lines(caplog)
    assert [line["request_id"] for line in lines] == ["slow-stream", lines[1]["request_id"]]
    chat = lines[0]
    assert chat["route"] == "chat_completions" and chat["persona"] == PERSONA
    assert chat["status"] == 200 and chat["method"] == "POST"
    assert str(chat["tenant"]).startswith("key-")  # no keys: the bearer key's hash names it
    assert isinstance(chat["ms"], float) and chat["ms"] >= 450  # ten tokens, 50 ms apart
    assert isinstance(chat["ttft_ms"], float) and chat["ttft_ms"] < chat["ms"]
    assert chat["tokens_in"] and chat["tokens_out"] == 10
    assert lines[1]["route"] == "health" and lines[1]["ttft_ms"] is None
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "request_id=slow-stream tenant=key-" in text  # the readable line: key=value pairs
    assert SECRET_WORD not in text and "mem8-dummy-key" not in text


def test_json_lines_from_mem8_serve_hold_the_fields_but_no_key_or_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "alice", "--storage", str(tmp_path / "mem8.db")]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    port, log = free_port(), tmp_path / "serve.log"
    root = f"http://127.0.0.1:{port}"
    env = {"MEM8_LOG_FORMAT": "json", "MEM8_LLM_BACKEND": "scripted", "MEM8_ENCODER": "lexical"}
    with mem8_serve(tmp_path, "--port", str(port), env=env, log=log) as process:
        wait_healthy(root, process, log=log)
        with OpenAI(base_url=root + "/v1", api_key=secret, max_retries=0) as client:
            answer = client.chat.completions.with_raw_response.create(model=PERSONA, messages=HELLO)
            assert SECRET_WORD in answer.parse().choices[0].message.content  # echoed back
        refused = httpx.get(root + "/v1/models", headers={"Authorization": "Bearer wrong-key"})
        assert refused.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    written = log.read_text()
    lines = [json.loads(line) for line in written.splitlines()]  # every line is JSON
    requests = [line for line in lines if line["logger"] == "mem8.requests"]
    chat = next(line for line in requests if line["route"] == "chat_completions")
    assert chat["request_id"] == answer.headers["x-request-id"]
    assert chat["tenant"] == "alice" and chat["persona"] == PERSONA and chat["status"] == 200
    assert chat["ms"] > 0 and chat["ttft_ms"] is not None
    assert chat["tokens_in"] > 0 and chat["tokens_out"] > 0
    assert {"time", "level"} <= set(chat) and "message" not in chat
    assert any(line["route"] == "list_models" and line["status"] == 401 for line in requests)
    assert any("Running on" in line.get("message", "") for line in lines)  # hypercorn's, once
    assert sum("Running on" in line.get("message", "") for line in lines) == 1
    assert secret not in written and "wrong-key" not in written and SECRET_WORD not in written
