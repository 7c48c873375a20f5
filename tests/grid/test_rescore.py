"""The exact rescoring is the recall weight times the mixed resonance and the field's gain."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mem8.grid import rescore
from mem8.grid.dynamics import recall_weights
from tests.support.vectors import unit_rows


@pytest.mark.parametrize("exponent", [1.0, 0.5, 0.0])
def test_rescoring_is_the_recall_weight_times_the_mixed_resonance_and_the_gain(
    exponent: float,
) -> None:
    rows = unit_rows(50, 7)
    query = unit_rows(1, 8)[0]
    created = np.linspace(0.0, 1e6, 50)
    tau = np.where(np.arange(50) % 5 == 0, math.inf, 3e5)
    amplitude = np.linspace(0.5, 1.6, 50).astype(np.float32)
    recalls = (np.arange(50) % 4).astype(np.int32)
    standing = np.where(np.arange(50) % 3 == 0, 0.5, 1.0).astype(np.float32)
    cells = np.stack([np.arange(50) % 4 + 10, np.arange(50) // 4 + 20], axis=1).astype(np.float64)
    field = (np.arange(4 * 13).reshape(4, 13) * (0.1 + 0.2j)).astype(np.complex64)
    words = np.linspace(0.0, 1.0, 20).astype(np.float32)
    positions = np.arange(5, 45, 2, dtype=np.intp)
    activation = rescore.Activation(field, (10, 20), 0.2)
    memories = (
        *(query, rows, positions, created, tau, amplitude, recalls, standing),
        *(words, 0.25, exponent, 2e6, cells),
    )
    scores = rescore.rescore(*memories, activation)
    weights = recall_weights(
        2e6,
        created[positions],
        tau[positions],
        amplitude[positions],
        recalls[positions],
        standing[positions],
        exponent,
    )
    at = cells[positions].astype(np.intp)
    level = np.abs(field[at[:, 0] - 10, at[:, 1] - 20])
    gains = 1.0 + 0.2 * level / (1.0 + level)
    expected = (0.25 * (rows[positions] @ query) + 0.75 * words) * weights * gains
    assert np.allclose(scores, expected, atol=1e-5)
    quiet = rescore.rescore(*memories, rescore.QUIET)
    assert np.allclose(quiet, expected / gains, atol=1e-5)
