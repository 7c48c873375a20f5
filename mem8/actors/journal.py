"""The journal: an append-only, hash-chained msgpack log of every external input and backend
output, in segments that rotate. Each run of the server opens with a snapshot of the state it
starts from; rotated segments open with one too, at most every `snapshot_bytes` of records.
A snapshot is a file of its own beside the segments, so its size never rotates them."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
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
    JournalStart,
    Snapshot,
    SnapshotState,
)
from mem8.actors.runtime import Actor, ActorRef, Reply, handles, new_request_id

log = logging.getLogger(__name__)
FORMAT = 2  # 2: a run id in the header, a start record, snapshots in files of their own
SEGMENT_GLOB = "segment-*.m8j"
SNAPSHOT_GLOB = "snapshot-*.m8s"  # states of the actors, named by the segment they open
SNAPSHOT_STORE_GLOB = "snapshot-*.db"  # the store's copy such a snapshot refers to
LEGACY_STORE_GLOB = "store-*.db"  # format 1's store copies, named by commit seq
OPENINGS = ("start", "snapshot")  # the records a segment can open with, after its header
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


def snapshot_path(directory: Path, number: int) -> Path:
    return directory / f"snapshot-{number:08d}.m8s"


def size_on_disk(directory: Path) -> int:
    """Bytes the journal's files take: its segments, snapshots and their store copies."""
    total = 0
    for pattern in (SEGMENT_GLOB, SNAPSHOT_GLOB, SNAPSHOT_STORE_GLOB, LEGACY_STORE_GLOB):
        for path in directory.glob(pattern):
            with contextlib.suppress(FileNotFoundError):  # rotated away meanwhile
                total += path.stat().st_size
    return total


def _number(path: Path) -> int:
    return int(path.stem.split("-")[1])


def _numbers(directory: Path, pattern: str) -> list[int]:
    return sorted(_number(path) for path in directory.glob(pattern))


@dataclass(frozen=True)
class SnapshotFile:
    """A snapshot packed for its own file, and the record body that refers to it."""

    path: Path
    packed: bytes

    @classmethod
    def of(cls, path: Path, states: dict[str, Any]) -> SnapshotFile:
        return cls(path, msgpack.packb({"states": states}, use_bin_type=True))

    def body(self) -> dict[str, Any]:
        return {"file": self.path.name, "sha256": hashlib.sha256(self.packed).hexdigest()}

    def write(self) -> None:
        """Writes the file durably."""
        with open(self.path, "wb") as file:
            file.write(self.packed)
            file.flush()
            os.fsync(file.fileno())


def read_snapshot(directory: Path, body: dict[str, Any]) -> dict[str, Any]:
    """The states an opening record holds (format 1) or refers to; SnapshotMissing if its
    file is gone or is not what the record says."""
    if "states" in body:
        states: dict[str, Any] = body["states"]
        return states
    if "file" not in body:
        raise SnapshotMissing(f"taken without a snapshot: {body.get('error', 'no reason given')}")
    path = directory / body["file"]
    try:
        packed = path.read_bytes()
    except OSError as error:
        raise SnapshotMissing(f"its snapshot {path.name} cannot be read: {error}") from error
    if hashlib.sha256(packed).hexdigest() != body["sha256"]:
        raise SnapshotMissing(f"its snapshot {path.name} was altered (digest differs)")
    states = msgpack.unpackb(packed, raw=False, strict_map_key=False)["states"]
    return states


class SnapshotMissing(Exception):
    """An opening record whose snapshot cannot be had."""


