"""Sensory actors, one per channel: raw input in, percepts (text with where it came from) out.
Hearing decodes and transcribes audio on a worker thread; reading hands documents and images to
a child process with a memory limit and a timeout. One mailbox each: one input at a time, so a
burst of uploads queues instead of oversubscribing the two cores."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any, cast

import trio

from mem8.actors.messages import Chunk, Hear, Heard, Percept, Read, ReadOut
from mem8.actors.runtime import Actor, Reply, handles
from mem8.encoders.base import Encoder
from mem8.memory import Modality
from mem8.senses import audio, documents

SENSED_IMPORTANCE = 0.7  # a percept sent on purpose is as important as an interesting message


class HearingActor(Actor):
    def __init__(self, transcriber: audio.Transcriber) -> None:
        super().__init__()
        self.transcriber = transcriber

    @handles(Hear)
    async def on_hear(self, message: Hear, reply: Reply) -> None:
        hearing = audio.Hearing(
            message.language, message.prompt, message.temperature, message.words
        )
        transcript = await trio.to_thread.run_sync(self._listen, message, hearing)
        await reply.send(Heard(message.request_id, transcript_to_wire(transcript)))

    def _listen(self, message: Hear, hearing: audio.Hearing) -> audio.Transcript:
        samples = audio.decode(message.audio, message.max_seconds)
        return self.transcriber.transcribe(samples, hearing)


class ReadingActor(Actor):
    def __init__(self, limits: documents.Limits) -> None:
        super().__init__()
        self.limits = limits

    @handles(Read)
    async def on_read(self, message: Read, reply: Reply) -> None:
        try:
            read = await documents.extract(message.data, message.filename, self.limits)
        except documents.ExtractionError as error:
            failed = ReadOut(message.request_id, "", 0, [], str(error), error.missing)
            await reply.send(failed)
            return
        # the reader's modalities are "document" and "image"
        chunks = [Chunk(c.text, c.where, cast(Modality, c.modality)) for c in read.chunks]
        await reply.send(ReadOut(message.request_id, read.kind, read.pages, chunks))


async def encoded(encoder: Encoder, percepts: list[Percept]) -> list[Percept]:
    """The percepts that hold text, a long one cut into passages, each with its encoder
    vector, computed on a worker thread: a long recording or document must not hold the memory
    actor's mailbox, which every chat waits on, while it is encoded."""
    held = [passage for percept in percepts for passage in percept.passages()]
    if not held:
        return []
    vectors = await trio.to_thread.run_sync(encoder.embed_batch, [p.text for p in held])
    return [
        replace(percept, vector=vector.astype("<f4").tobytes())
        for percept, vector in zip(held, vectors, strict=True)
    ]


def transcript_to_wire(transcript: audio.Transcript) -> dict[str, Any]:
    return asdict(transcript)


def transcript_from_wire(wire: dict[str, Any]) -> audio.Transcript:
    segments = [
        audio.Segment(**{**s, "words": [audio.Word(**w) for w in s["words"]]})
        for s in wire["segments"]
    ]
    return audio.Transcript(wire["language"], wire["duration"], segments)
