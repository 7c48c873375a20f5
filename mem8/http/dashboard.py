"""/dashboard: a page for the server's admin, and the JSON and pictures it shows.

The page itself (HTML, its script and style, all served from here: nothing from outside) holds
no data; its script fetches /dashboard/api/..., which the gate opens to an admin key only (or
to a loopback client while the server has no keys): the personas, every tenant and its
memories (listed, searched, forgotten), the live grid picture, the recent chats' interest and
emotion, and the simulation runs under the `sim_runs` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from quart import Response, jsonify, request

from mem8.actors.messages import GridPicture, MemoryTenants, Picture, Tenanted
from mem8.actors.runtime import new_request_id
from mem8.errors import InvalidRequest, NotFound
from mem8.http import runs
from mem8.http.gate import Gate, Usage
from mem8.http.memories import Memories
from mem8.http.recent import RecentChats
from mem8.system import System

STATIC = Path(__file__).parent / "static"
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
PICTURE_SIDE = 512  # pixels the grid picture is about wide
# The page and its script reach this server only; pictures may also be made in the page, and
# inline style is allowed for the run reports it opens from memory (they inherit this policy).
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' blob: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def chosen_tenant() -> str:
    """The tenant the admin chose (`?tenant=`) for the memory routes."""
    tenant = request.args.get("tenant", "").strip()
    if not tenant:
        raise InvalidRequest("'tenant' is required: the tenant whose memories", param="tenant")
    return tenant


class Dashboard:
    def __init__(self, system: System, gate: Gate, recent: RecentChats) -> None:
        self.system = system
        self.gate = gate
        self.recent = recent
        self.memories = Memories(system, chosen_tenant)

    async def page(self) -> Response:
        return _static("dashboard.html", "text/html; charset=utf-8")

    async def asset(self, name: str) -> Response:
        if name not in ASSETS:
            raise NotFound(f"No dashboard asset '{name}'")
        return _static(name, ASSETS[name])

    async def personas(self) -> Response:
        backends = self.system.backends
        data = []
        for persona in self.system.settings.personas.values():
            backend = backends.get(persona.id)
            shown = {
                "id": persona.id,
                "name": persona.name,
                "traits": persona.to_wire()["traits"],
                "model": persona.model,
                "backend": backend.describe(persona.model) if backend is not None else None,
                "temperature": persona.temperature,
                "interest_threshold": persona.interest_threshold,
                "below_threshold": persona.below_threshold,
                "max_tokens": persona.max_tokens,
            }
            data.append(shown)
        return jsonify({"object": "list", "data": data})

    async def tenants(self) -> Response:
        """Every tenant that holds memories, has a key or called since the server started."""
        held = await self.system.memory.ask(MemoryTenants(new_request_id()), Tenanted)
        keys = {record.name: record for record in self.system.keys.records()}
        names = sorted(set(held.memories) | set(keys) | set(self.gate.usage))
        data = []
        for name in names:
            usage = self.gate.usage.get(name, Usage())
            record = keys.get(name)
            data.append(
                {
                    "tenant": name,
                    "memories": held.memories.get(name, 0),
                    "requests": usage.total_requests,
                    "tokens": usage.total_tokens,
                    "key": None if record is None else _key_state(record.admin, record.revoked),
                }
            )
        return jsonify({"object": "list", "data": data})

    async def grid(self) -> Response:
        size = self.system.settings.grid_size
        ask = GridPicture(new_request_id(), max(1, round(PICTURE_SIDE / size)))
        picture = await self.system.grid.ask(ask, Picture)
        response = Response(picture.png, content_type="image/png")
        response.headers["Cache-Control"] = "no-store"
        response.headers["x-mem8-memories"] = str(picture.memories)
        return response

    async def recent_chats(self) -> Response:
        data = [chat.as_json() for chat in self.recent.newest_first()]
        return jsonify({"object": "list", "data": data})

    async def sims(self) -> Response:
        folder = Path(self.system.settings.sim_runs)
        data = await trio.to_thread.run_sync(runs.listed, folder)
        return jsonify({"object": "list", "folder": str(folder.resolve()), "data": data})

    async def sim_file(self, run: str, name: str) -> Response:
        folder = Path(self.system.settings.sim_runs)
        found = await trio.to_thread.run_sync(runs.served, folder, run, name)
        response = Response(found.body, content_type=found.content_type)
        # a run's page is shown as it is, but runs nothing and reaches nothing outside
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"
        )
        return response


def _key_state(admin: bool, revoked: Any) -> str:
    if revoked is not None:
        return "revoked"
    return "admin" if admin else "normal"


def _static(name: str, content_type: str) -> Response:
    response = Response((STATIC / name).read_bytes(), content_type=content_type)
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["Cache-Control"] = "no-cache"
    return response
