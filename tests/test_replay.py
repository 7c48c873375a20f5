"""The journal and deterministic replay: a recorded session replays identically; damage is
reported, not crashed on; rotation keeps the journal bounded and replayable."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from openai import OpenAI

from mem8.actors.journal import read_journal
from mem8.backends.base import ToolCall
from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.encoders import open_named
from mem8.errors import BackendUnavailable
from mem8.replay import replay
from tests.support.processes import free_port, mem8_serve, wait_healthy
from tests.support.server import running_server

HELLO = [{"role": "user", "content": "Hello!"}]
LISBON = ToolCall("call_1", "get_weather", '{"city": "Lisbon"}')


def record_session(settings: Settings, requests: int = 6) -> Path:
    """Serves a mixed session (personas, streams, a backend failure, a cut stream), then stops."""
    llm = ScriptedLLM()
    llm.enqueue(["first answer", BackendUnavailable("Ollama is down")])
    with running_server(settings, dict.fromkeys(settings.personas, llm)) as server:
        client = OpenAI(base_url=server.base_url, api_key="key-a", max_retries=0)
        personas = list(settings.personas)
        for i in range(requests):
            model = personas[i % len(personas)]
            messages = [{"role": "user", "content": f"message {i}"}]
            if i == 1:
                with pytest.raises(Exception, match="Ollama is down"):
                    client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
            elif i % 2:
                stream = client.chat.completions.create(
                    model=model,
                    messages=messages,
                    stream=True,  # type: ignore[arg-type]
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream)
            else:
                client.chat.completions.create(model=model, messages=messages, seed=i)  # type: ignore[arg-type]
        client.close()
    journal = settings.journal_dir()
    assert journal is not None
    return journal


def test_a_recorded_session_replays_identically(settings: Settings) -> None:
    journal = record_session(settings)
    report = trio.run(replay, journal)
    assert report.problems == [] and report.mismatches == []
    assert report.requests == report.matched == 6
    assert report.state_matched is True
    assert report.ok


def test_the_replay_command_says_ok(settings: Settings) -> None:
    journal = record_session(settings, requests=3)
    done = subprocess.run(
        [sys.executable, "-m", "mem8", "replay", str(journal)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "REPLAY OK" in done.stdout


def _only_segment(journal: Path) -> Path:
    (segment,) = sorted(journal.glob("segment-*.m8j"))
    return segment


def test_an_altered_record_is_detected(settings: Settings) -> None:
    journal = record_session(settings, requests=3)
    segment = _only_segment(journal)
    data = segment.read_bytes()
    at = data.index(b"first")  # a token of the recorded backend output
    segment.write_bytes(data[:at] + b"FIRST" + data[at + 5 :])
    report = trio.run(replay, journal)
    assert not report.ok
    assert any("altered" in p for p in report.problems), report.problems


def test_a_truncated_journal_is_detected(settings: Settings) -> None:
    journal = record_session(settings, requests=3)
    segment = _only_segment(journal)
    segment.write_bytes(segment.read_bytes()[:-7])
    report = trio.run(replay, journal)
    assert not report.ok
    assert any("truncated" in p or "unreadable" in p for p in report.problems), report.problems
    done = subprocess.run(
        [sys.executable, "-m", "mem8", "replay", str(journal)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "REPLAY FAILED" in done.stdout and "Traceback" not in done.stderr


def test_a_journal_cut_at_a_record_boundary_is_reported(settings: Settings) -> None:
    journal = record_session(settings, requests=3)
    reading = read_journal(journal)
    assert reading.closed_cleanly
    segment = _only_segment(journal)
    data = segment.read_bytes()
    cut = data.rindex(b"\x94\xa5state")  # the frame of the final `state` record
    segment.write_bytes(data[:cut])
    report = trio.run(replay, journal)
    assert report.matched == report.requests == 3  # what is there still replays
    assert report.state_matched is None
    assert any("without a close record" in p for p in report.problems)


def test_garbage_is_reported(tmp_path: Path) -> None:
    (tmp_path / "segment-00000001.m8j").write_bytes(b"\x00" * 5 + bytes(range(256)))
    report = trio.run(replay, tmp_path)
    assert not report.ok and report.problems
    assert not trio.run(replay, tmp_path / "missing").ok


def test_rotation_bounds_the_journal_and_replay_starts_from_a_snapshot(
    settings: Settings,
) -> None:
    small = dataclasses.replace(
        settings, journal_segment_bytes=1500, journal_snapshot_bytes=1500, journal_keep_segments=2
    )
    journal = record_session(small, requests=30)
    segments = sorted(journal.glob("segment-*.m8j"))
    assert len(segments) <= 3  # the kept ones and the one being written
    assert segments[0].name != "segment-00000001.m8j"
    report = trio.run(replay, journal)
    assert report.restored_from_snapshot
    assert report.problems == [] and report.mismatches == []
    assert report.state_matched is True
    assert 0 < report.requests < 30


def test_the_journal_can_be_turned_off(settings: Settings) -> None:
    off = dataclasses.replace(settings, journal="off")
    with running_server(off, dict.fromkeys(off.personas, ScriptedLLM())) as server:
        body = {"model": "mem8-creative-v1", "messages": HELLO}
        assert httpx.post(server.base_url + "/chat/completions", json=body).status_code == 200
    assert not Path(settings.storage + ".journal").exists()


def test_what_the_senses_kept_and_a_forget_replay(settings: Settings) -> None:
    """An upload, a transcription (each kept by its sense actor) and a forget between chats."""
    fixtures = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
    llm = ScriptedLLM()
    with (
        running_server(settings, dict.fromkeys(settings.personas, llm)) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as http,
    ):
        pdf = (fixtures / "pdf" / "crazyones.pdf").read_bytes()
        uploaded = http.post(
            "/files", files={"file": ("crazyones.pdf", pdf)}, data={"purpose": "user_data"}
        )
        assert uploaded.json()["status"] == "processed", uploaded.text
        wav = (fixtures / "audio" / "english.wav").read_bytes()
        heard = http.post(
            "/audio/transcriptions",
            files={"file": ("english.wav", wav)},
            data={"model": "mem8-technical-v1"},
        )
        assert heard.status_code == 200, heard.text
        question = [{"role": "user", "content": "Who are the crazy ones?"}]
        chat = {"model": "mem8-technical-v1", "messages": question}
        assert http.post("/chat/completions", json=chat).status_code == 200
        first = http.get("/memories", params={"limit": 1}).json()["data"][0]["id"]
        assert http.delete(f"/memories/{first}").status_code == 200
        assert http.post("/chat/completions", json=chat).status_code == 200
    journal = settings.journal_dir()
    assert journal is not None
    kinds = [record.kind for record in read_journal(journal).records]
    assert {"file", "remember", "forget"} <= set(kinds)
    report = trio.run(replay, journal)
    assert report.problems == [] and report.mismatches == []
    assert report.requests == report.matched == 2 and report.state_matched is True


def test_stored_completions_and_their_changes_replay(settings: Settings) -> None:
    """Chats kept with `store: true` (streamed and not), a metadata update and a delete: the
    journal holds the keeping in its chats and the changes as `stored` records."""
    llm = ScriptedLLM()
    with (
        running_server(settings, dict.fromkeys(settings.personas, llm)) as server,
        OpenAI(base_url=server.base_url, api_key="key-a", max_retries=0) as client,
    ):
        kept = client.chat.completions.create(
            model="mem8-creative-v1", messages=HELLO, store=True, metadata={"a": "1"}
        )  # type: ignore[call-overload]
        stream = client.chat.completions.create(
            model="mem8-creative-v1", messages=HELLO, store=True, stream=True
        )  # type: ignore[call-overload]
        streamed = {chunk.id for chunk in stream}.pop()
        client.chat.completions.update(kept.id, metadata={"b": "2"})
        client.chat.completions.delete(streamed)
    journal = settings.journal_dir()
    assert journal is not None
    kinds = [record.kind for record in read_journal(journal).records]
    assert kinds.count("stored") == 2
    report = trio.run(replay, journal)
    assert report.problems == [] and report.mismatches == []
    assert report.requests == report.matched == 2 and report.state_matched is True


def test_tool_calls_and_a_response_replay(settings: Settings) -> None:
    """A chat answered by a tool call, its result sent back, and the same through the
    Responses API: replay plays the recorded calls back as calls, and they match."""
    llm = ScriptedLLM()
    llm.enqueue([[LISBON], "Sunny.", [LISBON]])
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    with (
        running_server(settings, dict.fromkeys(settings.personas, llm)) as server,
        OpenAI(base_url=server.base_url, api_key="key-a", max_retries=0) as client,
    ):
        asked = [{"role": "user", "content": "Weather in Lisbon?"}]
        called = client.chat.completions.create(
            model="mem8-creative-v1", messages=asked, tools=[weather]
        )  # type: ignore[call-overload]
        (call,) = called.choices[0].message.tool_calls
        answered = [
            *asked,
            called.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sun"},
        ]
        client.chat.completions.create(model="mem8-creative-v1", messages=answered, tools=[weather])  # type: ignore[call-overload]
        response = client.responses.create(
            model="mem8-creative-v1",
            input="Weather?",
            tools=[{"type": "function", "name": "get_weather", "parameters": {}}],  # type: ignore[list-item]
        )
        assert response.output[0].type == "function_call"
    journal = settings.journal_dir()
    assert journal is not None
    report = trio.run(replay, journal)
    assert report.problems == [] and report.mismatches == []
    assert report.requests == report.matched == 3 and report.state_matched is True


def _serve_chats(tmp_path: Path, chats: int, stop: signal.Signals, tag: str) -> None:
    """Runs `mem8 serve` on tmp_path's storage for some chats, then stops it by the signal."""
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    with mem8_serve(tmp_path, "--port", str(port), env={"MEM8_LLM_BACKEND": "scripted"}) as process:
        wait_healthy(root, process)
        for i in range(chats):
            content = f"{tag}: message {i} about the garden"
            body = {
                "model": "mem8-creative-v1",
                "user": "u",
                "messages": [{"role": "user", "content": content}],
            }
            answer = httpx.post(root + "/v1/chat/completions", json=body, timeout=60)
            assert answer.status_code == 200, answer.text
        process.send_signal(stop)
        assert process.wait(30) == (0 if stop == signal.SIGTERM else -signal.SIGKILL)


