"""Unit vectors for the grid's tests: seeded, DIMENSIONS wide."""

from __future__ import annotations

import numpy as np

DIMENSIONS = 64


def unit_rows(count: int, seed: int) -> np.ndarray:  # type: ignore[type-arg]
    rows = np.random.default_rng(seed).standard_normal((count, DIMENSIONS)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows
