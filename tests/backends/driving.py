"""Driving a backend from a test: run a generation to its end, or into a list as it comes."""

from __future__ import annotations

from typing import Any

import trio

from mem8.backends.base import ChatMessage, Generated, GenerationRequest, LLMBackend, TextDelta
from tests.backends.wire_servers import Script

SLOW = Script(tokens=tuple(f" t{i}" for i in range(100)), token_delay=0.02)


def chat(model: str, *, temperature: float = 0.7, **options: Any) -> GenerationRequest:
    messages = (ChatMessage("system", "You are Ada."), ChatMessage("user", "Hello?"))
    return GenerationRequest(model, messages, temperature, **options)


def generate_all(backend: LLMBackend, request: GenerationRequest) -> list[Generated]:
    async def collect() -> list[Generated]:
        return [item async for item in backend.generate(request)]

    return trio.run(collect)


def text_of(items: list[Generated]) -> str:
    return "".join(item.text for item in items if isinstance(item, TextDelta))


async def collect_into(
    backend: LLMBackend, request: GenerationRequest, items: list[Generated]
) -> None:
    """Appends as the items come, so a test can look at them after a cancellation."""
    async for item in backend.generate(request):
        items.append(item)
