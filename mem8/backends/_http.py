"""Helpers the HTTP backends (Ollama, OpenAI-compatible upstreams) share."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


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
