"""The Files API. An upload is stored in the SQLite file, read (documents and images, in a child
process with limits) and kept as memories tied to it, all by the reading actor (`Upload`);
deleting the file forgets them. A caller (API key) sees only its own files."""

from __future__ import annotations

import math
from typing import Any

from quart import Response, jsonify, request

from mem8.actors.messages import Ack, FileAsk, FileForget, FilePage, Upload
from mem8.actors.runtime import new_request_id
from mem8.errors import InvalidRequest
from mem8.http.context import caller
from mem8.http.forms import read_form
from mem8.http.pages import list_page, page_limit
from mem8.scope import EVERY_PERSONA
from mem8.system import System

# OpenAI's purposes; the reading actor reads those that are knowledge (senses.READ_PURPOSES).
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_LIST = 10_000


def file_object(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored file's record (FilePage's) as OpenAI's File object."""
    shown: dict[str, Any] = {
        "id": stored["id"],
        "object": "file",
        "bytes": stored["bytes"],
        "created_at": stored["created_at"],
        "filename": stored["filename"],
        "purpose": stored["purpose"],
        "status": stored["status"],
    }
    if stored["status_details"] is not None:
        shown["status_details"] = stored["status_details"]
    return shown


class Files:
    def __init__(self, system: System) -> None:
        self.system = system

    async def create(self) -> Response:
        form = await read_form(self.system.settings.max_body_bytes)
        if any(key.startswith("expires_after") for key in form.fields):
            # refused rather than ignored: a caller relying on expiry would keep the file for good
            raise InvalidRequest(
                "'expires_after' is not supported yet: mem8 keeps a file until it is deleted "
                "(DELETE /v1/files/{file_id})",
                param="expires_after",
            )
        purpose = form.required("purpose")
        if purpose not in PURPOSES:
            raise InvalidRequest(f"'purpose' must be one of {', '.join(PURPOSES)}", param="purpose")
        persona = form.text("model") or EVERY_PERSONA
        if persona:  # a name or alias means its persona; an unknown one is the spec's 404
            persona = self.system.persona_id(persona)
        tenant, user = caller(form.text("user") or "")
        upload = Upload(
            new_request_id(),
            tenant,
            user,
            persona,
            form.upload.filename,
            purpose,
            form.upload.data,
            self.system.clock.now(),
        )
        page = await self.system.reading.ask(upload, FilePage, timeout=math.inf)
        return jsonify(file_object(page.files[0]))

    async def list(self) -> Response:
        tenant, _ = caller("")
        args = request.args
        purpose = args.get("purpose")
        order = args.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be asc or desc", param="order")
        ask = FileAsk(
            new_request_id(),
            tenant,
            purpose=purpose,
            limit=page_limit(args.get("limit"), MAX_LIST, MAX_LIST),
            after=args.get("after"),
            descending=order == "desc",
        )
        page = await self.system.memory.ask(ask, FilePage)
        data = [file_object(f) for f in page.files]
        return list_page(data, page.has_more)

    async def retrieve(self, file_id: str) -> Response:
        tenant, _ = caller("")
        page = await self.system.memory.ask(FileAsk(new_request_id(), tenant, file_id), FilePage)
        return jsonify(file_object(page.files[0]))

    async def content(self, file_id: str) -> Response:
        tenant, _ = caller("")
        ask = FileAsk(new_request_id(), tenant, file_id, content=True)
        page = await self.system.memory.ask(ask, FilePage)
        return Response(page.content or b"", content_type="application/octet-stream")

    async def delete(self, file_id: str) -> Response:
        tenant, _ = caller("")
        forget = FileForget(new_request_id(), tenant, file_id, self.system.clock.now())
        await self.system.memory.ask(forget, Ack)
        return jsonify({"id": file_id, "object": "file", "deleted": True})
