"""OpenAI's list object: a page of objects and the cursor ids around it."""

from __future__ import annotations

from typing import Any

from quart import Response, jsonify


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
