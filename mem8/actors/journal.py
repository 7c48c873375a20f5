"""The journal: an append-only, hash-chained msgpack log of every external input and backend
output, in segments that rotate; each new segment opens with a snapshot of every actor's state."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
import trio

from mem8 import errors
from mem8.actors.messages import (
    Ack,
    JournalAppend,
    JournalClose,
    Snapshot,
    SnapshotState,
)
from mem8.actors.runtime import Actor, ActorRef, Reply, handles, new_request_id

log = logging.getLogger(__name__)
FORMAT = 1
SEGMENT_GLOB = "segment-*.m8j"
STORE_GLOB = "store-*.db"  # the store's copy that a segment's opening snapshot refers to
FSYNC_INTERVAL = 1.0  # seconds between background fsyncs of the open segment


@dataclass(frozen=True)
class Record:
    kind: str
    at: float
    body: dict[str, Any]


def _chain(previous: bytes, packed: bytes) -> bytes:
    return hashlib.sha256(previous + packed).digest()[:16]


def _seed(segment: int) -> bytes:
    return hashlib.sha256(b"mem8-journal-%d" % segment).digest()[:16]


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"segment-{number:08d}.m8j"


class SegmentWriter:
    """Writes framed records, [kind, at, body, chain], to one segment file."""

    def __init__(self, path: Path, number: int) -> None:
        self.path = path
        self.number = number
        self._file: BinaryIO = open(path, "xb")  # noqa: SIM115 - lives as long as the writer
        self._previous = _seed(number)
        self.bytes = 0

    def append(self, record: Record) -> None:
        # at as a float always: the reader repacks what it reads, so an int would not chain.
        try:  # before any change: a record msgpack cannot hold leaves the journal as it was
            packed = msgpack.packb([record.kind, float(record.at), record.body], use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as error:
            message = f"the journal cannot hold a {record.kind} record: {error}"
            raise errors.InvalidRequest(message) from error
        self._previous = _chain(self._previous, packed)
        # [kind, at, body, chain]: the same items behind a 4-array header, packed only once.
        frame = b"\x94" + packed[1:] + msgpack.packb(self._previous, use_bin_type=True)
        self._file.write(frame)
        self._file.flush()
        self.bytes += len(frame)

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.sync()
        self._file.close()


@dataclass
class JournalReading:
    """What a journal directory holds and what is wrong with it (problems are data, not crashes)."""

    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    segments: list[Path] = field(default_factory=list)

    @property
    def closed_cleanly(self) -> bool:
        return bool(self.records) and self.records[-1].kind == "close"


def read_journal(directory: Path) -> JournalReading:
    reading = JournalReading(segments=sorted(directory.glob(SEGMENT_GLOB)))
    if not directory.is_dir():
        reading.problems.append(f"{directory} is not a journal directory")
        return reading
    if not reading.segments:
        reading.problems.append(f"{directory} holds no journal segments")
    for path in reading.segments:
        if not _read_segment(path, reading):
            break
    return reading


def _read_segment(path: Path, reading: JournalReading) -> bool:
    """Appends the segment's records; False (and a problem) where it is damaged."""
    number = int(path.stem.split("-")[1])
    previous = _seed(number)
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
    unpacker.feed(path.read_bytes())
    index = 0
    try:
        for frame in unpacker:
            kind, at, body, chain = _frame_fields(frame)
            previous = _chain(previous, msgpack.packb([kind, at, body], use_bin_type=True))
            if previous != chain:
                reading.problems.append(
                    f"{path.name}: record {index} was altered (hash chain broken)"
                )
                return False
            reading.records.append(Record(kind, at, body))
            index += 1
    except (ValueError, msgpack.UnpackException, msgpack.ExtraData) as error:
        reading.problems.append(f"{path.name}: record {index} is unreadable: {error}")
        return False
    if unpacker.tell() != path.stat().st_size:
        reading.problems.append(f"{path.name}: truncated inside record {index}")
        return False
    return True


