"""Personas: the model ids a client can ask for, each with Big Five traits and an LLM."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

BelowThreshold = Literal["respond", "subconscious"]
TRAIT_NAMES = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
NEUTRAL_TRAIT = 0.5

# The reply's length when the client sets no max_tokens: a few paragraphs, not the context's end.
DEFAULT_REPLY_TOKENS = 512

# 2023-11-14T22:13:20Z: a fixed creation time, so /v1/models is the same on every start.
BUILTIN_CREATED = 1_700_000_000


@dataclass(frozen=True)
class Traits:
    """The Big Five, each in [0, 1]; traits the spec leaves unstated are neutral (0.5)."""

    openness: float = NEUTRAL_TRAIT
    conscientiousness: float = NEUTRAL_TRAIT
    extraversion: float = NEUTRAL_TRAIT
    agreeableness: float = NEUTRAL_TRAIT
    neuroticism: float = NEUTRAL_TRAIT


@dataclass(frozen=True)
class Persona:
    id: str
    name: str
    traits: Traits
    model: str
    temperature: float
    system_prompt: str
    interest_threshold: float = 0.7
    below_threshold: BelowThreshold = "respond"
    max_tokens: int = DEFAULT_REPLY_TOKENS  # the reply's cap when the client sets none
    context: int | None = None  # tokens of the backend's context; None: what the backend says
    created: int = BUILTIN_CREATED

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Persona:
        """The persona a journal's header recorded; keys since retired (`extra`) are ignored."""
        known = {f.name for f in fields(cls)}
        kept = {key: value for key, value in wire.items() if key in known}
        return cls(**{**kept, "traits": Traits(**wire["traits"])})


def builtin_personas() -> dict[str, Persona]:
    """The three personas of the spec, with exactly its traits, models and temperatures."""
    personas = [
        Persona(
            id="mem8-creative-v1",
            name="Creative Writer",
            traits=Traits(openness=0.9, conscientiousness=0.7, extraversion=0.6),
            model="llama2:latest",
            temperature=0.9,
            system_prompt=(
                "You are the Creative Writer, a persona with high openness and creativity. "
                "You excel at creative writing, storytelling and imaginative responses."
            ),
        ),
        Persona(
            id="mem8-technical-v1",
            name="Technical Analyst",
            traits=Traits(conscientiousness=0.9, openness=0.7, extraversion=0.4),
            model="codellama:latest",
            temperature=0.3,
            system_prompt=(
                "You are the Technical Analyst, a persona of high precision and analytical "
                "thinking. You give exact technical explanations, analyse code and solve problems."
            ),
        ),
        Persona(
            id="mem8-counselor-v1",
            name="Empathetic Counselor",
            traits=Traits(agreeableness=0.95, openness=0.8, conscientiousness=0.8),
            model="llama2:latest",
            temperature=0.7,
            system_prompt=(
                "You are the Empathetic Counselor, a persona of high agreeableness and emotional "
                "intelligence. You offer emotional support, advice and understanding."
            ),
        ),
    ]
    return {p.id: p for p in personas}
