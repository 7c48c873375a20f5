"""GET /v1/models and /v1/models/{id}: the personas and their aliases, as OpenAI model objects."""

from __future__ import annotations

from typing import Any

from quart import Response, jsonify

from mem8.errors import UnknownModel
from mem8.system import System


def model_object(model: str, created: int, persona: str | None = None) -> dict[str, Any]:
    """A persona, or an alias of one, as OpenAI's Model object; an alias names its persona in
    `parent` (the field vLLM gives a model built on another)."""
    shown: dict[str, Any] = {"id": model, "object": "model", "created": created, "owned_by": "mem8"}
    if persona is not None:
        shown["parent"] = persona
    return shown


class Models:
    def __init__(self, system: System) -> None:
        self.system = system

    async def list(self) -> Response:
        settings = self.system.settings
        data = [model_object(p.id, p.created) for p in settings.personas.values()]
        data += [self._alias(alias) for alias in settings.aliases]
        return jsonify({"object": "list", "data": data})

    async def retrieve(self, model: str) -> Response:
        settings = self.system.settings
        if model in settings.aliases:
            return jsonify(self._alias(model))
        persona = settings.personas.get(model)
        if persona is None:  # the default persona answers chats, but is not listed as this
            raise UnknownModel(model)
        return jsonify(model_object(persona.id, persona.created))

    def _alias(self, alias: str) -> dict[str, Any]:
        target = self.system.settings.personas[self.system.settings.aliases[alias]]
        return model_object(alias, target.created, target.id)
