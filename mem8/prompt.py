"""The persona's system prompt: who it is, the tone to take, and what it remembers."""

from __future__ import annotations

from dataclasses import dataclass

_UNITS = (
    (365 * 86_400, "year"),
    (30 * 86_400, "month"),
    (7 * 86_400, "week"),
    (86_400, "day"),
    (3_600, "hour"),
    (60, "minute"),
)
MEMORY_HEADER = (
    "What you remember from earlier conversations with this person, most relevant first; "
    "use it when it helps:"
)
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Recollection:
    """A recalled memory as a prompt shows it."""

    id: str
    text: str  # the memory, or its most relevant passage (excerpt)
    created: float
    emotion: tuple[float, float, float]  # valence, arousal, dominance
    source: str  # where it came from: "chat:<request>:user", "audio:...", "file:..."
    excerpt: bool = False  # text is a passage of a longer memory
    superseded: bool = False  # a later memory of the same scope replaced what this one says


def persona_prompt(persona_prompt: str, tone: str) -> str:
    return "\n\n".join(part for part in (persona_prompt, tone) if part)


def memory_line(recollection: Recollection, now: float) -> str:
    """One line of the memory block: when, who, how it felt, what."""
    mood = feeling(*recollection.emotion)
    if recollection.superseded:
        mood += "; outdated, superseded by a later memory"
    text = f"{ELLIPSIS}{recollection.text}{ELLIPSIS}" if recollection.excerpt else recollection.text
    return f"- {age(now - recollection.created)}, {speaker(recollection.source)} ({mood}): {text}"


def with_memories(system: str, lines: list[str]) -> str:
    """The system prompt followed by the memory block (nothing when no line is shown)."""
    if not lines:
        return system
    block = MEMORY_HEADER + "\n" + "\n".join(lines)
    return f"{system}\n\n{block}" if system else block


def speaker(source: str) -> str:
    """Who said or showed it, from the persona's point of view."""
    kind, _, rest = source.partition(":")
    if kind == "chat":
        return "you said" if rest.endswith(":assistant") else "they said"
    if kind == "audio":
        return "you heard"
    if kind == "file":
        return "you read"
    return "you noted"


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
