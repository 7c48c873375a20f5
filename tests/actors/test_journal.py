"""The journal on its own: framed, hash-chained records read back as written; damage is a
problem reported, not a crash; the actor rotates segments that open with a snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from mem8 import errors
from mem8.actors.journal import (
    JournalActor,
    Record,
    SegmentWriter,
    read_journal,
    read_snapshot,
    segment_path,
)
from mem8.actors.messages import (
    Ack,
    Digest,
    JournalAppend,
    JournalClose,
    Snapshot,
    SnapshotState,
    StateDigest,
)
from mem8.actors.runtime import Actor, Reply, Supervisor, handles, new_request_id

RECORDS = [
    Record("header", 0.0, {"personas": {}, "format": 1, "segment": 1}),
    Record("chat", 12.5, {"message": {"request_id": "r1"}, "conversation": "c"}),
    Record("commit", 13.0, {"request_id": "r1", "seq": 1}),
    Record("close", 0.0, {}),
]


def write(directory: Path, records: list[Record]) -> Path:
    path = segment_path(directory, 1)
    writer = SegmentWriter(path, 1)
    for record in records:
        writer.append(record)
    writer.close()
    return path


def test_records_read_back_as_written(tmp_path: Path) -> None:
    write(tmp_path, RECORDS)
    reading = read_journal(tmp_path)
    assert reading.problems == []
    assert reading.records == RECORDS
    assert reading.closed_cleanly


def test_an_int_time_is_kept_as_a_float_so_the_chain_holds(tmp_path: Path) -> None:
    write(tmp_path, [Record("remember", 7, {"seq": 1})])  # type: ignore[arg-type]
    reading = read_journal(tmp_path)
    assert reading.problems == [] and reading.records[0].at == 7.0
    assert not reading.closed_cleanly


def test_an_altered_record_breaks_the_chain(tmp_path: Path) -> None:
    path = write(tmp_path, RECORDS)
    data = path.read_bytes()
    at = data.index(b"r1")
    path.write_bytes(data[:at] + b"r2" + data[at + 2 :])
    reading = read_journal(tmp_path)
    assert any("altered" in p for p in reading.problems), reading.problems
    assert [r.kind for r in reading.records] == ["header"]  # read up to the damage


def test_a_cut_record_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, RECORDS)
    path.write_bytes(path.read_bytes()[:-3])
    reading = read_journal(tmp_path)
    assert any("truncated" in p or "unreadable" in p for p in reading.problems)
    assert not reading.closed_cleanly


def test_a_missing_directory_or_no_segments_is_a_problem(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "missing").problems
    assert read_journal(tmp_path).problems == [f"{tmp_path} holds no journal segments"]


class Source(Actor):
    """An actor whose state a snapshot holds."""

    @handles(Snapshot)
    async def on_snapshot(self, message: Snapshot, reply: Reply) -> None:
        await reply.send(SnapshotState(message.request_id, "source", {"seq": 3}))


def test_the_actor_rotates_into_a_segment_opening_with_a_snapshot_and_open_chats(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=5, mailbox_size=16)
            source = supervisor.start("source", Source)

            def journal() -> JournalActor:
                header: dict[str, Any] = {"personas": {}, "started": 0.0}
                sources = {"source": source}
                return JournalActor(
                    tmp_path, header, segment_bytes=200, keep_segments=5, sources=sources
                )

            ref = supervisor.start("journal", journal)
            chat = {"message": {"request_id": "open"}, "conversation": "c"}
            await ref.tell(JournalAppend("chat", 1.0, chat))
            await ref.tell(JournalAppend("remember", 2.0, {"padding": "x" * 300, "seq": 1}))
            await trio.testing.wait_all_tasks_blocked()  # the rotation's snapshot taken
            await ref.ask(JournalClose(new_request_id(), {"memory": "abc"}), Ack)
            nursery.cancel_scope.cancel()

    trio.run(main)
    segments = [path.name for path in sorted(tmp_path.glob("segment-*.m8j"))]
    assert segments == ["segment-00000001.m8j", "segment-00000002.m8j"]
    reading = read_journal(tmp_path)
    assert reading.problems == [] and reading.closed_cleanly
    kinds = [r.kind for r in reading.records]
    assert kinds == ["header", "chat", "remember", "header", "snapshot", "chat", "state", "close"]
    snapshot = reading.records[4].body  # a file of its own beside the segment
    assert snapshot["file"] == "snapshot-00000002.m8s"
    assert read_snapshot(tmp_path, snapshot) == {"source": {"seq": 3}}
    assert reading.records[-2].body == {"digests": {"memory": "abc"}}


def _segment(directory: Path, number: int, run: str, kinds: list[str]) -> Path:
    path = segment_path(directory, number)
    writer = SegmentWriter(path, number)
    writer.append(Record("header", 0.0, {"personas": {}, "run": run, "segment": number}))
    for kind in kinds:
        writer.append(Record(kind, 1.0, {"request_id": "r", "seq": 1}))
    writer.close()
    return path


def test_a_run_cut_short_by_a_crash_is_a_note_when_another_run_follows(tmp_path: Path) -> None:
    first = _segment(tmp_path, 1, "run-a", ["remember", "remember"])
    first.write_bytes(first.read_bytes()[:-3])  # kill -9 inside the last record
    _segment(tmp_path, 2, "run-b", ["remember", "close"])
    reading = read_journal(tmp_path)
    assert reading.problems == []
    assert reading.notes == [
        "segment-00000001.m8j: truncated inside record 2: that run ended there (a crash), "
        "the next one follows"
    ]
    assert [r.kind for r in reading.records] == [
        "header",
        "remember",
        "header",
        "remember",
        "close",
    ]
    assert reading.closed_cleanly


def test_a_cut_inside_a_run_or_at_the_end_is_a_problem(tmp_path: Path) -> None:
    first = _segment(tmp_path, 1, "run-a", ["remember", "remember"])
    first.write_bytes(first.read_bytes()[:-3])
    assert read_journal(tmp_path).problems == ["segment-00000001.m8j: truncated inside record 2"]
    _segment(tmp_path, 2, "run-a", ["close"])  # the same run goes on: records are missing
    assert read_journal(tmp_path).problems == ["segment-00000001.m8j: truncated inside record 2"]


class CrashingJournal(JournalActor):
    """A journal actor that a bug takes down when it is asked for a digest."""

    @handles(StateDigest)
    async def on_digest(self, message: StateDigest, reply: Reply) -> None:
        raise RuntimeError("a bug in the journal")


def test_a_restarted_journal_actor_goes_on_with_its_run_and_its_open_chats(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=5, mailbox_size=16)
            source = supervisor.start("source", Source)

            def journal() -> JournalActor:
                header: dict[str, Any] = {"personas": {}, "started": 0.0, "run": "run-a"}
                sources = {"source": source}
                return CrashingJournal(
                    tmp_path, header, segment_bytes=400, keep_segments=5, sources=sources
                )

            ref = supervisor.start("journal", journal)
            chat = {"message": {"request_id": "open"}, "conversation": "c"}
            await ref.tell(JournalAppend("chat", 1.0, chat))
            with pytest.raises(errors.ActorUnavailable):
                await ref.ask(StateDigest(new_request_id()), Digest)
            # Restarted: a segment of its own, then a rotation that still carries the open chat.
            await ref.tell(JournalAppend("remember", 2.0, {"padding": "x" * 500, "seq": 1}))
            with trio.fail_after(5):  # (the restart reads the run back on a worker thread)
                while not (tmp_path / "snapshot-00000003.m8s").exists():
                    await trio.sleep(0.01)
            commit = {"request_id": "open", "seq": 2}
            await ref.tell(JournalAppend("commit", 3.0, commit))
            await ref.ask(JournalClose(new_request_id(), {"memory": "abc"}), Ack)
            assert supervisor.restarts["journal"] == 1
            nursery.cancel_scope.cancel()

    trio.run(main)
    segments = [path.name for path in sorted(tmp_path.glob("segment-*.m8j"))]
    assert segments == [f"segment-0000000{n}.m8j" for n in (1, 2, 3)]
    reading = read_journal(tmp_path)
    assert reading.problems == [] and reading.closed_cleanly
    headers = [r.body for r in reading.records if r.kind == "header"]
    assert [h["run"] for h in headers] == ["run-a"] * 3
    kinds = [r.kind for r in reading.records]
    assert kinds == [
        "header",
        "chat",
        "header",  # the restarted actor's
        "remember",
        "header",
        "snapshot",
        "chat",  # still open: replay from this segment begins it
        "commit",
        "state",
        "close",
    ]


def test_a_record_msgpack_cannot_hold_is_marked_and_the_journal_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=5, mailbox_size=16)
            header: dict[str, Any] = {"personas": {}, "started": 0.0, "run": "run-a"}
            ref = supervisor.start(
                "journal",
                lambda: JournalActor(
                    tmp_path, header, segment_bytes=1 << 20, keep_segments=2, sources={}
                ),
            )
            bad = {"message": {"request_id": "bad", "text": "\ud800"}, "conversation": "c"}
            await ref.tell(JournalAppend("chat", 1.0, bad))
            await ref.tell(JournalAppend("remember", 2.0, {"seq": 1}))
            await ref.ask(JournalClose(new_request_id(), {"memory": "abc"}), Ack)
            assert supervisor.restarts["journal"] == 0
            nursery.cancel_scope.cancel()

    trio.run(main)
    reading = read_journal(tmp_path)
    assert reading.problems == [] and reading.closed_cleanly
    kinds = [r.kind for r in reading.records]
    assert kinds[kinds.index("unrecorded") :] == ["unrecorded", "remember", "state", "close"]
    assert reading.records[kinds.index("unrecorded")].body == {"kind": "chat"}
