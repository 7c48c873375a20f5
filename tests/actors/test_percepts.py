"""Encoder calls from actors: a few at once, on threads of their own, texts in order; a
query's vector."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import trio

from mem8 import passages
from mem8.actors.messages import Percept
from mem8.actors.percepts import ENCODED_AT_ONCE, ENCODER_CALLS, encoded, query_vector, vectors_of
from mem8.encoders import open_encoder
from mem8.encoders.hashed import LexicalEncoder
from mem8.encoders.pooled import PooledTransformer

CALLERS = 45  # more than trio's 40 default threads


class GatedEncoder(LexicalEncoder):
    """The lexical encoder, each call held until the gate opens; it counts calls at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.running = self.most_running = 0
        self.calls: list[int] = []  # texts per call

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.calls.append(len(texts))
        self.gate.wait(10)
        with self.lock:
            self.running -= 1
        return super().embed_batch(texts)


def test_many_callers_share_a_few_encoder_calls_and_leave_other_threads_free() -> None:
    encoder = GatedEncoder()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for number in range(CALLERS):
                nursery.start_soon(vectors_of, encoder, [f"text {number}"])
            await trio.sleep(0.2)
            # a store write, on trio's default threads, is not queued behind the encodings
            with trio.fail_after(5):
                assert await trio.to_thread.run_sync(lambda: "written") == "written"
            assert encoder.running == ENCODER_CALLS
            encoder.gate.set()

    trio.run(main)
    assert encoder.most_running == ENCODER_CALLS and len(encoder.calls) == CALLERS


def test_texts_are_encoded_a_batch_at_a_time_and_come_back_in_order() -> None:
    encoder = GatedEncoder()
    encoder.gate.set()
    texts = [f"passage {i} about pumps" for i in range(2 * ENCODED_AT_ONCE + 5)]
    vectors = trio.run(vectors_of, encoder, texts)
    assert encoder.calls == [ENCODED_AT_ONCE, ENCODED_AT_ONCE, 5]
    assert np.array_equal(vectors, LexicalEncoder().embed_batch(texts))
    assert trio.run(vectors_of, encoder, []).shape == (0, encoder.dimensions)


def test_a_cancelled_caller_does_not_wait_for_the_call_in_progress() -> None:
    encoder = GatedEncoder()  # its gate stays shut: the call would take 10 s

    async def main() -> None:
        with trio.move_on_after(0.2) as waited:
            await vectors_of(encoder, ["held"])
        assert waited.cancelled_caught

    began = time.monotonic()
    try:
        trio.run(main)
        assert time.monotonic() - began < 5
    finally:
        encoder.gate.set()


def test_a_short_query_is_its_own_vector_and_a_long_one_its_passages_mean() -> None:
    encoder = LexicalEncoder()
    short = "  How is pump 7 doing?  "
    assert np.array_equal(trio.run(query_vector, encoder, short), encoder.embed(short))
    long = " ".join(f"Pump {i} logged {i % 13} bar at the {i}th station." for i in range(60))
    pieces = passages.passages(long)
    assert len(pieces) > 2
    weights = np.array([len(piece) for piece in pieces], np.float64)
    mean = weights @ encoder.embed_batch(pieces).astype(np.float64)
    expected = mean / np.linalg.norm(mean)
    np.testing.assert_allclose(trio.run(query_vector, encoder, long), expected, atol=1e-6)


def test_a_long_querys_passages_are_read_once_with_its_memories() -> None:
    """The persona encodes the query, then the same text's passages as its memories: a caching
    encoder reads them once."""
    encoder = open_encoder("minilm")
    assert isinstance(encoder, PooledTransformer)
    long = " ".join(
        f"Reservoir {i} rose by {i % 7} cm overnight, the gauges say." for i in range(40)
    )
    said = Percept(long, "chat:r:user", "text", 0.0)
    misses = encoder.cache.misses
    trio.run(query_vector, encoder, long)
    read = encoder.cache.misses - misses
    trio.run(encoded, encoder, [said])
    assert read == len(passages.passages(long)) and encoder.cache.misses - misses == read
