"""Where a memory lives on the grid: its centre, frequency band and phase, from its content."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BANDS = ("conversational", "technical", "abstract", "sensory")
SEED = 0x3E8  # the projection axes are fixed: the same vector lands on the same cell forever
_TECHNICAL = re.compile(r"[{}()\[\];=<>_/\\]|\b\d+(\.\d+)?\b|\b[a-z]+[A-Z]\w*\b|::|->")
_ABSTRACT_SUFFIX = re.compile(r"\w{4,}(?:ness|ity|ism|tion|ence|ance|ment|ship)\b", re.I)


@dataclass(frozen=True, slots=True)
class Placement:
    x: float  # column, in cells
    y: float  # row, in cells
    band: int
    phase: float


class Placer:
    """Projects unit vectors onto fixed random axes: similar vectors get nearby centres."""

    def __init__(self, dimensions: int, grid_size: int) -> None:
        axes = np.random.default_rng(SEED).standard_normal((3, dimensions))
        self._axes = (axes / np.linalg.norm(axes, axis=1, keepdims=True)).astype(np.float64)
        self._scale = math.sqrt(dimensions)  # a unit vector's projection has std 1/sqrt(D)
        self.grid_size = grid_size

    def place(self, vector: npt.NDArray[np.float32], text: str, modality: str) -> Placement:
        spread = self._axes @ vector.astype(np.float64) * self._scale
        x, y, turn = (_normal_cdf(float(v)) for v in spread)
        edge = self.grid_size - 1
        return Placement(
            x=min(x * self.grid_size, edge),
            y=min(y * self.grid_size, edge),
            band=band_of(text, modality),
            phase=turn * 2 * math.pi,
        )

    def packet_sigma(self) -> float:
        """Width of a memory's wave packet in cells: 2 cells on a 256 grid, scaled with it."""
        return 2.0 * self.grid_size / 256


def band_of(text: str, modality: str) -> int:
    """Sensory for audio and images; technical for code and numbers; abstract for concepts."""
    if modality in ("audio", "image"):
        return BANDS.index("sensory")
    words = max(1, len(text.split()))
    if len(_TECHNICAL.findall(text)) / words > 0.15:
        return BANDS.index("technical")
    if len(_ABSTRACT_SUFFIX.findall(text)) / words > 0.08:
        return BANDS.index("abstract")
    return BANDS.index("conversational")


def wavenumber(band: int) -> float:
    """Each band oscillates at its own spatial frequency, so bands barely interfere."""
    return 0.5 + 0.5 * band


def _normal_cdf(value: float) -> float:
    return 0.5 * (1.0 + math.erf(value / math.sqrt(2.0)))
