"""The recall sketch: its estimate tracks the cosine."""

from __future__ import annotations

import numpy as np
import pytest

from mem8.grid import shortlist, sketch
from tests.support.vectors import DIMENSIONS, unit_rows


def test_the_estimate_tracks_the_cosine() -> None:
    axes = sketch.projection(DIMENSIONS)
    query = unit_rows(1, 5)[0]
    mix = np.linspace(-1.0, 1.0, 2000, dtype=np.float32)[:, None]  # cosines from -1 to 1
    rows = mix * query + (1 - np.abs(mix)) * unit_rows(2000, 6)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    ones, zeros = np.ones(len(rows), np.float32), np.zeros(len(rows), np.float32)
    estimate, _ = shortlist.shortlist(
        sketch.sketch(query, axes)[0], sketch.sketch(rows, axes), ones, zeros, 1.0, len(rows)
    )
    cosine = rows @ query
    assert estimate[-1] == pytest.approx(1.0) and estimate[0] == pytest.approx(-1.0)
    assert float(np.corrcoef(estimate, cosine)[0, 1]) > 0.95
    assert float(np.abs(estimate - cosine).mean()) < 0.1  # 256 bits: a few hundredths