class SegmentWriter:
    """Writes framed records, [kind, at, body, chain], to one segment file."""

    def __init__(self, path: Path, number: int) -> None:
        self.path = path
        self.number = number
        self._file: BinaryIO = open(path, "xb")  # noqa: SIM115 - lives as long as the writer
        self._previous = _seed(number)
        self.bytes = 0

    def append(self, record: Record) -> int:
        """Writes the record; its size in bytes. Packing fails (ValueError, TypeError) before
        anything is written."""
        # at as a float always: the reader repacks what it reads, so an int would not chain.
        packed = msgpack.packb([record.kind, float(record.at), record.body], use_bin_type=True)
        self._previous = _chain(self._previous, packed)
        # [kind, at, body, chain]: the same items behind a 4-array header, packed only once.
        frame = b"\x94" + packed[1:] + msgpack.packb(self._previous, use_bin_type=True)
        self._file.write(frame)
        self._file.flush()
        self.bytes += len(frame)
        return len(frame)

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.sync()
        self._file.close()


@dataclass
class JournalReading:
    """What a journal directory holds and what is wrong with it (problems are data, not crashes).
    A segment cut short where its run crashed, with a later run after it, is a note: the
    records before the cut are read and so is the next run."""

    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    segments: list[Path] = field(default_factory=list)

    @property
    def closed_cleanly(self) -> bool:
        return bool(self.records) and self.records[-1].kind == "close"


@dataclass
class _Segment:
    records: list[Record] = field(default_factory=list)
    problem: str | None = None
    truncated: bool = False  # cut inside a record: a crash, unless a later record follows

    @property
    def run(self) -> str | None:
        return run_of(self.records[0]) if self.records else None


def run_of(record: Record) -> str | None:
    """The run a header record belongs to (None before format 2 and in other records)."""
    run = record.body.get("run") if record.kind == "header" else None
    return run if isinstance(run, str) else None


def read_journal(directory: Path) -> JournalReading:
    reading = JournalReading(segments=sorted(directory.glob(SEGMENT_GLOB)))
    if not directory.is_dir():
        reading.problems.append(f"{directory} is not a journal directory")
        return reading
    if not reading.segments:
        reading.problems.append(f"{directory} holds no journal segments")
    cut: tuple[_Segment, str] | None = None  # a truncated segment, until the next says why
    for path in reading.segments:
        segment = _read_segment(path)
        if cut is not None:
            cut_run, why = cut
            if cut_run.run is None or segment.run in (None, cut_run.run):
                reading.problems.append(why)
                return reading
            reading.notes.append(f"{why}: that run ended there (a crash), the next one follows")
            cut = None
        reading.records += segment.records
        if segment.truncated and segment.problem is not None:
            cut = (segment, segment.problem)
        elif segment.problem is not None:
            reading.problems.append(segment.problem)
            return reading
    if cut is not None:
        reading.problems.append(cut[1])
    return reading


def _read_segment(path: Path) -> _Segment:
    """The segment's records, up to any damage (which it names)."""
    segment = _Segment()
    previous = _seed(_number(path))
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
    unpacker.feed(path.read_bytes())
    index = 0
    try:
        for frame in unpacker:
            kind, at, body, chain = _frame_fields(frame)
            previous = _chain(previous, msgpack.packb([kind, at, body], use_bin_type=True))
            if previous != chain:
                segment.problem = f"{path.name}: record {index} was altered (hash chain broken)"
                return segment
            segment.records.append(Record(kind, at, body))
            index += 1
    except (ValueError, msgpack.UnpackException, msgpack.ExtraData) as error:
        segment.problem = f"{path.name}: record {index} is unreadable: {error}"
        return segment
    if unpacker.tell() != path.stat().st_size:
        segment.problem = f"{path.name}: truncated inside record {index}"
        segment.truncated = True
    return segment


def _open_chats(directory: Path, run: str) -> dict[str, list[Record]]:
    """The chat records of a run that no commit has closed yet, read back from its segments."""
    chats: dict[str, list[Record]] = {}
    segments = sorted(directory.glob(SEGMENT_GLOB))
    for path in reversed(segments):  # the run's segments are the newest ones
        if _read_segment(path).run != run:
            segments = segments[segments.index(path) + 1 :]
            break
    for path in segments:
        for record in _read_segment(path).records:
            _track(chats, record)
    return chats


