"""The journal on its own: framed, hash-chained records read back as written; damage is a
problem reported, not a crash; the actor rotates segments that open with a snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from mem8.actors.journal import JournalActor, Record, SegmentWriter, read_journal, segment_path
from mem8.actors.messages import Ack, JournalAppend, JournalClose, Snapshot, SnapshotState
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
    snapshot = reading.records[4].body
    assert snapshot == {"states": {"source": {"seq": 3}}}
    assert reading.records[-2].body == {"digests": {"memory": "abc"}}


def test_a_record_msgpack_cannot_hold_is_dropped_and_the_journal_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=5, mailbox_size=16)
            header: dict[str, Any] = {"personas": {}, "started": 0.0}
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
    assert [r.kind for r in reading.records] == ["header", "remember", "state", "close"]
