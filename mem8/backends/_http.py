"""Helpers the HTTP backends (Ollama, OpenAI-compatible upstreams) share."""

from __future__ import annotations

import contextlib
import functools
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from mem8.errors import BackendFailed, BackendUnavailable, Mem8Error

CONNECT_TIMEOUT = 5.0  # seconds to reach a backend; answering may take backend_timeout


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context for every client: building one loads the CA bundle (about 35 ms, on the
    event loop), which a client per generation paid for every chat."""
    return ssl.create_default_context()


def new_client(
    timeout: httpx.Timeout | float, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    """A client for one generation or call (nothing pooled outlives the trio run that made
    it), sharing the one TLS context."""
    return httpx.AsyncClient(timeout=timeout, headers=headers, verify=ssl_context())


def http_timeout(backend_timeout: float) -> httpx.Timeout:
    """A backend's httpx timeout: quick to fail when it is down, patient while it generates."""
    return httpx.Timeout(backend_timeout, connect=CONNECT_TIMEOUT)


def count(value: object) -> int:
    """A token count from an upstream's JSON; anything but an int counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def error_message(body: dict[str, Any]) -> str:
    """The message of OpenAI's {"error": {"message"}}, or the {"error": "..."} of other servers."""
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return str(error) if error is not None else str(body.get("detail", body))


def error_text(reply: httpx.Response) -> str:
    body = json_object(reply.text)
    if body is not None and ("error" in body or "detail" in body):
        return error_message(body)
    return reply.text.strip()[:500] or reply.reason_phrase


async def discard(reply: httpx.Response, lines: AsyncIterator[str]) -> None:
    """Closes the reply, which tells the upstream to stop, then runs httpx's line generators out.

    Under trio an async generator dropped half-way is a ResourceWarning; once the connection is
    closed the next read fails, which ends every generator of httpx's chain."""
    await reply.aclose()
    with contextlib.suppress(httpx.HTTPError):
        async for _ in lines:
            pass


def transport_failure(
    error: httpx.HTTPError | httpx.InvalidURL,
    who: str,
    *,
    unreachable: str,
    base_variable: str,
    base_url: str,
    read_timeout: float | None,
    timeout_hint: str = "",
) -> Mem8Error:
    """What a connection problem means to the caller: the backend is down or misconfigured
    (unavailable, with what to do), or it broke off mid-answer (failed)."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return BackendUnavailable(f"{who} is not reachable ({error}): {unreachable}")
    if isinstance(error, httpx.TimeoutException):
        return BackendUnavailable(
            f"{who} did not answer within {read_timeout} s (MEM8_BACKEND_TIMEOUT){timeout_hint}"
        )
    if isinstance(error, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return BackendUnavailable(
            f"{base_variable} {base_url!r} is not a usable http(s) URL: {error}"
        )
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError):
        return BackendFailed(f"{who}: the stream was cut ({error})")
    return BackendFailed(f"{who}: {type(error).__name__}: {error}")


class Contexts:
    """Models' contexts as a backend learnt them from its server: `ask` answers a model's
    context, 0 when the server says nothing of it (the fallback is kept), or None when the
    server did not answer (the fallback is used, and the server asked again next time)."""

    def __init__(self, fallback: int, ask: Callable[[str], Awaitable[int | None]]) -> None:
        self.fallback = fallback
        self._ask = ask
        self.known: dict[str, int] = {}

    async def of(self, model: str, configured: int | None) -> int:
        if configured:
            return configured
        if model not in self.known:
            learnt = await self._ask(model)
            if learnt is None:
                return self.fallback
            self.known[model] = learnt or self.fallback
        return self.known[model]
