"""How long another tenant's small chat waits while one large chat message is handled (issue
17: target under 1 s). A real server (MiniLM, the scripted backend, personas that imprint
everything) answers tenant B's small chats one after another, first alone, then while tenant A's
large message is answered, cut into passages, encoded and imprinted."""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import threading
import time

import httpx

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from tests.support.server import RunningServer, running_server

PERSONA = "mem8-technical-v1"
SENTENCE = "The pump station logs its pressure every minute and the night shift reads it. "


def chat(server: RunningServer, text: str, key: str) -> httpx.Response:
    body = {"model": PERSONA, "messages": [{"role": "user", "content": text}]}
    headers = {"Authorization": f"Bearer {key}"}
    url = server.base_url + "/chat/completions"
    return httpx.post(url, json=body, headers=headers, timeout=600)


def small_chats(
    server: RunningServer, until: threading.Thread | None, count: int, budget: float
) -> tuple[list[float], set[str]]:
    """Tenant B's chats, one after another: (seconds each, statuses)."""
    waits: list[float] = []
    statuses: set[str] = set()
    started = time.perf_counter()
    while len(waits) < count and time.perf_counter() - started < budget:
        if until is not None and not until.is_alive():
            break
        began = time.perf_counter()
        try:
            statuses.add(str(chat(server, "How is the pump?", "key-b").status_code))
        except httpx.HTTPError as error:
            statuses.add(type(error).__name__)
        waits.append(time.perf_counter() - began)
    return waits, statuses


def summary(waits: list[float], statuses: set[str]) -> str:
    return (
        f"{len(waits)} chats, statuses {sorted(statuses)}, "
        f"p50 {statistics.median(waits):.3f} s, max {max(waits):.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chars", type=int, default=Settings().max_message_chars)
    parser.add_argument("--seconds", type=float, default=150.0, help="longest wait for it")
    parser.add_argument("--alone", type=int, default=50, help="tenant B's chats before it")
    args = parser.parse_args()
    base = Settings(port=0, storage=tempfile.mkdtemp() + "/mem8.db")
    personas = {p: dataclasses.replace(v, interest_threshold=0.0) for p, v in base.personas.items()}
    settings = dataclasses.replace(base, personas=personas)
    llm = ScriptedLLM()
    with running_server(settings, dict.fromkeys(settings.personas, llm)) as server:
        chat(server, "Hello, a first chat so that the next ones recall.", "key-b")
        print("alone:", summary(*small_chats(server, None, args.alone, args.seconds)))
        llm.enqueue(["Noted."])
        large = (SENTENCE * (args.chars // len(SENTENCE) + 1))[: args.chars]
        answered: dict[str, object] = {}

        def send_large() -> None:
            began = time.perf_counter()
            response = chat(server, large, "key-a")
            answered.update(status=response.status_code, seconds=time.perf_counter() - began)

        worker = threading.Thread(target=send_large, daemon=True)
        worker.start()
        during = small_chats(server, worker, sys.maxsize, args.seconds)
        worker.join(1.0)
        print(f"large message of {args.chars} characters: {answered or 'still being answered'}")
        print("beside it:", summary(*during))
        sys.stdout.flush()
        if not answered:  # its encoding would hold the server's shutdown for minutes
            os._exit(0)


if __name__ == "__main__":
    main()
