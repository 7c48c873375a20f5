"""A lexical encoder: feature-hashed words and word pairs, sublinear counts, unit length.

Deterministic (stable hashes, no model), so memories are placed by the words they share; the
semantic encoder of issue 4 replaces it behind the same `Encoder` contract."""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from mem8.encoders.base import Encoder

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*", re.UNICODE)
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    i'm it's that's don't i've i'd i'll you're""".split()  # noqa: SIM905 - reads better as text
)


def words(text: str) -> list[str]:
    """Lower-cased words without stopwords (apostrophes kept inside words)."""
    return [w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in STOPWORDS]


class LexicalEncoder(Encoder):
    name: ClassVar[str] = "lexical-hash"

    def __init__(self, dimensions: int = 256) -> None:
        self.dimensions = dimensions

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            self._fill(row, text)
        return rows

    def _fill(self, row: npt.NDArray[np.float32], text: str) -> None:
        tokens = words(text)
        features = Counter(tokens)
        features.update(f"{a} {b}" for a, b in itertools.pairwise(tokens))
        for feature, count in features.items():
            digest = zlib.crc32(feature.encode())
            sign = 1.0 if digest & 1 else -1.0
            weight = (1.0 + math.log(count)) * (0.5 if " " in feature else 1.0)
            row[(digest >> 1) % self.dimensions] += sign * weight
        norm = float(np.linalg.norm(row))
        if norm > 0:
            row /= norm
