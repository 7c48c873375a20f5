"""mem8 as an MCP server (the official `mcp` SDK): the caller's memory as tools and resources.

Tools: remember, recall, list_memories, forget, personas; resources: mem8://personas and
mem8://memories/{memory_id}. Every call acts on the caller's tenant: over streamable HTTP
(/mcp on the running server) the bearer key's, admitted by the same gate as /v1 (401 without a
valid key once keys exist, its per-minute limits); over stdio (`mem8 mcp`) the tenant the
command was given. The tools send the same messages as /v1/memories."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from mem8 import errors
from mem8.actors.messages import (
    Ack,
    MemoryForget,
    MemoryPage,
    MemoryQuery,
    MemorySearch,
    Percept,
    Remember,
    Remembered,
)
from mem8.actors.runtime import new_request_id
from mem8.http.edge import is_loopback
from mem8.http.errors import error_body, error_headers
from mem8.http.gate import Gate
from mem8.http.memories import MAX_LIMIT, memory_object
from mem8.http.observe import HEADER, Exchange, Observer
from mem8.system import System

PATH = "/mcp"
KEPT_IMPORTANCE = 0.7  # a memory kept on purpose counts as an interesting message does
INSTRUCTIONS = (
    "mem8's long-term memory: remember what should outlast this conversation, recall what "
    "was kept before (best first, with scores), list or forget memories. A memory belongs to "
    "a persona (or, with persona empty, to every persona) and, optionally, an end user."
)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]
# whose memory a call acts on, from its HTTP headers (None over stdio)
TenantOf = Callable[[Mapping[str, str] | None], str]


class MemoryTools:
    """What the tools do, over the system's memory actor, for one tenant per call."""

    def __init__(self, system: System, tenant_of: TenantOf) -> None:
        self.system = system
        self.tenant_of = tenant_of

    def _persona(self, persona: str) -> str:
        return self.system.persona_id(persona, default=False) if persona else ""

    async def remember(
        self, ctx: Context, text: str, persona: str = "", user: str = ""
    ) -> dict[str, Any]:
        if not text.strip():
            raise ToolError("text must not be empty")
        limit = self.system.settings.max_message_chars  # as for a chat message
        if len(text) > limit:
            raise ToolError(f"text is {len(text)} characters, more than {limit}")
        percept = Percept(text, "mcp:remember", "text", self.system.clock.now())
        remember = Remember(
            new_request_id(),
            self.tenant_of(ctx.headers),
            user,
            self._persona(persona),
            [percept],
            KEPT_IMPORTANCE,
        )
        kept = await self.system.memory.ask(remember, Remembered, timeout=math.inf)
        return {"ids": kept.ids}

    async def recall(
        self, ctx: Context, query: str, persona: str = "", user: str = "", limit: int = 10
    ) -> dict[str, Any]:
        if not query.strip():
            raise ToolError("query must not be empty")
        search = MemorySearch(
            new_request_id(),
            self.tenant_of(ctx.headers),
            query,
            user=user or None,
            persona=self._persona(persona) or None,
            limit=_limit(limit),
            now=self.system.clock.now(),
        )
        page = await self.system.memory.ask(search, MemoryPage)
        return {"memories": [memory_object(m) for m in page.memories]}

    async def list_memories(
        self, ctx: Context, persona: str = "", user: str = "", limit: int = 20, after: str = ""
    ) -> dict[str, Any]:
        query = MemoryQuery(
            new_request_id(),
            self.tenant_of(ctx.headers),
            user=user or None,
            persona=self._persona(persona) or None,
            limit=_limit(limit),
            after=after or None,
        )
        page = await self.system.memory.ask(query, MemoryPage)
        return {"memories": [memory_object(m) for m in page.memories], "has_more": page.has_more}

    async def forget(self, ctx: Context, memory_id: str) -> dict[str, Any]:
        tenant = self.tenant_of(ctx.headers)
        forget = MemoryForget(new_request_id(), tenant, memory_id, self.system.clock.now())
        await self.system.memory.ask(forget, Ack)
        return {"id": memory_id, "deleted": True}

    async def personas(self) -> dict[str, Any]:
        return {"personas": personas_shown(self.system)}

    async def memory(self, memory_id: str, ctx: Context) -> str:
        query = MemoryQuery(new_request_id(), self.tenant_of(ctx.headers), memory_id=memory_id)
        page = await self.system.memory.ask(query, MemoryPage)
        return json.dumps(memory_object(page.memories[0]))

    async def personas_resource(self) -> str:
        return json.dumps(personas_shown(self.system))


def personas_shown(system: System) -> list[dict[str, Any]]:
    """The personas as MCP shows them: id, name, traits, interest threshold, and aliases."""
    aliases = system.settings.aliases
    return [
        {
            "id": persona.id,
            "name": persona.name,
            "traits": persona.to_wire()["traits"],
            "interest_threshold": persona.interest_threshold,
            "aliases": sorted(a for a, target in aliases.items() if target == persona.id),
        }
        for persona in system.settings.personas.values()
    ]


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ToolError(f"limit must be 1 to {MAX_LIMIT}")
    return limit


