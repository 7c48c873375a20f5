"""OpenAI's list object: a page of objects and the cursor ids around it."""

from __future__ import annotations

from typing import Any

from quart import Response, jsonify

from mem8.errors import InvalidRequest


def list_page(data: list[dict[str, Any]], has_more: bool) -> Response:
    return jsonify(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }
    )


def page_limit(value: Any, default: int, maximum: int) -> int:
    """A page's `limit` from a query string or a JSON body: default when absent."""
    if value is None:
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if isinstance(value, bool) or not 1 <= limit <= maximum:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {maximum}", param="limit")
    return limit
