"""An actor that crashes is restarted with its state, through a live server: a fault injected by
a fake encoder crashes the memory actor on one tenant's search, and every other tenant's memories
are still recalled; once the supervisor gives up on it, /health says so."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx
import numpy as np
import numpy.typing as npt
import pytest

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.encoders.hashed import LexicalEncoder
from mem8.http.edge import JSON_ROUTES
from tests.support.server import RunningServer, running_server

POISON = "poison"
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}


class PoisonedEncoder(LexicalEncoder):
    """The lexical encoder, but a bug (not a domain error) on any text naming POISON."""

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if any(POISON in text for text in texts):
            raise RuntimeError("injected encoder fault")
        return super().embed_batch(texts)


@pytest.fixture
def server(settings: Settings, llm: ScriptedLLM) -> Iterator[RunningServer]:
    backends = dict.fromkeys(settings.personas, llm)
    with running_server(settings, backends, encoder=PoisonedEncoder()) as running:
        yield running


def upload(server: RunningServer, auth: dict[str, str], text: str) -> None:
    files = {"file": ("notes.txt", text.encode())}
    response = httpx.post(
        server.base_url + "/files", files=files, data={"purpose": "assistants"}, headers=auth
    )
    assert response.status_code == 200 and response.json()["status"] == "processed", response.text


def search(server: RunningServer, auth: dict[str, str], query: str) -> httpx.Response:
    return httpx.post(
        server.base_url + "/memories/search", json={"query": query}, headers=auth, timeout=30
    )


def test_after_the_memory_actor_crashes_another_tenant_still_recalls(
    server: RunningServer,
) -> None:
    assert "search_memories" in JSON_ROUTES
    upload(server, ALICE, "We met in Lisbon in June and walked along the river.")
    upload(server, BOB, "Bob keeps bees on the roof.")
    assert search(server, ALICE, "Lisbon").json()["data"]
    crashed = search(server, BOB, f"bees {POISON}")
    assert crashed.status_code == 503, crashed.text
    assert "injected encoder fault" in crashed.json()["error"]["message"]
    found = search(server, ALICE, "Lisbon")
    assert found.status_code == 200, found.text
    assert "Lisbon" in found.json()["data"][0]["text"]
    assert search(server, BOB, "bees").json()["data"]  # the crashing tenant too
    assert httpx.get(server.root + "/health").text == "OK"


def test_health_is_a_503_naming_an_actor_given_up_on(server: RunningServer) -> None:
    upload(server, BOB, "Bob keeps bees on the roof.")
    for _ in range(6):  # one more than the supervisor's 5 restarts a minute
        assert search(server, BOB, POISON).status_code == 503
    health = httpx.get(server.root + "/health")
    assert health.status_code == 503, health.text
    error = health.json()["error"]
    assert error["code"] == "actor_unavailable"
    assert "memory" in error["message"] and "injected encoder fault" in error["message"]