def _track(open_chats: dict[str, list[Record]], record: Record) -> None:
    """Chats begun and not yet committed, by request id (a record without one is no chat)."""
    if record.kind == "chat":
        message = record.body.get("message")
        request_id = message.get("request_id") if isinstance(message, dict) else None
        if isinstance(request_id, str):
            open_chats[request_id] = [record]
    elif record.kind == "commit":
        open_chats.pop(str(record.body.get("request_id")), None)


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
        snapshot_bytes: int | None = None,
    ) -> None:
        super().__init__()
        self.directory = directory
        self.header = header  # its "run" names this run of the server
        self.segment_bytes = segment_bytes
        self.snapshot_bytes = segment_bytes if snapshot_bytes is None else snapshot_bytes
        self.keep_segments = keep_segments
        self.sources = sources  # actors whose state a snapshot holds, by owner name
        self.writer: SegmentWriter | None = None
        self.open_requests: dict[str, list[Record]] = {}  # chats not yet committed
        self.rotating = False
        self.closed = False
        self.grown = 0  # bytes of records in the open segment, after its opening
        self.since_snapshot = 0  # bytes of records since the last snapshot

    async def started(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        run = self.header.get("run")
        last = self._last_segment()
        if isinstance(run, str) and last is not None and _read_segment(last).run == run:
            # Restarted by the supervisor: the run goes on, in a segment of its own.
            self.open_requests = await trio.to_thread.run_sync(_open_chats, self.directory, run)
            self._open_segment(_number(last) + 1, None)
            log.warning("journal restarted: run %s goes on in %s", run, self._segment_name())
        self.spawn(self._sync_periodically)

    def _last_segment(self) -> Path | None:
        segments = sorted(self.directory.glob(SEGMENT_GLOB))
        return segments[-1] if segments else None

    def _segment_name(self) -> str:
        return self.writer.path.name if self.writer is not None else "no segment"

    def _next_number(self) -> int:
        last = self._last_segment()
        return _number(last) + 1 if last is not None else 1

    def _open_segment(self, number: int, opening: Record | None) -> None:
        self.writer = SegmentWriter(segment_path(self.directory, number), number)
        self.writer.append(
            Record("header", 0.0, {**self.header, "format": FORMAT, "segment": number})
        )
        if opening is not None:
            self.writer.append(opening)
            if opening.kind == "snapshot":  # the chats it does not hold yet, for a replay from it
                for records in self.open_requests.values():
                    for record in records:
                        self.writer.append(record)
            self.since_snapshot = 0
        self.grown = 0

    @handles(JournalStart)
    async def on_start(self, message: JournalStart, reply: Reply) -> None:
        """Opens the run with a snapshot of the state the system starts from (the store as
        recovered), so that replay verifies this run from here whatever came before."""
        number = self._next_number()
        try:
            snapshot = await self._snapshot(number, math.inf)  # a large store takes a while
            await trio.to_thread.run_sync(snapshot.write)
            body = snapshot.body()
        except errors.Mem8Error as error:
            log.error("journal: this run starts without a snapshot: %s", error)
            body = {"error": str(error)}
        if self.writer is not None:
            self.writer.close()
        self._open_segment(number, Record("start", 0.0, body))
        self._drop_old_segments()
        await reply.send(Ack(message.request_id))

    @handles(JournalAppend)
    async def on_append(self, message: JournalAppend, reply: Reply) -> None:
        record = Record(message.kind, message.at, message.body)
        if self.closed:
            log.warning("journal closed: %s record dropped", record.kind)
            return
        if self.writer is None:  # told records before (or without) a start
            self._open_segment(self._next_number(), None)
        assert self.writer is not None
        try:
            size = self.writer.append(record)
            _track(self.open_requests, record)
        except (ValueError, TypeError, OverflowError) as error:  # nothing was written
            log.error("journal: a %s record cannot be written: %s", record.kind, error)
            size = self.writer.append(Record("unrecorded", record.at, {"kind": record.kind}))
        self.grown += size
        self.since_snapshot += size
        if self.grown >= self.segment_bytes and not self.rotating:
            self.rotating = True
            self.spawn(self._rotate)

    async def _rotate(self) -> None:
        """Starts the next segment; it opens with a snapshot of every actor's state when
        enough has been written since the last one, and old segments go."""
        assert self.writer is not None
        number = self.writer.number + 1
        snapshot = None
        if self.since_snapshot >= self.snapshot_bytes:
            try:
                snapshot = await self._snapshot(number, None)
            except errors.Mem8Error as error:
                log.warning("journal rotation postponed: %s", error)
                self.rotating = False
                return
        # No await from the snapshot's answer to the new segment: a record told after the
        # snapshot was taken must not land in the segment before it.
        if self.writer is not None:  # not closed meanwhile
            self.writer.close()
            opening = Record("snapshot", 0.0, snapshot.body()) if snapshot else None
            self._open_segment(number, opening)
            if snapshot is not None:
                await trio.to_thread.run_sync(snapshot.write)
            self._drop_old_segments()  # only once the snapshot covering them is on disk
        self.rotating = False

    async def _snapshot(self, number: int, timeout: float | None) -> SnapshotFile:
        """Every actor's state, for the snapshot file of segment `number`."""
        store = f"snapshot-{number:08d}.db"
        states: dict[str, Any] = {}
        for owner, ref in self.sources.items():
            ask = Snapshot(new_request_id(), store_name=store)
            answer = await ref.ask(ask, SnapshotState, timeout=timeout)
            states[owner] = answer.state
        return SnapshotFile.of(snapshot_path(self.directory, number), states)

    def _drop_old_segments(self) -> None:
        """Keeps the newest segments, back to one that opens with a snapshot, and the
        snapshots and store copies they need."""
        segments = _numbers(self.directory, SEGMENT_GLOB)
        if len(segments) <= self.keep_segments:
            return
        first = segments[-self.keep_segments]
        snapshots = _numbers(self.directory, SNAPSHOT_GLOB)
        opening = [n for n in snapshots if n <= first]
        if opening:
            first = opening[-1]
        for pattern in (SEGMENT_GLOB, SNAPSHOT_GLOB, SNAPSHOT_STORE_GLOB):
            for old in self.directory.glob(pattern):
                if _number(old) < first:
                    self._drop(old)
        legacy = sorted(self.directory.glob(LEGACY_STORE_GLOB))
        # Once the oldest kept segment is of format 2, no store copy of format 1 is needed.
        keep_legacy = 0 if opening else self.keep_segments
        for old in legacy[: max(0, len(legacy) - keep_legacy)]:
            self._drop(old)

    def _drop(self, old: Path) -> None:
        old.unlink()
        log.info("journal file %s rotated away (covered by a later snapshot)", old.name)

    async def _sync_periodically(self) -> None:
        """Fsyncs the open segment every second; closes it when the actor stops (a crash
        included: its successor opens a segment of its own)."""
        try:
            while True:
                await trio.sleep(FSYNC_INTERVAL)
                if self.writer is not None:
                    self.writer.sync()
        finally:
            if self.writer is not None:
                self.writer.close()
                self.writer = None

    @handles(JournalClose)
    async def on_close(self, message: JournalClose, reply: Reply) -> None:
        """Writes the final state digests and a close record: a journal that ends so is whole."""
        if self.writer is not None:
            self.writer.append(Record("state", 0.0, {"digests": message.digests}))
            self.writer.append(Record("close", 0.0, {}))
            self.writer.close()
            self.writer = None
        self.closed = True
        await reply.send(Ack(message.request_id))
