"""The persona's system prompt: who it is, the tone to take, and what it remembers."""

from __future__ import annotations

from typing import Any

_UNITS = (
    (365 * 86_400, "year"),
    (30 * 86_400, "month"),
    (7 * 86_400, "week"),
    (86_400, "day"),
    (3_600, "hour"),
    (60, "minute"),
)


def memory_prompt(
    persona_prompt: str, tone: str, recalled: list[dict[str, Any]], now: float
) -> str:
    parts = [persona_prompt]
    if tone:
        parts.append(tone)
    if recalled:
        lines = [
            f"- ({age(now - r['created'])}, {feeling(*r['emotion'])}) {r['text']}" for r in recalled
        ]
        parts.append(
            "What you remember from earlier conversations with this person, most "
            "relevant first; use it when it helps:\n" + "\n".join(lines)
        )
    return "\n\n".join(parts)


def age(seconds: float) -> str:
    for size, unit in _UNITS:
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def feeling(valence: float, arousal: float, dominance: float) -> str:
    """A few words for an emotion: pleasant/unpleasant/neutral, and intense when aroused."""
    tone = "pleasant" if valence > 0.2 else "unpleasant" if valence < -0.2 else "neutral"
    return f"{'intense, ' if arousal > 0.6 else ''}{tone}"
