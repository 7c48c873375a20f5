"""Percepts made ready for the memory actor by whoever sends them (a sense, a persona): cut
into passages and encoded here, on a worker thread, so that the memory actor, which every
chat waits on, only stores and imprints. A helper, not an actor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import trio

from mem8 import passages
from mem8.actors.messages import Percept
from mem8.encoders.base import Encoder

# Texts per worker-thread call. A cancelled caller (a stopping server, a dropped request) does not
# wait for its call to end, and no later call starts: a 500,000-character message's passages
# held SIGTERM for minutes when they were one call.
ENCODED_AT_ONCE = 32
# Encoder calls running at once, apart from trio's default threads: 200 streams' encodings
# held all 40 of those, so the memory actor's store writes queued behind them. A few at once
# still share the CPU, so a short query is not stuck behind a long document's passages.
ENCODER_CALLS = 8
_calls: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("encoder_calls")


def encoder_calls() -> trio.CapacityLimiter:
    """This trio run's limit on encoder calls at once (every encoder shares it: they share
    the CPU)."""
    try:
        return _calls.get()
    except LookupError:
        _calls.set(limiter := trio.CapacityLimiter(ENCODER_CALLS))
        return limiter


async def vectors_of(encoder: Encoder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The texts' encoder vectors, computed on worker threads a few texts at a time, never
    making a cancelled caller wait (an abandoned call finishes on its own and is dropped)."""
    parts = [np.zeros((0, encoder.dimensions), np.float32)]
    for start in range(0, len(texts), ENCODED_AT_ONCE):
        chosen = list(texts[start : start + ENCODED_AT_ONCE])
        parts.append(
            await trio.to_thread.run_sync(
                encoder.embed_batch, chosen, abandon_on_cancel=True, limiter=encoder_calls()
            )
        )
    return np.concatenate(parts)


async def encoded(encoder: Encoder, percepts: list[Percept]) -> list[Percept]:
    """The percepts that hold text, a long one cut into passages, each with its encoder
    vector (little-endian float32 bytes), computed on a worker thread."""
    held = [passage for percept in percepts for passage in percept.passages()]
    if not held:
        return []
    vectors = await vectors_of(encoder, [p.text for p in held])
    return [
        replace(percept, vector=vector.astype("<f4").tobytes())
        for percept, vector in zip(held, vectors, strict=True)
    ]


async def query_vector(encoder: Encoder, text: str) -> npt.NDArray[np.float32]:
    """A chat's query vector: a short text's own; a long one's the mean of its passages' vectors
    weighted by their length, unit length. The passages are what the message leaves as its
    memories, so with a caching encoder the text is read once rather than whole and then again
    as passages (a 500,000-character message took 671 s with MPNet here that way)."""
    pieces = passages.passages(text)
    if len(text) <= passages.PASSAGE_CHARS or len(pieces) < 2:
        vector: npt.NDArray[np.float32] = (await vectors_of(encoder, [text]))[0]
        return vector
    vectors = (await vectors_of(encoder, pieces)).astype(np.float64)
    weights = np.array([len(piece) for piece in pieces], np.float64)
    mean = weights @ vectors
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
