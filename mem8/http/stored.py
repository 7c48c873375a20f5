"""Stored chat completions: a chat completion asked with `store: true` is kept by the memory
actor with its answer when it commits (mem8.http.chat), then listed, read, given new metadata
and deleted here. A caller (API key) sees only its own."""

from __future__ import annotations

import json
import math
import typing
from typing import Any

from quart import Response, jsonify, request

from mem8.actors.messages import StoredAsk, StoredChange, StoredPage
from mem8.actors.runtime import new_request_id
from mem8.errors import InvalidRequest
from mem8.http.context import caller
from mem8.http.pages import list_page, page_limit
from mem8.http.validation import metadata_field, parse_json
from mem8.system import System

COMPLETION = "chat.completion"
MAX_LIST = 100


def usage_of(answer: dict[str, Any]) -> dict[str, int]:
    prompt, completion = answer["prompt_tokens"], answer["completion_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion_object(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored chat completion as OpenAI shows it: the completion, with its metadata."""
    answer = json.loads(stored["answer"])
    message: dict[str, Any] = {"role": "assistant", "content": answer["text"], "refusal": None}
    calls = answer.get("calls")  # absent from completions kept before calls were kept apart
    if calls:
        message.update(content=answer["text"] or None, tool_calls=calls)
    return {
        "id": stored["id"],
        "object": "chat.completion",
        "created": math.floor(stored["created"]),
        "model": stored["model"],
        "system_fingerprint": f"mem8-{answer['answered_by']}",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer["finish_reason"],
            }
        ],
        "usage": usage_of(answer),
        "metadata": stored["metadata"],
    }


def order_of(args: Any, default: str) -> bool:
    """Whether a list's `order` is descending (`asc` or `desc`)."""
    order = args.get("order", default)
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be asc or desc", param="order")
    return bool(order == "desc")


def paged(
    items: list[dict[str, Any]], args: Any, default_order: str
) -> tuple[list[dict[str, Any]], bool]:
    """A page of a stored object's items (messages, input items) by `after`, `limit`, `order`."""
    limit = page_limit(args.get("limit"), 20, MAX_LIST)
    ordered = items[::-1] if order_of(args, default_order) else items
    after = args.get("after")
    if after is not None:
        ids = [item["id"] for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"No item '{after}' to list after", param="after")
        ordered = ordered[ids.index(after) + 1 :]
    return ordered[:limit], len(ordered) > limit


def metadata_filter(args: Any) -> dict[str, str]:
    """`metadata[key]=value` query parameters as a map."""
    return {
        name[len("metadata[") : -1]: value
        for name, value in args.items()
        if name.startswith("metadata[") and name.endswith("]")
    }


class StoredCompletions:
    def __init__(self, system: System) -> None:
        self.system = system

    async def list(self) -> Response:
        tenant, _ = caller("")
        args = request.args
        ask = StoredAsk(
            new_request_id(),
            tenant,
            COMPLETION,
            model=args.get("model"),
            metadata=metadata_filter(args),
            limit=page_limit(args.get("limit"), 20, MAX_LIST),
            after=args.get("after"),
            descending=order_of(args, "asc"),
        )
        page = await self.system.memory.ask(ask, StoredPage)
        return list_page([completion_object(s) for s in page.stored], page.has_more)

    async def retrieve(self, completion_id: str) -> Response:
        return jsonify(completion_object(await self._one(completion_id)))

    async def update(self, completion_id: str) -> Response:
        body = parse_json(typing.cast(bytes, await request.get_data()))
        if "metadata" not in body:
            raise InvalidRequest("'metadata' is required", param="metadata")
        change = StoredChange(
            new_request_id(),
            caller("")[0],
            COMPLETION,
            completion_id,
            self.system.clock.now(),
            metadata=metadata_field(body, "metadata"),
        )
        page = await self.system.memory.ask(change, StoredPage)
        return jsonify(completion_object(page.stored[0]))

    async def delete(self, completion_id: str) -> Response:
        change = StoredChange(
            new_request_id(),
            caller("")[0],
            COMPLETION,
            completion_id,
            self.system.clock.now(),
            forget=True,
        )
        await self.system.memory.ask(change, StoredPage)
        return jsonify({"object": "chat.completion.deleted", "id": completion_id, "deleted": True})

    async def messages(self, completion_id: str) -> Response:
        """The request's messages, each with an id of its own (`<completion id>-<index>`)."""
        stored = await self._one(completion_id)
        asked = json.loads(stored["request"])
        messages = [
            {
                "id": f"{completion_id}-{i}",
                "role": m["role"],
                "content": m["content"],
                "refusal": None,
                "content_parts": None,
            }
            for i, m in enumerate(asked["messages"])
        ]
        page, more = paged(messages, request.args, "asc")
        return list_page(page, more)

    async def _one(self, completion_id: str) -> dict[str, Any]:
        ask = StoredAsk(new_request_id(), caller("")[0], COMPLETION, id=completion_id)
        return (await self.system.memory.ask(ask, StoredPage)).stored[0]
