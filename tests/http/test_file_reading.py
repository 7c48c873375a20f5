"""A large upload is answered at once and read into memory in the background, a batch at a
time, its status details saying how far; a file over the chunk limit is read in part and says
so; deleting it stops its reading; a kill in the middle is read again from the start after the
restart, without duplicates; and all of it replays."""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio
from openai import OpenAI

from mem8.actors.senses import INLINE_CHUNKS, READ_BATCH
from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.replay import replay
from tests.support.processes import free_port, mem8_serve, wait_healthy
from tests.support.server import RunningServer, running_server

AUTH = {"Authorization": "Bearer mem8-dummy-key"}
UPLOADS = itertools.count()


def report_text(chunks: int) -> bytes:
    """A plain text that reads as about `chunks` chunks (paragraphs of ~1,100 characters),
    each naming its own number so that recall can tell them apart, and the upload's: no two
    texts share a paragraph, which the process's encoder would give from its cache unread."""
    upload = next(UPLOADS)
    paragraphs = [
        f"Upload {upload}. "
        + " ".join(
            f"Note {j} of section {i}: the audit of warehouse {i} found {i * 7} pallets misplaced."
            for j in range(14)
        )
        for i in range(chunks)
    ]
    return "\n\n".join(paragraphs).encode()


def quick(settings: Settings, **changes: object) -> Settings:
    """MiniLM (6x faster than MPNet): these tests are about reading, not about meaning."""
    return dataclasses.replace(settings, encoder="minilm", **changes)  # type: ignore[arg-type]


def file_memories(server: RunningServer, file_id: str) -> list[dict[str, object]]:
    found, after = [], None
    while True:
        params = {"limit": 100, **({"after": after} if after else {})}
        page = httpx.get(server.base_url + "/memories", params=params, headers=AUTH, timeout=30)
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        found += [m for m in data if str(m.get("source", "")).startswith(f"file:{file_id}")]
        if not page.json().get("has_more"):
            return found
        after = data[-1]["id"]


def test_a_large_file_is_answered_at_once_and_read_in_the_background(settings: Settings) -> None:
    llm = ScriptedLLM()
    served = quick(settings)
    with (
        running_server(served, dict.fromkeys(served.personas, llm)) as server,
        OpenAI(base_url=server.base_url, api_key="mem8-dummy-key", max_retries=0) as client,
    ):
        data = report_text(3 * READ_BATCH)
        uploaded = client.files.create(file=("audit.txt", data), purpose="assistants")
        assert uploaded.status == "uploaded"
        assert uploaded.status_details is not None
        assert uploaded.status_details.startswith("reading into memory: 0 of ")
        seen = set()
        while (now := client.files.retrieve(uploaded.id)).status == "uploaded":
            seen.add(now.status_details)
            time.sleep(0.05)
        assert now.status == "processed" and now.status_details is None
        assert len(seen) >= 2  # its details said how far it had come on the way
        kept = file_memories(server, uploaded.id)
        assert len(kept) > 3 * READ_BATCH  # each chunk one passage or more
        texts = " ".join(str(m["text"]) for m in kept)
        assert "warehouse 0 found" in texts and f"warehouse {3 * READ_BATCH - 1} found" in texts
        assert len({(m["source"], m["text"]) for m in kept}) == len(kept)  # none twice
        chat = client.chat.completions.create(
            model="mem8-technical-v1",
            messages=[{"role": "user", "content": "What did the audit of warehouse 93 find?"}],
        )
        assert chat.choices[0].message.content
        assert "warehouse 93 found 651" in llm.history[-1].messages[0].content


