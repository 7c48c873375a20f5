"""Sensory actors, one per channel: raw input in, percepts (text with where it came from) out,
kept as memories. Hearing decodes and transcribes audio on a worker thread; reading hands
documents and images to a child process with a memory limit and a timeout. One mailbox each:
one input at a time, so a burst of uploads queues instead of oversubscribing the two cores.

`Listen` and `Upload` are the whole flow (sense, cut into passages, encode, remember, answer),
so HTTP, simulations, the CLI and tests hear and read exactly alike."""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, replace
from typing import Any, cast

import trio

from mem8 import errors
from mem8.actors.messages import (
    Chunk,
    FileKeep,
    FilePage,
    Heard,
    Listen,
    Percept,
    ReadOut,
    Remember,
    Remembered,
    Upload,
)
from mem8.actors.percepts import encoded
from mem8.actors.runtime import Actor, ActorRef, Reply, handles
from mem8.clock import Clock
from mem8.encoders.base import Encoder
from mem8.memory import Modality
from mem8.senses import audio, documents
from mem8.storage.files import StoredFile

SENSED_IMPORTANCE = 0.7  # a percept sent on purpose is as important as an interesting message
# Purposes whose files are knowledge to remember; batch, fine-tune and eval files are data for
# jobs, stored and served back but not read into memory.
READ_PURPOSES = ("assistants", "vision", "user_data")


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


class ReadingActor(Actor):
    def __init__(self, limits: documents.Limits, encoder: Encoder, memory: ActorRef) -> None:
        super().__init__()
        self.limits = limits
        self.encoder = encoder
        self.memory = memory

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
        percepts: list[Percept] = []
        if message.purpose in READ_PURPOSES:
            out = await self._read(message.request_id, message.content, message.filename)
            if out.missing:
                raise errors.SenseUnavailable(
                    out.error or "A reader for this file is not installed"
                )
            if out.error is not None:
                stored = replace(stored, status="error", status_details=out.error)
            percepts = [
                Percept(
                    text=chunk.text,
                    source=f"file:{stored.id}:{chunk.where}".rstrip(":"),
                    modality=chunk.modality,
                    created=message.at,
                )
                for chunk in out.chunks
            ]
        self.answer_apart(
            message, reply, lambda owned: self._keep(message, stored, percepts, owned)
        )

    async def _keep(
        self, message: Upload, stored: StoredFile, percepts: list[Percept], reply: Reply
    ) -> None:
        percepts = await encoded(self.encoder, percepts)
        keep = FileKeep(
            message.request_id, stored.to_wire(), message.content, percepts, SENSED_IMPORTANCE
        )
        await self.memory.ask(keep, Remembered)
        await reply.send(FilePage(message.request_id, [stored.to_wire()], False))


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
