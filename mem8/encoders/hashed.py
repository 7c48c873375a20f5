"""A lexical encoder: feature-hashed words and word pairs, sublinear counts, unit length.

Deterministic (stable hashes, no model), so memories are placed by the words they share; the
semantic encoder of issue 4 replaces it behind the same `Encoder` contract."""

from __future__ import annotations

import itertools
import math
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from mem8.encoders.base import Encoder
from mem8.text import words


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