def test_a_small_file_is_in_memory_when_its_upload_is_answered(client: OpenAI) -> None:
    data = report_text(INLINE_CHUNKS // 2)
    uploaded = client.files.create(file=("audit.txt", data), purpose="assistants")
    assert uploaded.status == "processed"


def test_a_file_over_the_chunk_limit_is_read_in_part_and_says_so(settings: Settings) -> None:
    served = quick(settings, file_max_chunks=INLINE_CHUNKS + 4)
    with (
        running_server(served, dict.fromkeys(served.personas, ScriptedLLM())) as server,
        OpenAI(base_url=server.base_url, api_key="mem8-dummy-key", max_retries=0) as client,
    ):
        uploaded = client.files.create(file=("audit.txt", report_text(40)), purpose="assistants")
        done = client.files.wait_for_processing(uploaded.id, poll_interval=0.05)
        assert done.status == "processed"
        assert done.status_details is not None
        assert done.status_details.startswith(f"the first {INLINE_CHUNKS + 4} of its ")
        assert "MEM8_FILE_MAX_CHUNKS" in done.status_details
        texts = " ".join(str(m["text"]) for m in file_memories(server, uploaded.id))
        assert "warehouse 19 found" in texts and "warehouse 39 found" not in texts


def test_deleting_a_file_while_it_is_read_stops_its_reading(settings: Settings) -> None:
    served = quick(settings)
    with (
        running_server(served, dict.fromkeys(served.personas, ScriptedLLM())) as server,
        OpenAI(base_url=server.base_url, api_key="mem8-dummy-key", max_retries=0) as client,
    ):
        uploaded = client.files.create(file=("audit.txt", report_text(96)), purpose="assistants")
        assert client.files.delete(uploaded.id).deleted
        other = client.files.create(file=("audit.txt", report_text(24)), purpose="assistants")
        assert client.files.wait_for_processing(other.id, poll_interval=0.05).status == "processed"
        assert file_memories(server, uploaded.id) == []  # none kept after its delete
        assert httpx.get(server.root + "/health", timeout=10).status_code == 200


def test_a_large_upload_replays_identically(settings: Settings) -> None:
    served = quick(settings)
    with (
        running_server(served, dict.fromkeys(served.personas, ScriptedLLM())) as server,
        OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        uploaded = client.files.create(file=("audit.txt", report_text(40)), purpose="assistants")
        done = client.files.wait_for_processing(uploaded.id, poll_interval=0.05)
        assert done.status == "processed"
    report = trio.run(replay, Path(settings.storage + ".journal"))
    assert report.problems == [] and report.mismatches == []
    assert report.state_matched is True


def test_a_kill_while_a_file_is_read_reads_it_again_after_the_restart(tmp_path: Path) -> None:
    """kill -9 after its first batch: the restarted server forgets that batch and reads the
    whole file again, so every section is kept once; both runs replay."""
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    env = {"MEM8_LLM_BACKEND": "scripted", "MEM8_ENCODER": "minilm"}
    with mem8_serve(tmp_path, "--port", str(port), env=env) as process:
        wait_healthy(root, process)
        files = {"file": ("audit.txt", report_text(3 * READ_BATCH))}
        posted = httpx.post(
            root + "/v1/files", files=files, data={"purpose": "assistants"}, timeout=60
        )
        assert posted.status_code == 200, posted.text
        file_id = posted.json()["id"]
        while not (details(root, file_id) or "").startswith(f"reading into memory: {READ_BATCH}"):
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert process.wait(30) == -signal.SIGKILL
    with mem8_serve(tmp_path, "--port", str(port), env=env) as process:
        wait_healthy(root, process)
        deadline = time.monotonic() + 300
        while status(root, file_id) == "uploaded" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status(root, file_id) == "processed"
        kept = listed(root, file_id)
        assert len({(m["source"], m["text"]) for m in kept}) == len(kept)  # none twice
        texts = " ".join(str(m["text"]) for m in kept)
        assert all(f"warehouse {i} found" in texts for i in range(3 * READ_BATCH))
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    done = subprocess.run(
        [sys.executable, "-m", "mem8", "replay", str(tmp_path / "mem8.db.journal")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MEM8_ENCODER": "minilm"},
    )
    assert "runs verified: 2 (restarts: 1, after a crash: 1)" in done.stdout, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def _file(root: str, file_id: str) -> dict[str, object]:
    got = httpx.get(f"{root}/v1/files/{file_id}", timeout=30)
    assert got.status_code == 200, got.text
    found: dict[str, object] = got.json()
    return found


def status(root: str, file_id: str) -> object:
    return _file(root, file_id)["status"]


def details(root: str, file_id: str) -> str | None:
    found = _file(root, file_id)["status_details"]
    return None if found is None else str(found)


def listed(root: str, file_id: str) -> list[dict[str, object]]:
    found, after = [], None
    while True:
        params = {"limit": 100, **({"after": after} if after else {})}
        page = httpx.get(root + "/v1/memories", params=params, timeout=30).json()
        found += [m for m in page["data"] if str(m["source"]).startswith(f"file:{file_id}")]
        if not page.get("has_more"):
            return found
        after = page["data"][-1]["id"]
