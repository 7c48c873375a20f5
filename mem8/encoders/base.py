"""The encoder contract: texts in, unit vectors out. Placement and recall build on it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt


class Encoder(ABC):
    """Turns texts into L2-normalised float32 vectors of `dimensions` entries."""

    name: ClassVar[str]
    dimensions: int

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text, each of unit length (a zero row for a text with no features)."""

    def embed(self, text: str) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.embed_batch([text])[0]
        return row
