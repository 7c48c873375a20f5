"""/dashboard's data through httpx on a live server: who may see it (an admin key once keys
exist; 401 without a key, 403 with a normal one), an admin listing, searching and forgetting
another tenant's memories, the grid picture, the recent chats' interest and emotion."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
import trio
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.cli import main
from mem8.config import Settings
from mem8.http.app import create_app
from mem8.http.recent import Judged, RecentChats
from mem8.metrics import Metrics
from mem8.scope import tenant_of
from mem8.system import System
from tests.support.server import RunningServer, running_server

PERSONA = "mem8-counselor-v1"
WEDDING = "My sister Anna is getting married in Lisbon on June 3rd and I'm so nervous!"
DATA = ("personas", "tenants", "recent", "sims", "grid.png", "memories?tenant=alice")


def remembering(settings: Settings) -> Settings:
    """The counselor remembers whatever it hears (its threshold 0)."""
    persona = dataclasses.replace(settings.personas[PERSONA], interest_threshold=0.0)
    return dataclasses.replace(settings, personas={**settings.personas, PERSONA: persona})


def new_key(settings: Settings, name: str, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["keys", "create", name, *flags, "--storage", settings.storage]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def say(server: RunningServer, key: str, text: str) -> httpx.Response:
    with OpenAI(base_url=server.base_url, api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=PERSONA, messages=[{"role": "user", "content": text}]
        )
    return raw.http_response


@pytest.fixture
def served(settings: Settings) -> Iterator[RunningServer]:
    chosen = remembering(settings)
    with running_server(chosen, dict.fromkeys(chosen.personas, ScriptedLLM())) as server:
        yield server


def api(server: RunningServer, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{server.root}/dashboard/api/{path}", headers=headers, timeout=30)


def test_the_page_holds_no_data_and_reaches_nothing_outside(served: RunningServer) -> None:
    page = httpx.get(served.root + "/dashboard", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    script = httpx.get(served.root + "/dashboard/assets/dashboard.js", timeout=10)
    assert script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text  # data goes into the page as text only


def test_once_keys_exist_the_data_needs_an_admin_key(
    served: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = new_key(served.settings, "root", capsys, "--admin")
    alice = new_key(served.settings, "alice", capsys)
    assert httpx.get(served.root + "/dashboard", timeout=10).status_code == 200  # the shell
    for path in DATA:
        refused = api(served, path)
        assert refused.status_code == 401, path
        assert refused.json()["error"]["code"] == "invalid_api_key"
        forbidden = api(served, path, alice)
        assert forbidden.status_code == 403, path
        assert forbidden.json()["error"]["code"] == "insufficient_permissions"
        assert api(served, path, admin).status_code == 200, path


def test_an_admin_lists_searches_and_forgets_another_tenants_memories(
    served: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = new_key(served.settings, "root", capsys, "--admin")
    alice = new_key(served.settings, "alice", capsys)
    say(served, alice, WEDDING)
    tenants = {t["tenant"]: t for t in api(served, "tenants", admin).json()["data"]}
    assert tenants["alice"]["memories"] > 0
    assert tenants["alice"]["key"] == "normal" and tenants["root"]["key"] == "admin"
    listed = api(served, "memories?tenant=alice", admin).json()["data"]
    assert any("Lisbon" in m["text"] for m in listed)
    assert api(served, "memories?tenant=root", admin).json()["data"] == []
    headers = {"Authorization": f"Bearer {admin}"}
    found = httpx.post(
        f"{served.root}/dashboard/api/memories/search",
        params={"tenant": "alice"},
        json={"query": "wedding in Lisbon"},
        headers=headers,
        timeout=30,
    ).json()["data"]
    first = found[0]["id"]
    forgotten = httpx.delete(
        f"{served.root}/dashboard/api/memories/{first}",
        params={"tenant": "alice"},
        headers=headers,
        timeout=30,
    )
    assert forgotten.json() == {"id": first, "object": "memory.deleted", "deleted": True}
    own = httpx.get(
        f"{served.base_url}/memories/{first}",
        headers={"Authorization": f"Bearer {alice}"},
        timeout=10,
    )
    assert own.status_code == 404


def test_without_keys_a_loopback_client_sees_every_tenant(served: RunningServer) -> None:
    say(served, "mem8-dummy-key", WEDDING)
    tenant = tenant_of("mem8-dummy-key")
    tenants = [t["tenant"] for t in api(served, "tenants").json()["data"]]
    assert tenant in tenants
    assert api(served, f"memories?tenant={tenant}").json()["data"]


def test_the_grid_picture_marks_the_memories(served: RunningServer) -> None:
    say(served, "mem8-dummy-key", WEDDING)
    picture = api(served, "grid.png")
    assert picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert int(picture.headers["x-mem8-memories"]) > 0
    assert picture.headers["cache-control"] == "no-store"


def test_recent_chats_carry_the_interest_and_emotion_the_persona_felt(
    served: RunningServer,
) -> None:
    answered = say(served, "mem8-dummy-key", WEDDING)
    (chat,) = api(served, "recent").json()["data"]
    assert chat["persona"] == PERSONA
    assert chat["tenant"] == tenant_of("mem8-dummy-key")
    assert f"{chat['interest']:.6f}" == answered.headers["x-mem8-interest"]
    assert chat["remembered"] is True
    assert -1 <= chat["valence"] <= 1 and 0 <= chat["arousal"] <= 1


def test_the_ring_of_recent_chats_keeps_the_newest() -> None:
    ring = RecentChats(kept=3)
    for i in range(5):
        ring.add(Judged(float(i), "t", "p", 0.5, False, 0.0, 0.0, 0.5))
    assert [chat.at for chat in ring.newest_first()] == [4.0, 3.0, 2.0]


def test_without_keys_the_data_is_refused_beyond_loopback(settings: Settings) -> None:
    """A server told --insecure serves others the API, not every tenant's memories."""
    system = typing.cast(
        System,
        SimpleNamespace(settings=settings, keys=SimpleNamespace(required=False), metrics=Metrics()),
    )
    app = create_app(system)

    async def asked_from(address: str) -> tuple[int, str]:
        client = app.test_client()
        response = await client.get(
            "/dashboard/api/tenants", scope_base={"client": (address, 40000)}
        )
        return response.status_code, (await response.get_json())["error"]["message"]

    status, message = trio.run(asked_from, "10.1.2.3")
    assert status == 403
    assert "mem8 keys create NAME --admin" in message
