"""Each request's record: its id (the client's x-request-id if it is sane, else a new one;
echoed either way), then at its end (a stream's: its last chunk) one log line and its metrics:
tenant, route, persona, status, timings and tokens. Never an API key or what a message says."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import trio
from quart import Response, g, request

from mem8.actors.runtime import new_request_id
from mem8.logs import FIELDS, key_values
from mem8.system import System

log = logging.getLogger("mem8.requests")
HEADER = "x-request-id"
SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
NO_ROUTE = "unmatched"  # the route label of a request for no route (404, 405)


@dataclass
class Exchange:
    """A request and its answer, as the log and the metrics see them; the routes add what
    only they know (the persona, the first token, the tokens)."""

    request_id: str
    arrival: float  # trio.current_time()
    ended: Callable[[Exchange], None]
    method: str = ""
    route: str = NO_ROUTE
    tenant: str = ""
    persona: str = ""  # a chat's, once its model is known to be a persona
    status: int = 0
    first_token: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    streaming: bool = False
    over: bool = False

    def first_piece(self) -> None:
        """The answer's first piece is here (time to first token)."""
        if self.first_token is None:
            self.first_token = trio.current_time()

    def spent(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens_in += prompt_tokens
        self.tokens_out += completion_tokens

    def streamed(self, events: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
        """The answer's events; the request ends with the last (or when the client leaves)."""
        self.streaming = True
        return self._until_last(events)

    async def _until_last(self, events: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
        try:
            async with aclosing(events):  # a client that leaves closes the events at once
                async for event in events:
                    yield event
        finally:
            self.ended(self)

    def line(self, seconds: float) -> dict[str, Any]:
        """The log line's fields."""
        ttft = None if self.first_token is None else (self.first_token - self.arrival) * 1000
        return {
            "request_id": self.request_id,
            "tenant": self.tenant,
            "method": self.method,
            "route": self.route,
            "persona": self.persona,
            "status": self.status,
            "ms": round(seconds * 1000, 1),
            "ttft_ms": None if ttft is None else round(ttft, 1),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }


def current() -> Exchange:
    """The request's record."""
    exchange: Exchange = g.exchange
    return exchange


class Observer:
    """Opens each request's record before anything else looks at it, closes it once answered."""

    def __init__(self, system: System) -> None:
        self.system = system

    async def begin(self) -> None:
        g.exchange = self.opened(request.headers.get(HEADER, ""), request.method)

    def opened(self, given: str, method: str) -> Exchange:
        """A request's record (its id the client's, if sane); /mcp, outside the app's routes,
        opens its own and ends it itself."""
        request_id = given if SANE_ID.fullmatch(given) else new_request_id()
        return Exchange(request_id, trio.current_time(), self._end, method)

    async def answer(self, response: Response) -> Response:
        exchange: Exchange | None = g.get("exchange")
        if exchange is None:
            return response
        response.headers[HEADER] = exchange.request_id
        exchange.route = request.endpoint or NO_ROUTE
        caller = g.get("caller")
        exchange.tenant = caller.tenant if caller is not None else ""
        exchange.status = response.status_code
        if not exchange.streaming:
            self._end(exchange)
        return response

    def _end(self, exchange: Exchange) -> None:
        if exchange.over:
            return
        exchange.over = True
        seconds = trio.current_time() - exchange.arrival
        metrics, route, persona = self.system.metrics, exchange.route, exchange.persona
        metrics.requests.labels(route, str(exchange.status), persona).inc()
        metrics.request_seconds.labels(route).observe(seconds)
        if exchange.first_token is not None:
            ttft = exchange.first_token - exchange.arrival
            metrics.time_to_first_token.labels(persona).observe(ttft)
        if exchange.tokens_in or exchange.tokens_out:
            metrics.tokens.labels("in", persona).inc(exchange.tokens_in)
            metrics.tokens.labels("out", persona).inc(exchange.tokens_out)
        fields = exchange.line(seconds)
        log.info(key_values(fields), extra={FIELDS: fields})
