"""The Files API. An upload is stored in the SQLite file, read (documents and images, in a child
process with limits) and kept as memories tied to it; deleting the file forgets them. A caller
(API key) sees only its own files."""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from typing import Any

from quart import Response, jsonify, request

from mem8.actors.messages import (
    Ack,
    FileAsk,
    FileForget,
    FileKeep,
    FilePage,
    Percept,
    Read,
    ReadOut,
    Remembered,
)
from mem8.actors.runtime import new_request_id
from mem8.actors.senses import SENSED_IMPORTANCE, encoded
from mem8.errors import InvalidRequest, SenseUnavailable
from mem8.http.context import caller
from mem8.http.forms import Form, read_form
from mem8.http.pages import list_page, page_limit
from mem8.scope import EVERY_PERSONA
from mem8.storage.files import StoredFile
from mem8.system import System

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Purposes whose files are knowledge to remember; batch, fine-tune and eval files are data for
# jobs, stored and served back but not read into memory.
READ_PURPOSES = ("assistants", "vision", "user_data")
MAX_LIST = 10_000


def file_object(stored: StoredFile) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": stored.id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": stored.created_at,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": stored.status,
    }
    if stored.status_details is not None:
        shown["status_details"] = stored.status_details
    return shown


class Files:
    def __init__(self, system: System) -> None:
        self.system = system

    async def create(self) -> Response:
        form = await read_form(self.system.settings.max_body_bytes)
        purpose = form.required("purpose")
        if purpose not in PURPOSES:
            raise InvalidRequest(f"'purpose' must be one of {', '.join(PURPOSES)}", param="purpose")
        persona = form.text("model") or EVERY_PERSONA
        if persona:
            self.system.persona(persona)  # an unknown persona is the spec's 404
        tenant, user = caller(form.text("user") or "")
        now = self.system.clock.now()
        stored = StoredFile(
            id=f"file-{uuid.uuid4().hex[:24]}",
            tenant=tenant,
            user=user,
            persona=persona,
            filename=form.upload.filename,
            purpose=purpose,
            bytes=len(form.upload.data),
            created_at=math.floor(now),
            status="processed",
            status_details=None,
        )
        percepts: list[Percept] = []
        if purpose in READ_PURPOSES:
            stored, percepts = await self._read(stored, form, now)
        keep = FileKeep(
            new_request_id(), stored.to_wire(), form.upload.data, percepts, SENSED_IMPORTANCE
        )
        await self.system.memory.ask(keep, Remembered)
        return jsonify(file_object(stored))

    async def _read(
        self, stored: StoredFile, form: Form, now: float
    ) -> tuple[StoredFile, list[Percept]]:
        """The percepts read from the upload; a file that cannot be read is kept with status
        'error' and the reason (a missing reader is the server's fault: 503, nothing kept)."""
        read = Read(new_request_id(), form.upload.data, form.upload.filename)
        out = await self.system.reading.ask(read, ReadOut, timeout=math.inf)
        if out.missing:
            raise SenseUnavailable(out.error or "A reader for this file is not installed")
        if out.error is not None:
            return replace(stored, status="error", status_details=out.error), []
        percepts = [
            Percept(
                text=chunk.text,
                source=f"file:{stored.id}:{chunk.where}".rstrip(":"),
                modality=chunk.modality,
                created=now,
            )
            for chunk in out.chunks
        ]
        percepts = await encoded(self.system.encoder, percepts)
        return stored, percepts

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
        data = [file_object(StoredFile.from_wire(f)) for f in page.files]
        return list_page(data, page.has_more)

    async def retrieve(self, file_id: str) -> Response:
        tenant, _ = caller("")
        page = await self.system.memory.ask(FileAsk(new_request_id(), tenant, file_id), FilePage)
        return jsonify(file_object(StoredFile.from_wire(page.files[0])))

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
