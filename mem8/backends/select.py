"""Chooses the backend that serves each persona, and says so in the log."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mem8.backends import register_builtins
from mem8.backends.base import LLMBackend, registry
from mem8.config import Settings
from mem8.personas import Persona

log = logging.getLogger(__name__)


async def choose_backends(settings: Settings) -> dict[str, LLMBackend]:
    """Persona id -> backend. `auto`: Ollama where it answers and has the model, else embedded."""
    register_builtins()
    personas = settings.personas
    if settings.llm_backend != "auto":
        shared = registry.create(settings.llm_backend, settings)
        return _announce(dict.fromkeys(personas, shared), personas)
    ollama = registry.create("ollama", settings)
    reachable = await ollama.reachable()  # type: ignore[attr-defined]
    if not reachable:
        log.info("Ollama at %s does not answer: using the embedded model", settings.ollama_api_base)
    embedded: LLMBackend | None = None
    chosen: dict[str, LLMBackend] = {}
    for pid, persona in personas.items():
        if reachable and await ollama.has_model(persona.model):
            chosen[pid] = ollama
            continue
        if reachable:
            log.info("Ollama lacks %s: persona %s uses the embedded model", persona.model, pid)
        embedded = embedded or registry.create("embedded", settings)
        chosen[pid] = embedded
    return _announce(chosen, personas)


def _announce(
    chosen: dict[str, LLMBackend], personas: Mapping[str, Persona]
) -> dict[str, LLMBackend]:
    for pid, backend in chosen.items():
        log.info("persona %s is served by %s", pid, backend.describe(personas[pid].model))
    return chosen
