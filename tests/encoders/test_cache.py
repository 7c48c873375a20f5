"""The vector cache: a text encoded lately is not encoded again, and its vector is the same."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mem8.encoders import open_encoder
from mem8.encoders.cache import VectorCache
from mem8.encoders.pooled import PooledTransformer

DIMENSIONS = 4


class Counting:
    """A deterministic encode function that records every text it was given."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.encoded.extend(texts)
        return np.array([[len(t), t.count("a"), hash(t) % 97, 1.0] for t in texts], np.float32)


def test_a_text_is_encoded_once_while_it_stays_in_the_cache() -> None:
    cache, encode = VectorCache(DIMENSIONS, entries=8, most_chars=100), Counting()
    first = cache.embed(["a cat", "a dog", "a cat"], encode)
    again = cache.embed(["a dog", "a bird"], encode)
    assert encode.encoded == ["a cat", "a dog", "a bird"]
    assert np.array_equal(again[0], first[1]) and first.shape == (3, DIMENSIONS)
    assert np.array_equal(first[0], first[2])
    assert (cache.hits, cache.misses) == (1, 3)


def test_the_least_recently_used_text_goes_first_and_long_texts_are_never_kept() -> None:
    cache, encode = VectorCache(DIMENSIONS, entries=2, most_chars=10), Counting()
    cache.embed(["one", "two"], encode)
    cache.embed(["one"], encode)  # "two" is now the oldest
    cache.embed(["three", "a text longer than ten"], encode)
    cache.embed(["one", "two", "three", "a text longer than ten"], encode)
    assert encode.encoded == [
        "one",
        "two",
        "three",
        "a text longer than ten",
        "two",
        "a text longer than ten",
    ]


def test_no_texts_give_no_rows() -> None:
    cache, encode = VectorCache(DIMENSIONS, entries=2, most_chars=10), Counting()
    assert cache.embed([], encode).shape == (0, DIMENSIONS)
    assert encode.encoded == []


def test_a_cached_vector_is_the_encoders_own_bit_for_bit() -> None:
    """What makes the cache safe for replay: a pooled encoder's vector depends on its text
    alone, so the cached row equals a fresh one whatever batch either came from."""
    encoder = open_encoder("minilm")
    assert isinstance(encoder, PooledTransformer)
    texts = ["The pump station logged 3 bar.", "A much longer reply about pumps, " * 6, "ok"]
    encoder.embed_batch(texts[:2])
    hits = encoder.cache.hits
    cached = encoder.embed_batch(list(reversed(texts)))
    assert encoder.cache.hits == hits + 2
    fresh = np.concatenate([encoder.encode_fresh([text]) for text in reversed(texts)])
    assert np.array_equal(cached, fresh)
