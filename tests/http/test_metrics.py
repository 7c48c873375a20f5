"""GET /metrics on a live server: Prometheus' own parser reads it, chats, recalls, forgetting
and a failing backend move its counters, the actors' mailboxes and the journal's size are read
at the scrape; once API keys exist only an admin key may read it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mem8 import errors
from mem8.backends.fake import ScriptedLLM
from mem8.cli import main
from mem8.config import Settings
from tests.support.server import RunningServer, running_server

PERSONA = "mem8-counselor-v1"
CHAT = {"route": "chat_completions", "status": "200", "persona": PERSONA}
WEDDING = (
    "My sister Anna is getting married in Lisbon on June 3rd and I'm so nervous about my speech!"
)


class Scrape:
    """One reading of /metrics, as Prometheus parses it."""

    def __init__(self, text: str) -> None:
        self.samples: list[Sample] = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of that name whose labels include those given (0 if none)."""
        return sum(
            s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()
        )

    def labels(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name}


def scrape(server: RunningServer, key: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(server.root + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer mem8-dummy-key"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        yield client


def test_a_chat_and_a_streamed_one_move_the_counters(server: RunningServer, client: OpenAI) -> None:
    before = scrape(server)
    client.chat.completions.create(model=PERSONA, messages=[{"role": "user", "content": WEDDING}])
    question = [{"role": "user", "content": "Where is my sister's wedding going to be?"}]
    stream = client.chat.completions.create(model=PERSONA, messages=question, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    after = scrape(server)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("mem8_requests_total", **CHAT) == 2
    assert moved("mem8_request_seconds_count", route="chat_completions") == 2
    assert moved("mem8_time_to_first_token_seconds_count", persona=PERSONA) == 2
    assert moved("mem8_tokens_total", direction="in", persona=PERSONA) > 0
    assert moved("mem8_tokens_total", direction="out", persona=PERSONA) > 0
    assert moved("mem8_memories_total", event="imprinted") >= 2  # both sides of the wedding
    assert moved("mem8_memories_total", event="recalled") >= 1  # into the question
    assert moved("mem8_recall_seconds_count") >= 1
    assert moved("mem8_backend_seconds_count", backend="scripted") == 2
    assert moved("mem8_requests_total", route="metrics") == 1  # the first scrape
    assert {"memory", "grid", f"persona:{PERSONA}"} <= after.labels("mem8_mailbox_depth", "actor")
    assert after.value("mem8_journal_bytes") > 0


def test_forgetting_and_a_failing_backend_are_counted(
    server: RunningServer, http: httpx.Client, llm: ScriptedLLM
) -> None:
    said = http.post(
        "/chat/completions",
        json={"model": PERSONA, "messages": [{"role": "user", "content": WEDDING}]},
    )
    assert said.status_code == 200, said.text
    before = scrape(server)
    memory = http.get("/memories").json()["data"][0]["id"]
    assert http.delete(f"/memories/{memory}").status_code == 200
    llm.enqueue([errors.BackendUnavailable("the test backend is down")])
    hello = {"model": PERSONA, "messages": [{"role": "user", "content": "hi"}]}
    failed = http.post("/chat/completions", json=hello)
    assert failed.status_code == 503
    assert http.get("/no-such-route").status_code == 404
    after = scrape(server)
    assert (
        after.value("mem8_memories_total", event="forgotten")
        - before.value("mem8_memories_total", event="forgotten")
        == 1
    )
    assert after.value("mem8_backend_errors_total", backend="scripted") == 1
    assert after.value("mem8_requests_total", route="chat_completions", status="503") == 1
    assert after.value("mem8_requests_total", route="unmatched", status="404") == 1
    assert after.value("mem8_requests_total", route="forget_memory", persona="") == 1


def keys(settings: Settings, *arguments: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`mem8 keys ...` on the server's store; its output's last line (a new key's secret)."""
    assert main(["keys", *arguments, "--storage", settings.storage]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_once_keys_exist_only_an_admin_key_reads_the_metrics(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_server(settings, dict.fromkeys(settings.personas, ScriptedLLM())) as server:
        assert scrape(server).value("mem8_journal_bytes") > 0  # no keys yet: open
        normal = keys(settings, "create", "alice", capsys=capsys)
        admin = keys(settings, "create", "root", "--admin", capsys=capsys)
        for key, status, code in [
            (None, 401, "invalid_api_key"),
            ("mem8-not-a-key", 401, "invalid_api_key"),
            (normal, 403, "insufficient_permissions"),
        ]:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            refused = httpx.get(server.root + "/metrics", headers=headers, timeout=10)
            assert refused.status_code == status, refused.text
            error = refused.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["code"] == code
        read = scrape(server, admin)
        assert read.value("mem8_requests_total", route="metrics", status="403") == 1
