"""/v1/memories: list, fetch, search and forget the caller's memories (OpenAI list shapes); the
dashboard serves the same routes on a tenant an admin chooses."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from typing import Any

from quart import Response, jsonify, request

from mem8.actors.messages import Ack, MemoryForget, MemoryPage, MemoryQuery, MemorySearch
from mem8.actors.runtime import new_request_id
from mem8.errors import InvalidRequest
from mem8.http.context import caller
from mem8.http.pages import list_page, page_limit
from mem8.http.validation import parse_json
from mem8.system import System

MAX_LIMIT = 100
# The API's names for the domain's vocabulary (tests/test_layers.py checks they are the same):
# a memory's band by its number (mem8.grid.placement.BANDS) and the modalities (mem8.memory).
BANDS = ("conversational", "technical", "abstract", "sensory")
MODALITIES = ("text", "audio", "document", "image")


def memory_object(wire: dict[str, Any]) -> dict[str, Any]:
    valence, arousal, dominance = wire["emotion"]
    shown = {
        "id": wire["id"],
        "object": "memory",
        "created_at": math.floor(wire["created"]),
        "text": wire["text"],
        "source": wire["source"],
        "modality": wire["modality"],
        "persona": wire["persona"],
        "user": wire["user"],
        "emotion": {"valence": valence, "arousal": arousal, "dominance": dominance},
        "importance": wire["importance"],
        "band": BANDS[wire["band"]],
        "phase": wire["phase"],
        "decay_tau": None if math.isinf(wire["tau"]) else wire["tau"],
        "position": {"x": wire["x"], "y": wire["y"]},
        "amplitude": wire["amplitude"],
        "recalls": wire["recalls"],
        "superseded_by": wire["superseded_by"] or None,  # the later memory replacing this one
    }
    if "supersedes" in wire:  # the memories this one replaced (the API always says)
        shown["supersedes"] = wire["supersedes"]
    if "score" in wire:
        shown["score"] = wire["score"]
    return shown


def own_tenant() -> str:
    """The caller's own tenant (the key's)."""
    tenant, _ = caller("")
    return tenant


def _list(page: MemoryPage) -> Response:
    return list_page([memory_object(m) for m in page.memories], page.has_more)


class Memories:
    def __init__(self, system: System, whose: Callable[[], str] = own_tenant) -> None:
        self.system = system
        self.whose = whose  # the tenant a request acts on

    def _persona_filter(self, value: str | None) -> str | None:
        if value is None:
            return None
        # an alias filters by its persona; an unknown name is the spec's 404 (no default)
        return self.system.persona_id(value, default=False)

    async def list(self) -> Response:
        tenant = self.whose()
        args = request.args
        modality = args.get("modality")
        if modality is not None and modality not in MODALITIES:
            raise InvalidRequest(
                f"modality must be one of {', '.join(MODALITIES)}", param="modality"
            )
        query = MemoryQuery(
            new_request_id(),
            tenant,
            user=args.get("user"),
            persona=self._persona_filter(args.get("persona")),
            modality=modality,
            limit=page_limit(args.get("limit"), 20, MAX_LIMIT),
            after=args.get("after"),
        )
        return _list(await self.system.memory.ask(query, MemoryPage))

    async def retrieve(self, memory_id: str) -> Response:
        tenant = self.whose()
        query = MemoryQuery(new_request_id(), tenant, memory_id=memory_id)
        page = await self.system.memory.ask(query, MemoryPage)
        return jsonify(memory_object(page.memories[0]))

    async def search(self) -> Response:
        body = parse_json(typing.cast(bytes, await request.get_data()))
        text = body.get("query")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest(
                "'query' is required and must be a non-empty string", param="query"
            )
        for key in ("persona", "user"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise InvalidRequest(f"'{key}' must be a string", param=key)
        tenant = self.whose()
        search = MemorySearch(
            new_request_id(),
            tenant,
            text,
            user=body.get("user"),
            persona=self._persona_filter(body.get("persona")),
            limit=page_limit(body.get("limit"), 10, MAX_LIMIT),
            now=self.system.clock.now(),
        )
        return _list(await self.system.memory.ask(search, MemoryPage))

    async def forget(self, memory_id: str) -> Response:
        tenant = self.whose()
        forget = MemoryForget(new_request_id(), tenant, memory_id, self.system.clock.now())
        await self.system.memory.ask(forget, Ack)
        return jsonify({"id": memory_id, "object": "memory.deleted", "deleted": True})
