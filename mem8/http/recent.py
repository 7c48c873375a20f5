"""The last chats the server answered, as the persona judged them: a small ring the dashboard
shows (interest, whether it was remembered, the emotion felt in the message)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

KEPT = 200  # chats: enough for a screenful and a chart, bounded however long the server runs


@dataclass(frozen=True, slots=True)
class Judged:
    """One chat as its persona's first reply (Accepted) described it."""

    at: float  # when it arrived, seconds since the epoch
    tenant: str
    persona: str
    interest: float
    remembered: bool  # interest above the persona's threshold: the exchange is imprinted
    valence: float
    arousal: float
    dominance: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class RecentChats:
    def __init__(self, kept: int = KEPT) -> None:
        self._chats: deque[Judged] = deque(maxlen=kept)

    def add(self, chat: Judged) -> None:
        self._chats.append(chat)

    def newest_first(self) -> list[Judged]:
        return list(reversed(self._chats))
