"""A memory: one imprinted wave packet and everything needed to recall, weigh and forget it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mem8.scope import Scope

Modality = Literal["text", "audio", "document", "image"]
MODALITIES: tuple[Modality, ...] = ("text", "audio", "document", "image")
NEVER = math.inf  # the decay constant of a consolidated memory


@dataclass(frozen=True, slots=True)
class Emotion:
    """Valence in [-1, 1] (unpleasant .. pleasant); arousal and dominance in [0, 1]."""

    valence: float = 0.0
    arousal: float = 0.0
    dominance: float = 0.5


@dataclass(slots=True)
class Memory:
    id: str
    text: str
    source: str  # where it came from, e.g. "chat:<request id>:user" or "file:<id>:page:3"
    modality: Modality
    scope: Scope
    created: float  # seconds since the epoch, from the system's clock
    emotion: Emotion
    importance: float  # in [0, 1]
    band: int  # frequency band: which kind of content (see mem8.grid.placement)
    phase: float  # radians; percepts bound within +-2 s share it
    tau: float  # decay time constant in seconds; NEVER once consolidated
    x: float  # centre on the grid, in cells
    y: float
    amplitude: float
    vector: npt.NDArray[np.float32] = field(repr=False)  # the encoder's unit vector
    recalls: int = 0
    last_recalled: float = 0.0
    # The turn this one followed in its scope's stream (bound in time): its words are matched
    # with this memory's, and recall spreads along the chain.
    context: str = ""
    follows: str = ""  # that turn's memory id
    # The later memory of the same scope that replaced what this one says ("" while current):
    # kept, but recalled after it and shown as outdated (mem8.supersession).
    superseded_by: str = ""


def memory_to_wire(memory: Memory) -> dict[str, Any]:
    """A msgpack-ready map; the vector travels as little-endian float32 bytes."""
    return {
        "id": memory.id,
        "text": memory.text,
        "source": memory.source,
        "modality": memory.modality,
        "tenant": memory.scope.tenant,
        "user": memory.scope.user,
        "persona": memory.scope.persona,
        "created": memory.created,
        "emotion": [memory.emotion.valence, memory.emotion.arousal, memory.emotion.dominance],
        "importance": memory.importance,
        "band": memory.band,
        "phase": memory.phase,
        "tau": memory.tau,
        "x": memory.x,
        "y": memory.y,
        "amplitude": memory.amplitude,
        "vector": memory.vector.astype("<f4").tobytes(),
        "recalls": memory.recalls,
        "last_recalled": memory.last_recalled,
        "context": memory.context,
        "follows": memory.follows,
        "superseded_by": memory.superseded_by,
    }