def _told(tool: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A tool whose domain errors (an unknown persona or memory ...) reach the client as their
    message, as an error result; the SDK would say only that the tool failed."""

    @functools.wraps(tool)
    async def told(*args: Any, **kwargs: Any) -> Any:
        try:
            return await tool(*args, **kwargs)
        except errors.Mem8Error as error:
            raise ToolError(error.message) from error

    return told


def memory_server(system: System, tenant_of: TenantOf) -> MCPServer:
    """The MCP server of mem8's memory: its tools and resources."""
    tools = MemoryTools(system, tenant_of)
    server: MCPServer = MCPServer(name="mem8", instructions=INSTRUCTIONS, version="0.1.0")
    server.tool(
        name="remember",
        description="Keep a text as memory (a long one as several passages); returns their ids. "
        "persona: whose memory (empty: every persona's); user: an end user within the key.",
    )(_told(tools.remember))
    server.tool(
        name="recall",
        description="The memories that resonate most with a query, best first, each with its "
        "score (meaning and exact words, as a persona's recall ranks them).",
    )(_told(tools.recall))
    server.tool(
        name="list_memories",
        description="The memories kept, oldest first, a page at a time (after: the last id).",
    )(_told(tools.list_memories))
    server.tool(name="forget", description="Forget one memory by its id.")(_told(tools.forget))
    server.tool(
        name="personas",
        description="The personas (mem8's models): Big Five traits, interest threshold, aliases.",
    )(_told(tools.personas))
    server.resource("mem8://personas", name="personas", mime_type="application/json")(
        tools.personas_resource
    )
    server.resource("mem8://memories/{memory_id}", name="memory", mime_type="application/json")(
        tools.memory
    )
    return server


def stdio_tenant(tenant: str) -> TenantOf:
    return lambda headers: tenant


class Endpoint:
    """/mcp on the running server: streamable HTTP, the gate's keys and limits, the edge's
    Host and Origin rules (through the SDK's DNS-rebinding protection)."""

    def __init__(self, system: System, gate: Gate) -> None:
        self.gate = gate
        self.observer = Observer(system)  # /mcp is logged and counted as the routes are
        self.server = memory_server(system, self._tenant)
        self.server.streamable_http_app(
            streamable_http_path=PATH, transport_security=_security(system)
        )

    def _tenant(self, headers: Mapping[str, str] | None) -> str:
        return self.gate.caller_for((headers or {}).get("authorization", "")).tenant

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.server.session_manager.run():
            yield

    def beside(self, app: Any) -> Asgi:  # Any: Quart types its ASGI events its own way
        """One ASGI app: /mcp here, everything else (lifespan included) to `app`."""

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if scope["type"] == "http" and (path == PATH or path.startswith(PATH + "/")):
                await self._handle(scope, receive, send)
            else:
                await app(scope, receive, send)

        return dispatch

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One request to /mcp, logged and counted (route "mcp") when it ends, its
        x-request-id echoed."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        exchange = self.observer.opened(headers.get(HEADER, ""), scope.get("method", ""))
        exchange.route = PATH.strip("/")

        async def observed(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                echoed = (HEADER.encode(), exchange.request_id.encode())
                message = {**message, "headers": [*message.get("headers", []), echoed]}
            await send(message)

        try:
            await self._answer(scope, receive, observed, headers, exchange)
        finally:
            exchange.ended(exchange)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Mapping[str, str],
        exchange: Exchange,
    ) -> None:
        try:
            caller = self.gate.caller_for(headers.get("authorization", ""))
            exchange.tenant = caller.tenant
            self.gate.count(caller)
        except errors.Mem8Error as error:  # refused before its body is read: close
            headers = {
                **error_headers(error),
                "Content-Type": "application/json",
                "Connection": "close",
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": error.status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                }
            )
            await send(
                {"type": "http.response.body", "body": json.dumps(error_body(error)).encode()}
            )
            return
        await self.server.session_manager.handle_request(scope, receive, send)


def _security(system: System) -> TransportSecuritySettings:
    """The edge's rules for /mcp: on loopback only the loopback names and allowed_hosts as
    Host, and only the server's own origins and cors_origins as Origin."""
    settings = system.settings
    hosts = [h.strip() for h in settings.allowed_hosts.split(",") if h.strip()]
    if not is_loopback(settings.host) or "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    loopback = ["127.0.0.1", "localhost", "[::1]"]
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection="*" not in origins,
        allowed_hosts=[f"{h}:*" for h in loopback + hosts] + loopback + hosts,
        allowed_origins=[f"http://{h}:*" for h in loopback] + origins,
    )
