"""Sensory actors, one per channel: raw input in, percepts (text with where it came from) out,
kept as memories. Hearing decodes and transcribes audio on a worker thread; reading hands
documents and images to a child process with a memory limit and a timeout. One mailbox each:
one input at a time, so a burst of uploads queues instead of oversubscribing the two cores.

`Listen` and `Upload` are the whole flow (sense, cut into passages, encode, remember, answer),
so HTTP, simulations, the CLI and tests hear and read exactly alike."""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import trio

from mem8 import errors
from mem8.actors.messages import (
    Ack,
    Chunk,
    FileAsk,
    FileKeep,
    FilePage,
    FileRead,
    FileReread,
    FilesUnread,
    Heard,
    Listen,
    Percept,
    ReadAgain,
    ReadOut,
    Remember,
    Remembered,
    Upload,
)
from mem8.actors.percepts import encoded
from mem8.actors.runtime import Actor, ActorRef, Reply, handles, new_request_id
from mem8.clock import Clock
from mem8.encoders.base import Encoder
from mem8.memory import Modality
from mem8.senses import audio, documents
from mem8.storage.files import StoredFile

log = logging.getLogger(__name__)
SENSED_IMPORTANCE = 0.7  # a percept sent on purpose is as important as an interesting message
# Purposes whose files are knowledge to remember; batch, fine-tune and eval files are data for
# jobs, stored and served back but not read into memory.
READ_PURPOSES = ("assistants", "vision", "user_data")
# A file read into at most this many chunks is in memory when its upload is answered (about
# 19,000 characters: a few seconds of encoding); a larger one is read in the background.
INLINE_CHUNKS = 16
# Chunks encoded and kept at a time in the background: each batch holds the memory actor, which
# every chat waits on, for a moment only.
READ_BATCH = 32


class HearingActor(Actor):
    def __init__(
        self, transcriber: audio.Transcriber, encoder: Encoder, memory: ActorRef, clock: Clock
    ) -> None:
        super().__init__()
        self.transcriber = transcriber
        self.encoder = encoder
        self.memory = memory
        self.clock = clock

    @handles(Listen)
    async def on_listen(self, message: Listen, reply: Reply) -> None:
        """Transcribes here, one recording at a time; keeps it apart, so the next recording is
        heard while this one is encoded and remembered."""
        hearing = audio.Hearing(
            message.language, message.prompt, message.temperature, message.words
        )
        transcript = await self._transcribed(message.audio, message.max_seconds, hearing)
        ended = self.clock.now()  # the recording ended as it was heard
        self.answer_apart(
            message, reply, lambda owned: self._remember(message, transcript, ended, owned)
        )

    async def _transcribed(
        self, data: bytes, max_seconds: float, hearing: audio.Hearing
    ) -> audio.Transcript:
        return await trio.to_thread.run_sync(self._listen, data, max_seconds, hearing)

    def _listen(self, data: bytes, max_seconds: float, hearing: audio.Hearing) -> audio.Transcript:
        samples = audio.decode(data, max_seconds)
        return self.transcriber.transcribe(samples, hearing)

    async def _remember(
        self, message: Listen, transcript: audio.Transcript, ended: float, reply: Reply
    ) -> None:
        """Each segment a memory, dated when it was heard."""
        percepts = [
            Percept(
                text=segment.text,
                source=f"audio:{message.request_id}:{message.filename}:segment:{segment.id}",
                modality="audio",
                created=ended - transcript.duration + segment.start,
            )
            for segment in transcript.segments
        ]
        percepts = await encoded(self.encoder, percepts)
        if percepts:
            remember = Remember(
                message.request_id,
                message.tenant,
                message.user,
                message.persona,
                percepts,
                SENSED_IMPORTANCE,
            )
            await self.memory.ask(remember, Remembered)
        await reply.send(Heard(message.request_id, transcript_to_wire(transcript)))


