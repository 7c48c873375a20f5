"""Recently encoded texts' vectors, kept so that a text is encoded once.

A chat's query is encoded before recall, then its user message (the same text) again as the
memory it leaves: with a semantic encoder at tens of milliseconds a text, that second pass was a
third of a memory-writing chat's encoding. A pooled encoder's vector is a function of its text
alone (what else is in a batch changes nothing), so a cached vector is the vector, bit for bit,
and replay is unchanged."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class VectorCache:
    """The last `entries` texts of at most `most_chars` characters and their vectors; safe to use
    from several worker threads at once."""

    def __init__(self, dimensions: int, entries: int, most_chars: int) -> None:
        self.dimensions = dimensions
        self.entries = entries
        self.most_chars = most_chars  # longer texts are rare repeats and would crowd the rest out
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def embed(self, texts: Sequence[str], encode: Callable[[list[str]], Vectors]) -> Vectors:
        """The texts' vectors: cached ones as they are, the rest from one `encode` call."""
        found = self._found(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            made = encode(missing)
            found.update(zip(missing, made, strict=True))
            self._keep(missing, made)
        rows = [found[text] for text in texts]
        return np.array(rows, np.float32).reshape(len(texts), self.dimensions)

    def _found(self, texts: Sequence[str]) -> dict[str, Vectors]:
        found = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.get(text)
                if vector is not None:
                    self._vectors.move_to_end(text)
                    found[text] = vector
            self.hits += len(found)
            self.misses += len(set(texts)) - len(found)
        return found

    def _keep(self, texts: list[str], vectors: Vectors) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                if len(text) <= self.most_chars:
                    self._vectors[text] = vector.copy()  # not a view that keeps the batch alive
            while len(self._vectors) > self.entries:
                self._vectors.popitem(last=False)
