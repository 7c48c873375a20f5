"""Every conversation's rolling window (its last messages), bounded: by messages per
conversation, by conversations, by characters in all, and by idle time. What goes first is the
least recently answered conversation, and time is the requests' own arrival, so the same
requests in the same order (a replay) leave the same windows."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mem8.actors.messages import Turn

MESSAGES = 10  # messages kept per conversation (the spec's rolling context window)


@dataclass(frozen=True)
class WindowLimits:
    conversations: int = 10_000
    chars: int = 16_000_000
    idle_seconds: float = 7 * 86400.0


class Windows:
    def __init__(self, limits: WindowLimits) -> None:
        self.limits = limits
        self._turns: dict[str, deque[Turn]] = {}  # least recently answered first
        self._used: dict[str, float | None] = {}  # None: restored without a time (stamped next)
        self._chars = 0
        self._unstamped = 0  # windows restored without a time

    def get(self, conversation: str) -> list[Turn]:
        return list(self._turns.get(conversation, ()))

    def extend(self, conversation: str, turns: Iterable[Turn], now: float) -> None:
        """Adds an answered exchange; then drops what is over the limits, oldest first."""
        window = self._take(conversation) or deque(maxlen=MESSAGES)
        window.extend(turns)
        self._put(conversation, window, now)
        self._stamp(now)
        self._expire(now)

    def _take(self, conversation: str) -> deque[Turn] | None:
        window = self._turns.pop(conversation, None)
        self._unstamped -= window is not None and self._used.pop(conversation) is None
        self._chars -= _chars(window or ())
        return window

    def _put(self, conversation: str, window: deque[Turn], used: float | None) -> None:
        self._turns[conversation] = window
        self._used[conversation] = used
        self._chars += _chars(window)
        self._unstamped += used is None

    def _stamp(self, now: float) -> None:
        """Windows restored from a state saved before they had times count as used now."""
        if self._unstamped:
            self._used = {key: now if used is None else used for key, used in self._used.items()}
            self._unstamped = 0

    def _expire(self, now: float) -> None:
        limits = self.limits
        while self._turns:
            oldest = next(iter(self._turns))
            used = self._used[oldest]
            idle = used is not None and used < now - limits.idle_seconds
            within = len(self._turns) <= limits.conversations and self._chars <= limits.chars
            if within and not idle:
                return
            self._take(oldest)

    def __len__(self) -> int:
        return len(self._turns)

    @property
    def chars(self) -> int:
        return self._chars

    def contents(self) -> dict[str, list[dict[str, Any]]]:
        """The windows' messages by conversation, sorted: what the state hash covers."""
        return {key: [t.to_map() for t in turns] for key, turns in sorted(self._turns.items())}

    def order(self) -> list[list[Any]]:
        """[conversation, last answered] from the least recently answered: what a snapshot
        adds so that a restored actor drops the same windows next."""
        return [[key, used] for key, used in self._used.items()]

    @classmethod
    def restored(
        cls, limits: WindowLimits, contents: dict[str, Any], order: list[list[Any]] | None
    ) -> Windows:
        windows = cls(limits)
        known = [key for key, _ in order or [] if key in contents]
        used = {key: time for key, time in order or []}
        for key in [*(k for k in contents if k not in used), *known]:
            turns = (Turn.from_map(turn) for turn in contents[key])
            windows._put(key, deque(turns, maxlen=MESSAGES), used.get(key))
        return windows


def _chars(turns: Iterable[Turn]) -> int:
    return sum(len(turn.content) for turn in turns)
