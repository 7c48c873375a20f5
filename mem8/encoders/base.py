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
    # Whether near vectors mean near meanings and tokens are counted: what /v1/embeddings needs.
    semantic: ClassVar[bool] = False
    dimensions: int

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text, each of unit length (a zero row for a text with no features)."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in the model's tokens; a semantic encoder's capability."""
        raise NotImplementedError(f"{self.name} does not count tokens")

    def embed(self, text: str) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.embed_batch([text])[0]
        return row
