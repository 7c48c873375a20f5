"""Time as an object: the wall clock when serving, a virtual clock in simulations and replay."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class WallClock:
    def now(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that moves only when told to; never backwards."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, when: float) -> None:
        self._now = max(self._now, when)