def _replay_command(journal: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mem8", "replay", str(journal)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_journal_spanning_a_kill_replays_each_run_from_its_start(tmp_path: Path) -> None:
    """10 chats, kill -9, restart on the same storage, 10 chats, SIGTERM: both runs verified."""
    _serve_chats(tmp_path, 10, signal.SIGKILL, "first")
    _serve_chats(tmp_path, 10, signal.SIGTERM, "second")
    done = _replay_command(tmp_path / "mem8.db.journal")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "run 1 (from its start snapshot): 10 requests, 10 matching; ended in a crash" in (
        done.stdout
    )
    assert "run 2 (from its start snapshot): 10 requests, 10 matching; closed" in done.stdout
    assert "runs verified: 2 (restarts: 1, after a crash: 1)" in done.stdout
    assert "REPLAY OK" in done.stdout


def test_a_run_cut_inside_a_record_by_a_kill_is_reported_and_the_next_run_verified(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "mem8.db.journal"
    _serve_chats(tmp_path, 3, signal.SIGKILL, "first")
    segment = sorted(journal.glob("segment-*.m8j"))[-1]
    segment.write_bytes(segment.read_bytes()[:-5])  # the kill came inside the last commit
    _serve_chats(tmp_path, 3, signal.SIGKILL, "second")
    _serve_chats(tmp_path, 3, signal.SIGTERM, "third")
    report = trio.run(replay, journal)
    assert report.problems == [] and report.mismatches == [], report.summary()
    assert [run.ending for run in report.runs] == ["ended in a crash"] * 2 + ["closed"]
    assert [run.requests for run in report.runs] == [2, 3, 3]
    assert report.runs[0].unfinished == 1  # its commit was cut off
    assert report.notes == [
        f"{segment.name}: truncated inside record {2 + 2 * 3 - 1}: that run ended there "
        "(a crash), the next one follows"
    ]
    assert report.ok


def test_a_snapshot_larger_than_a_segment_rotates_with_the_chats_not_every_record(
    settings: Settings,
) -> None:
    """The field alone outweighs a segment; segments still hold many records each, and a
    rotation takes a snapshot only every journal_snapshot_bytes of records."""
    small = dataclasses.replace(
        settings,
        journal_segment_bytes=4096,
        journal_snapshot_bytes=8192,
        journal_keep_segments=2,
    )
    journal = record_session(small, requests=30)
    snapshots = [int(p.stem.split("-")[1]) for p in sorted(journal.glob("snapshot-*.m8s"))]
    assert all((journal / f"snapshot-{n:08d}.m8s").stat().st_size > 64 * 4096 for n in snapshots)
    segments = [int(p.stem.split("-")[1]) for p in sorted(journal.glob("segment-*.m8j"))]
    assert 3 <= segments[-1] <= 12  # 60 records: rotated by what the chats wrote
    assert segments[0] == snapshots[0]  # kept back to a segment opening with a snapshot
    assert len(segments) >= 2
    report = trio.run(replay, journal)
    assert report.restored_from_snapshot and report.ok, report.summary()


def test_a_missing_or_altered_snapshot_file_is_reported(settings: Settings) -> None:
    journal = record_session(settings, requests=2)
    snapshot = journal / "snapshot-00000001.m8s"
    packed = snapshot.read_bytes()
    snapshot.write_bytes(packed[:-1] + bytes([packed[-1] ^ 1]))
    report = trio.run(replay, journal)
    assert report.problems == [
        "run 1 cannot be verified: its snapshot snapshot-00000001.m8s was altered (digest differs)"
    ]
    snapshot.unlink()
    report = trio.run(replay, journal)
    assert not report.ok and "snapshot-00000001.m8s cannot be read" in report.problems[0]


def test_a_journal_written_before_the_typed_messages_and_runs_still_replays(
    tmp_path: Path,
) -> None:
    """Written at 284e959 by a real server (format 1: chats, a stream, an upload, a
    transcription, a forget): every later wire or journal change must still read it."""
    journal = tmp_path / "journal"
    journal.mkdir()
    for segment in (Path(__file__).parent / "data" / "journal-284e959").iterdir():
        (journal / segment.name).write_bytes(segment.read_bytes())
    report = trio.run(replay, journal)
    assert report.requests == report.matched == 7
    assert report.state_matched is True
    assert report.ok, report.summary()


def test_a_run_replays_with_the_encoder_it_used(settings: Settings) -> None:
    """A session served with the hashed-words encoder replays with it, whatever the default:
    the header names the encoder (a journal from before that replays with MiniLM, above)."""
    journal = record_session(dataclasses.replace(settings, encoder="lexical"), requests=3)
    header = read_journal(journal).records[0]
    assert header.body["encoder"] == "lexical-hash"
    report = trio.run(replay, journal)
    assert report.ok and report.state_matched is True, report.summary()


def test_an_encoder_a_journal_names_is_opened_by_that_name() -> None:
    assert open_named("lexical-hash").name == "lexical-hash"
    assert open_named(None).name == "all-MiniLM-L6-v2-int8"  # before headers named it
    with pytest.raises(ValueError, match="unknown encoder"):
        open_named("word2vec")