@dataclass(frozen=True)
class Reading:
    """A stored file being read into memory in the background: its percepts, and what its
    details say once it is done (None, or that chunks over the limit were left out)."""

    stored: StoredFile
    percepts: list[Percept]
    note: str | None


class ReadingActor(Actor):
    """Reads uploads in a child process, one at a time. A file of at most INLINE_CHUNKS
    chunks is in memory when its upload is answered; a larger one is answered at once with
    status "uploaded" and read into memory in the background, READ_BATCH chunks at a time,
    its details saying how far (a file at a time, so uploads queue rather than share the
    cores). A restart reads again from the start the files it cut short (ReadAgain)."""

    def __init__(
        self,
        limits: documents.Limits,
        encoder: Encoder,
        memory: ActorRef,
        max_chunks: int,
        restarted: bool = False,
    ) -> None:
        super().__init__()
        self.limits = limits
        self.encoder = encoder
        self.memory = memory
        self.max_chunks = max_chunks
        self.restarted = restarted
        self._queued, self._queue = trio.open_memory_channel[Reading](math.inf)

    async def started(self) -> None:
        self.spawn(self._read_in_background)
        if self.restarted:  # a crash of this actor took its queue with it
            self.spawn(self._read_unread)

    async def _read(self, request_id: str, data: bytes, filename: str) -> ReadOut:
        try:
            read = await documents.extract(data, filename, self.limits)
        except documents.ExtractionError as error:
            return ReadOut(request_id, "", 0, [], str(error), error.missing)
        # the reader's modalities are "document" and "image"
        chunks = [Chunk(c.text, c.where, cast(Modality, c.modality)) for c in read.chunks]
        return ReadOut(request_id, read.kind, read.pages, chunks)

    @handles(Upload)
    async def on_upload(self, message: Upload, reply: Reply) -> None:
        """Reads here, one file at a time (only files whose purpose is knowledge); keeps it
        apart, so the next file is read while this one is encoded and stored. A file that
        cannot be read is kept with status 'error' and the reason; a missing reader is the
        server's fault (SenseUnavailable, nothing kept)."""
        stored = uploaded_file(message)
        if message.purpose not in READ_PURPOSES:
            self.answer_apart(message, reply, lambda owned: self._keep(message, stored, [], owned))
            return
        out = await self._read(message.request_id, message.content, message.filename)
        if out.missing:
            raise errors.SenseUnavailable(out.error or "A reader for this file is not installed")
        if out.error is not None:
            stored = replace(stored, status="error", status_details=out.error)
        reading = self._reading(stored, out, message.at)
        if len(reading.percepts) <= INLINE_CHUNKS:
            stored = replace(stored, status_details=stored.status_details or reading.note)
            percepts = reading.percepts
            self.answer_apart(
                message, reply, lambda owned: self._keep(message, stored, percepts, owned)
            )
        else:
            self.answer_apart(message, reply, lambda owned: self._queue_up(message, reading, owned))

    def _reading(self, stored: StoredFile, out: ReadOut, at: float) -> Reading:
        """The percepts of what was read, at most max_chunks of them."""
        percepts = [
            Percept(
                text=chunk.text,
                source=f"file:{stored.id}:{chunk.where}".rstrip(":"),
                modality=chunk.modality,
                created=at,
            )
            for chunk in out.chunks
        ]
        note = None
        if len(percepts) > self.max_chunks:
            note = (
                f"the first {self.max_chunks} of its {len(percepts)} chunks were read into "
                "memory (MEM8_FILE_MAX_CHUNKS)"
            )
        return Reading(stored, percepts[: self.max_chunks], note)

    async def _keep(
        self, message: Upload, stored: StoredFile, percepts: list[Percept], reply: Reply
    ) -> None:
        percepts = await encoded(self.encoder, percepts)
        keep = FileKeep(
            message.request_id, stored.to_wire(), message.content, percepts, SENSED_IMPORTANCE
        )
        await self.memory.ask(keep, Remembered)
        await reply.send(FilePage(message.request_id, [stored.to_wire()], False))

    async def _queue_up(self, message: Upload, reading: Reading, reply: Reply) -> None:
        """Stores the file as uploaded, answers, and leaves its reading to the background."""
        stored = replace(
            reading.stored, status="uploaded", status_details=_progress(0, len(reading.percepts))
        )
        keep = FileKeep(message.request_id, stored.to_wire(), message.content, [], 0.0)
        await self.memory.ask(keep, Remembered)
        await reply.send(FilePage(message.request_id, [stored.to_wire()], False))
        self._queued.send_nowait(replace(reading, stored=stored))

    async def _read_in_background(self) -> None:
        async for reading in self._queue:
            await self._read_through(reading)

    async def _read_through(self, reading: Reading) -> None:
        """Encodes and keeps a file's percepts a batch at a time; a file deleted meanwhile
        ends it, any other failure marks the file's status 'error' with the reason."""
        stored, total = reading.stored, len(reading.percepts)
        done = 0
        try:
            for start in range(0, total, READ_BATCH):
                batch = await encoded(self.encoder, reading.percepts[start : start + READ_BATCH])
                done = min(start + READ_BATCH, total)
                finished = done == total
                status = "processed" if finished else "uploaded"
                details = reading.note if finished else _progress(done, total)
                await self._file_read(stored, batch, status, details)
        except errors.NotFound:
            log.info("file %s was deleted while it was read", stored.id)
        except errors.Mem8Error as error:
            log.warning("reading file %s stopped: %s", stored.id, error)
            details = f"reading stopped after {done} of {total} chunks: {error}"
            with contextlib.suppress(errors.Mem8Error):
                await self._file_read(stored, [], "error", details)

    async def _file_read(
        self, stored: StoredFile, percepts: list[Percept], status: str, details: str | None
    ) -> None:
        read = FileRead(
            new_request_id(), stored.id, stored.tenant, percepts, SENSED_IMPORTANCE, status, details
        )
        await self.memory.ask(read, Remembered, timeout=math.inf)  # it always answers

    @handles(ReadAgain)
    async def on_read_again(self, message: ReadAgain, reply: Reply) -> None:
        self.spawn(self._read_unread)  # in the background: the server starts meanwhile
        await reply.send(Ack(message.request_id))

    async def _read_unread(self) -> None:
        """The files a restart cut short: what was read of them is forgotten, and they are
        read again from their stored bytes."""
        page = await self.memory.ask(FilesUnread(new_request_id()), FilePage)
        for wire in page.files:
            stored = StoredFile.from_wire(wire)
            await self.memory.ask(FileReread(new_request_id(), stored.id, stored.tenant), Ack)
            ask = FileAsk(new_request_id(), stored.tenant, stored.id, content=True)
            content = (await self.memory.ask(ask, FilePage)).content or b""
            out = await self._read(new_request_id(), content, stored.filename)
            if out.error is not None:
                await self._file_read(stored, [], "error", out.error)
                continue
            reading = self._reading(stored, out, float(stored.created_at))
            log.info(
                "reading file %s again from the start (%d chunks)", stored.id, len(reading.percepts)
            )
            self._queued.send_nowait(reading)


def _progress(done: int, total: int) -> str:
    return f"reading into memory: {done} of {total} chunks"


def uploaded_file(upload: Upload) -> StoredFile:
    """The file's record as it will be stored: processed, unless reading it fails."""
    return StoredFile(
        id=f"file-{uuid.uuid4().hex[:24]}",
        tenant=upload.tenant,
        user=upload.user,
        persona=upload.persona,
        filename=upload.filename,
        purpose=upload.purpose,
        bytes=len(upload.content),
        created_at=math.floor(upload.at),
        status="processed",
        status_details=None,
    )


def transcript_to_wire(transcript: audio.Transcript) -> dict[str, Any]:
    return asdict(transcript)