def _frame_fields(frame: Any) -> tuple[str, float, dict[str, Any], bytes]:
    valid = (
        isinstance(frame, list)
        and len(frame) == 4
        and isinstance(frame[0], str)
        and isinstance(frame[1], int | float)
        and isinstance(frame[2], dict)
        and isinstance(frame[3], bytes)
    )
    if not valid:
        raise ValueError("not a journal record")
    return frame[0], float(frame[1]), frame[2], frame[3]


class JournalActor(Actor):
    """Owns the journal directory; personas tell it records, it asks them for snapshots."""

    def __init__(
        self,
        directory: Path,
        header: dict[str, Any],
        *,
        segment_bytes: int,
        keep_segments: int,
        sources: Mapping[str, ActorRef],
    ) -> None:
        super().__init__()
        self.directory = directory
        self.header = header
        self.segment_bytes = segment_bytes
        self.keep_segments = keep_segments
        self.sources = sources  # actors whose state a snapshot holds, by owner name
        self.writer: SegmentWriter | None = None
        self.open_requests: dict[str, list[Record]] = {}  # chats not yet committed
        self.rotating = False

    async def started(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.directory.glob(SEGMENT_GLOB))
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        self._open_segment(number, snapshot=None)
        self.spawn(self._sync_periodically)

    def _open_segment(self, number: int, snapshot: dict[str, Any] | None) -> None:
        self.writer = SegmentWriter(segment_path(self.directory, number), number)
        self.writer.append(
            Record("header", 0.0, {**self.header, "format": FORMAT, "segment": number})
        )
        if snapshot is not None:
            self.writer.append(Record("snapshot", 0.0, {"states": snapshot}))
            for records in self.open_requests.values():
                for record in records:
                    self.writer.append(record)

    @handles(JournalAppend)
    async def on_append(self, message: JournalAppend, reply: Reply) -> None:
        record = Record(message.kind, message.at, message.body)
        if self.writer is None:
            log.warning("journal closed: %s record dropped", record.kind)
            return
        try:
            self.writer.append(record)
        except errors.InvalidRequest as error:  # a told record: no caller to fail, and no crash
            log.error("journal record dropped: %s", error)
            return
        self._track(record)
        if self.writer.bytes >= self.segment_bytes and not self.rotating:
            self.rotating = True
            self.spawn(self._rotate)

    def _track(self, record: Record) -> None:
        if record.kind == "chat":
            request_id = record.body["message"]["request_id"]
            self.open_requests[request_id] = [record]
        elif record.kind == "commit":
            self.open_requests.pop(record.body["request_id"], None)

    async def _rotate(self) -> None:
        """Gathers every actor's state, then starts a segment holding it and drops old ones."""
        try:
            snapshot = await self._gather_snapshot()
        except errors.Mem8Error as error:
            log.warning("journal rotation postponed: %s", error)
            self.rotating = False
            return
        assert self.writer is not None
        number = self.writer.number + 1
        self.writer.close()
        self._open_segment(number, snapshot)
        self._drop_old_segments()
        self.rotating = False

    async def _gather_snapshot(self) -> dict[str, Any]:
        states: dict[str, Any] = {}
        for owner, ref in self.sources.items():
            answer = await ref.ask(Snapshot(new_request_id()), SnapshotState)
            states[owner] = answer.state
        return states

    def _drop_old_segments(self) -> None:
        """Keeps the newest segments and the store copies their snapshots refer to."""
        for pattern in (SEGMENT_GLOB, STORE_GLOB):
            files = sorted(self.directory.glob(pattern))
            for old in files[: max(0, len(files) - self.keep_segments)]:
                old.unlink()
                log.info("journal file %s rotated away (covered by a later snapshot)", old.name)

    async def _sync_periodically(self) -> None:
        while True:
            await trio.sleep(FSYNC_INTERVAL)
            if self.writer is not None:
                self.writer.sync()

    @handles(JournalClose)
    async def on_close(self, message: JournalClose, reply: Reply) -> None:
        """Writes the final state digests and a close record: a journal that ends so is whole."""
        if self.writer is not None:
            self.writer.append(Record("state", 0.0, {"digests": message.digests}))
            self.writer.append(Record("close", 0.0, {}))
            self.writer.close()
            self.writer = None
        await reply.send(Ack(message.request_id))
