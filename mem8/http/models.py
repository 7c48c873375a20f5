"""GET /v1/models and /v1/models/{id}: the personas, as OpenAI model objects."""

from __future__ import annotations

from typing import Any

from quart import Response, jsonify

from mem8.errors import UnknownModel
from mem8.system import System


def model_object(model: str, created: int) -> dict[str, Any]:
    """A persona as OpenAI's Model object."""
    return {"id": model, "object": "model", "created": created, "owned_by": "mem8"}


class Models:
    def __init__(self, system: System) -> None:
        self.system = system

    async def list(self) -> Response:
        data = [model_object(p.id, p.created) for p in self.system.settings.personas.values()]
        return jsonify({"object": "list", "data": data})

    async def retrieve(self, model: str) -> Response:
        persona = self.system.settings.personas.get(model)
        if persona is None:
            raise UnknownModel(model)
        return jsonify(model_object(persona.id, persona.created))
