"""GET /v1/usage (the caller's own tenant) and GET /v1/admin/tenants (every tenant; an admin
key only): requests and chat tokens since the server started, the last minute's, the limits,
and how many memories each tenant holds."""

from __future__ import annotations

from typing import Any

import trio
from quart import Response, jsonify

from mem8 import errors
from mem8.actors.messages import Counted, MemoryCount
from mem8.actors.runtime import new_request_id
from mem8.http.gate import Gate, Usage
from mem8.system import System


class Tenants:
    def __init__(self, system: System, gate: Gate) -> None:
        self.system = system
        self.gate = gate

    async def own(self) -> Response:
        caller = self.gate.caller()
        return jsonify(await self._usage(caller.tenant))

    async def every(self) -> Response:
        if not self.gate.caller().admin:
            raise errors.PermissionDenied("Listing tenants needs an admin key")
        names = set(self.gate.usage) | {k.name for k in self.system.keys.records()}
        data = [await self._usage(name) for name in sorted(names)]
        return jsonify({"object": "list", "data": data})

    async def _usage(self, tenant: str) -> dict[str, Any]:
        usage = self.gate.usage.get(tenant, Usage())
        usage.forget_before(trio.current_time())
        count = MemoryCount(new_request_id(), tenant)
        memories = (await self.system.memory.ask(count, Counted)).count
        return {
            "object": "tenant.usage",
            "tenant": tenant,
            "requests": usage.total_requests,
            "tokens": usage.total_tokens,
            "requests_last_minute": len(usage.requests),
            "tokens_last_minute": usage.tokens_used(),
            "open_streams": usage.streams,
            "memories": memories,
        }
