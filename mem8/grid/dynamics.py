"""How memories live and fade (decay constants, retention, reinforcement, consolidation) and
how the field's waves move."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

DAY = 86_400.0
BASE_TAU = 7 * DAY  # a plain memory's decay time constant
RETENTION_FLOOR = 0.9  # consolidation: an old memory keeps 90% of its weight (a good match
# from a year ago must still come back: measured on LoCoMo, a lower floor buries it)
NOISE_FLOOR = 0.05  # below this strength a wave is not stored
CONSOLIDATE_AFTER = 5  # recalls after which a memory never decays
REINFORCE_TAU = 1.5  # each recall stretches the decay constant (spacing effect)
# A superseded memory's share of its weight: a later memory replaced what it says, so it is
# recalled after that one, yet still found (mem8.supersession).
SUPERSEDED_WEIGHT = 0.5

# The field's waves: a damped leapfrog step once per tick of the grid's clock, then fading.
C2DT2 = 0.2  # wave speed^2 * dt^2 / dx^2 (stable below kernels.MAX_C2DT2, 0.5)
GAMMA_DT = 0.1  # damping per step
FIELD_DECAY = 0.98  # the field's own fading per step
ACTIVATION_GAIN = 0.2  # how much a memory's excited neighbourhood adds to its resonance
EXCITATION = 0.5  # amplitude of the packet a recall sends through a memory's neighbourhood


def decay_constant(valence: float, arousal: float, importance: float) -> float:
    """tau grows with emotional significance and relevance: strong feelings are kept longer."""
    significance = 1.0 + 2.0 * abs(valence) + 2.0 * arousal
    return BASE_TAU * significance * (0.5 + importance)


def strong_enough(amplitude: float, importance: float) -> bool:
    return amplitude * importance >= NOISE_FLOOR


def reinforced_tau(tau: float, recalls: int) -> float:
    """The decay constant after one more recall; infinite (consolidated) after a few."""
    if recalls >= CONSOLIDATE_AFTER or math.isinf(tau):
        return math.inf
    return tau * REINFORCE_TAU


def standing(superseded_by: list[str]) -> npt.NDArray[np.float32]:
    """Each memory's standing: 1 while current, SUPERSEDED_WEIGHT once superseded."""
    return np.array([SUPERSEDED_WEIGHT if s else 1.0 for s in superseded_by], np.float32)


@njit(cache=True, inline="always")
def fading_at(now: float, created: float, tau: float) -> float:
    """How much of a memory's wave is left: exp(-age / tau), 1 for a consolidated one."""
    return 1.0 if math.isinf(tau) else math.exp(-max(now - created, 0.0) / tau)


@njit(cache=True, inline="always")
def recall_weight(
    now: float,
    created: float,
    tau: float,
    amplitude: float,
    recalls: int,
    standing: float,
    exponent: float,
) -> float:
    """A memory's weight in recall: its salience (retention, never below RETENTION_FLOOR, x
    emotional amplitude x use) to the power `exponent` (mem8.grid.index.WEIGHT_EXPONENT), x its
    standing (1, or SUPERSEDED_WEIGHT once superseded, whatever the exponent: a superseded
    memory ranks below its superseder). Decay lowers a memory's weight; it never makes a good
    match unfindable. The one definition: the shortlist's weights and the exact rescoring
    (mem8.grid.rescore) both compute it here."""
    retention = RETENTION_FLOOR + (1.0 - RETENTION_FLOOR) * fading_at(now, created, tau)
    salience = retention * math.sqrt(amplitude) * (1.0 + 0.1 * math.log1p(recalls))
    weight: float = salience**exponent * standing
    return weight


@njit(cache=True)
def _fading(now: Any, created: Any, tau: Any, out: Any) -> None:
    for i in range(created.shape[0]):
        out[i] = fading_at(now, created[i], tau[i])


@njit(cache=True)
def _recall_weights(
    now: Any,
    created: Any,
    tau: Any,
    amplitude: Any,
    recalls: Any,
    standing: Any,
    exponent: Any,
    out: Any,
) -> None:
    for i in range(created.shape[0]):
        out[i] = recall_weight(
            now, created[i], tau[i], amplitude[i], recalls[i], standing[i], exponent
        )


def fading(
    now: float, created: npt.NDArray[np.float64], tau: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """fading_at of each memory."""
    left: npt.NDArray[np.float64] = np.empty(len(created), np.float64)
    _fading(float(now), created, tau, left)
    return left


def recall_weights(
    now: float,
    created: npt.NDArray[np.float64],
    tau: npt.NDArray[np.float64],
    amplitude: npt.NDArray[np.float32],
    recalls: npt.NDArray[np.int32],
    standing: npt.NDArray[np.float32],
    exponent: float = 1.0,
) -> npt.NDArray[np.float32]:
    """recall_weight of each memory, as float32."""
    weights: npt.NDArray[np.float32] = np.empty(len(created), np.float32)
    _recall_weights(
        float(now), created, tau, amplitude, recalls, standing, float(exponent), weights
    )
    return weights
