"""multipart/form-data requests (uploads): the fields and the one uploaded file, checked."""

from __future__ import annotations

import math
from dataclasses import dataclass

from quart import request

from mem8.errors import InputTooLarge, InvalidRequest
from mem8.http.validation import check_text


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Form:
    fields: dict[str, list[str]]
    upload: Upload

    def text(self, key: str) -> str | None:
        values = self.fields.get(key)
        if not values:
            return None
        if len(values) > 1:
            raise InvalidRequest(f"'{key}' was given {len(values)} times", param=key)
        return values[0]

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            raise InvalidRequest(f"'{key}' is required and must be a non-empty string", param=key)
        return value

    def number(self, key: str, low: float, high: float) -> float | None:
        value = self.text(key)
        if value is None or value == "":
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not low <= number <= high:
            raise InvalidRequest(f"'{key}' must be a number from {low:g} to {high:g}", param=key)
        return number

    def each(self, key: str) -> list[str]:
        """A repeated field, under its name or with the brackets clients add (`key[]`)."""
        return [*self.fields.get(key, []), *self.fields.get(f"{key}[]", [])]


async def read_form(max_bytes: int) -> Form:
    """The request's form fields and its `file`, which must be at most max_bytes."""
    if request.mimetype != "multipart/form-data":
        raise InvalidRequest(
            "Expected a multipart/form-data body with a 'file' field "
            f"(got {request.mimetype or 'no content type'})"
        )
    form = await request.form
    files = await request.files
    fields = {key: form.getlist(key) for key in form}
    for key, values in fields.items():
        check_text(key, key)
        for value in values:
            check_text(value, key)
    uploads = files.getlist("file")
    if not uploads:
        raise InvalidRequest(
            "'file' is required: upload it as a multipart file field", param="file"
        )
    if len(uploads) > 1:
        raise InvalidRequest("Upload one 'file' per request", param="file")
    data = uploads[0].read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputTooLarge(
            f"The file is larger than the limit of {max_bytes // (1 << 20)} MB", param="file"
        )
    filename = uploads[0].filename or "upload"
    check_text(filename, "file")
    return Form(fields, Upload(filename, data))
