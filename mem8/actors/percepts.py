"""Percepts made ready for the memory actor by whoever sends them (a sense, a persona): cut
into passages and encoded here, on a worker thread, so that the memory actor, which every
chat waits on, only stores and imprints. A helper, not an actor."""

from __future__ import annotations

from dataclasses import replace

import trio

from mem8.actors.messages import Percept
from mem8.encoders.base import Encoder


async def encoded(encoder: Encoder, percepts: list[Percept]) -> list[Percept]:
    """The percepts that hold text, a long one cut into passages, each with its encoder
    vector (little-endian float32 bytes), computed on a worker thread."""
    held = [passage for percept in percepts for passage in percept.passages()]
    if not held:
        return []
    vectors = await trio.to_thread.run_sync(encoder.embed_batch, [p.text for p in held])
    return [
        replace(percept, vector=vector.astype("<f4").tobytes())
        for percept, vector in zip(held, vectors, strict=True)
    ]
