"""API keys and limits through the official client on a live server: once a key exists every
/v1 route needs a valid one; a revoked key is refused, a rotated one keeps its memories; one key
never sees another's memories or files; limits answer 429 with Retry-After; an open server
refuses to listen beyond loopback."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.cli import main
from mem8.config import Settings
from tests.support.processes import free_port
from tests.support.server import RunningServer, running_server

PERSONA = "mem8-counselor-v1"
WEDDING = "My sister Anna is getting married in Lisbon on June 3rd and I'm so nervous!"


def keys(settings: Settings, *arguments: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`mem8 keys ...` on the server's store; its output's last line (a new key's secret)."""
    assert main(["keys", *arguments, "--storage", settings.storage]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def client(server: RunningServer, key: str) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def remembering(settings: Settings) -> Settings:
    persona = dataclasses.replace(settings.personas[PERSONA], interest_threshold=0.0)
    return dataclasses.replace(settings, personas={**settings.personas, PERSONA: persona})


def say(openai_client: OpenAI, text: str) -> None:
    openai_client.chat.completions.create(
        model=PERSONA, messages=[{"role": "user", "content": text}]
    )


def test_once_a_key_exists_every_route_needs_a_valid_one(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_server(settings, dict.fromkeys(settings.personas, ScriptedLLM())) as server:
        assert client(server, "anything").models.list().data  # no keys yet: open
        secret = keys(settings, "create", "alice", capsys=capsys)
        assert secret.startswith("mem8-")
        for bad in ("anything", secret + "x", ""):
            with pytest.raises(openai.AuthenticationError) as refused:
                client(server, bad or "none").models.list()
            assert refused.value.code == "invalid_api_key"
        assert httpx.get(server.base_url + "/models", timeout=10).status_code == 401
        assert client(server, secret).models.list().data
        assert httpx.get(server.root + "/health", timeout=10).text == "OK"  # not a /v1 route


def test_a_revoked_key_is_refused_and_a_rotated_one_keeps_its_memories(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    served = remembering(settings)
    with running_server(served, dict.fromkeys(served.personas, ScriptedLLM())) as server:
        secret = keys(settings, "create", "alice", capsys=capsys)
        say(client(server, secret), WEDDING)
        before = client(server, secret).get("/memories", cast_to=object)
        fresh = keys(settings, "rotate", "alice", capsys=capsys)
        with pytest.raises(openai.AuthenticationError):
            client(server, secret).models.list()
        assert client(server, fresh).get("/memories", cast_to=object) == before
        keys(settings, "revoke", "alice", capsys=capsys)
        with pytest.raises(openai.AuthenticationError):
            client(server, fresh).models.list()


def test_one_key_never_reaches_another_s_memories_or_files(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    served = remembering(settings)
    llm = ScriptedLLM()
    with running_server(served, dict.fromkeys(served.personas, llm)) as server:
        alice = client(server, keys(settings, "create", "alice", capsys=capsys))
        bob = client(server, keys(settings, "create", "bob", capsys=capsys))
        say(alice, WEDDING)
        upload = alice.files.create(
            file=("plan.md", b"The launch is on Friday."), purpose="assistants"
        )
        page: dict[str, list[dict[str, str]]] = alice.get("/memories", cast_to=object)  # type: ignore[assignment]
        memory_id = page["data"][0]["id"]
        assert bob.get("/memories", cast_to=object)["data"] == []  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            bob.get(f"/memories/{memory_id}", cast_to=object)
        with pytest.raises(openai.NotFoundError):
            bob.delete(f"/memories/{memory_id}", cast_to=object)
        found = bob.post("/memories/search", body={"query": "Lisbon wedding"}, cast_to=object)
        assert found["data"] == []  # type: ignore[index]
        assert bob.files.list().data == []
        with pytest.raises(openai.NotFoundError):
            bob.files.retrieve(upload.id)
        say(bob, "Where is the wedding?")
        assert "Lisbon" not in llm.history[-1].messages[0].content  # nothing of alice's recalled
        assert alice.files.retrieve(upload.id).id == upload.id


def test_past_the_requests_limit_a_429_says_when_to_try_again(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    limited = dataclasses.replace(settings, requests_per_minute=3)
    with running_server(limited, dict.fromkeys(limited.personas, ScriptedLLM())) as server:
        secret = keys(settings, "create", "alice", capsys=capsys)
        started = time.monotonic()
        for left in (2, 1, 0):
            answer = httpx.get(
                server.base_url + "/models", headers={"Authorization": f"Bearer {secret}"}
            )
            assert answer.status_code == 200
            assert answer.headers["x-ratelimit-limit-requests"] == "3"
            assert answer.headers["x-ratelimit-remaining-requests"] == str(left)
        with pytest.raises(openai.RateLimitError) as refused:
            client(server, secret).models.list()
        assert refused.value.code == "rate_limit_exceeded"
        wait = int(refused.value.response.headers["Retry-After"])
        assert 60 - (time.monotonic() - started) - 2 <= wait <= 60
        other = keys(settings, "create", "bob", "--rpm", "100", capsys=capsys)
        assert client(server, other).models.list().data  # its own limit, its own minute


def test_past_the_tokens_limit_chats_are_refused_and_streams_are_counted(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    llm = ScriptedLLM(token_delay=0.2)
    limited = dataclasses.replace(settings, tokens_per_minute=30, streams_per_key=1)
    with running_server(limited, dict.fromkeys(limited.personas, llm)) as server:
        alice = client(server, keys(settings, "create", "alice", capsys=capsys))
        llm.enqueue(["one two three four five six"])
        stream = alice.chat.completions.create(
            model=PERSONA, messages=[{"role": "user", "content": "hello"}], stream=True
        )
        with pytest.raises(openai.RateLimitError):  # one stream at a time
            alice.chat.completions.create(
                model=PERSONA, messages=[{"role": "user", "content": "again"}], stream=True
            )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        llm.token_delay = 0.0
        llm.enqueue(["word " * 40])
        alice.chat.completions.create(model=PERSONA, messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError) as refused:
            alice.chat.completions.create(
                model=PERSONA, messages=[{"role": "user", "content": "x"}]
            )
        assert refused.value.response.json()["error"]["type"] == "tokens"


def test_an_admin_key_lists_tenants_and_a_normal_key_sees_only_its_own(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    served = remembering(settings)
    with running_server(served, dict.fromkeys(served.personas, ScriptedLLM())) as server:
        admin = client(server, keys(settings, "create", "ops", "--admin", capsys=capsys))
        alice = client(server, keys(settings, "create", "alice", capsys=capsys))
        say(alice, WEDDING)
        own = alice.get("/usage", cast_to=object)
        assert own["tenant"] == "alice" and own["memories"] >= 1  # type: ignore[index]
        with pytest.raises(openai.PermissionDeniedError):
            alice.get("/admin/tenants", cast_to=object)
        every = admin.get("/admin/tenants", cast_to=object)
        names = {t["tenant"]: t for t in every["data"]}  # type: ignore[index]
        assert {"ops", "alice"} <= set(names) and names["alice"]["requests"] >= 2


def test_a_key_claims_what_an_old_key_made_before_keys_existed(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Claimed with the server stopped (a running one's recall learns of it at its next
    start), the old key's memories are the named key's: listed and recalled."""
    served = remembering(settings)
    with running_server(served, dict.fromkeys(served.personas, ScriptedLLM())) as server:
        say(client(server, "mem8-dummy-key"), WEDDING)
    secret = keys(settings, "create", "alice", "--claim", "mem8-dummy-key", capsys=capsys)
    llm = ScriptedLLM()
    with running_server(served, dict.fromkeys(served.personas, llm)) as server:
        page = client(server, secret).get("/memories", cast_to=object)
        assert any("Lisbon" in m["text"] for m in page["data"])  # type: ignore[index]
        say(client(server, secret), "Where is my sister's wedding?")
        assert "Lisbon" in llm.history[-1].messages[0].content
        with pytest.raises(openai.AuthenticationError):
            client(server, "mem8-dummy-key").models.list()


def test_an_open_server_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    port = str(free_port())
    command = [sys.executable, "-m", "mem8", "serve", "--host", "0.0.0.0", "--port", port]
    env = {"MEM8_STORAGE": str(tmp_path / "m.db"), "MEM8_LLM_BACKEND": "scripted", "PATH": ""}
    refused = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**env, "HOME": str(tmp_path)}
    )
    assert refused.returncode == 2
    assert "mem8 keys create NAME" in refused.stderr and "--insecure" in refused.stderr
