"""Validates a Responses API body (POST /v1/responses) into a ResponseRequest, naming the bad
field (`param`) if not. What would change the answer's shape (tools, background runs,
structured text formats, logprobs ...) is refused, never silently ignored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mem8.errors import InvalidRequest
from mem8.http.validation import (
    ROLES,
    integer_field,
    metadata_field,
    number_field,
    optional_field,
    required_string,
    text_content,
)

TEXT_PARTS = ("input_text", "output_text", "text")
# Refused when given (not null, not empty, not false): each would change what is answered.
REFUSED = {
    "tools": "tools are not supported by mem8 personas",
    "background": "background responses are not supported: ask without 'background'",
    "conversation": "conversations are not supported: continue with 'previous_response_id'",
    "prompt": "prompt templates are not supported",
    "include": "'include' asks for output mem8 does not produce",
    "top_logprobs": "logprobs are not supported by the Responses API here",
    "context_management": "context management is not supported",
}
TOOL_CHOICES = (None, "auto", "none")


@dataclass(frozen=True)
class Said:
    """One input message: who said it (user, assistant, system) and its text."""

    role: str
    text: str


@dataclass(frozen=True)
class ResponseRequest:
    model: str
    input: list[Said]
    instructions: str | None
    previous_response_id: str | None
    stream: bool
    max_output_tokens: int | None
    temperature: float | None
    top_p: float | None
    metadata: dict[str, str]
    store: bool
    user: str


def parse_response(body: dict[str, Any]) -> ResponseRequest:
    _refuse_unsupported(body)
    store = optional_field(body, "store", bool)
    return ResponseRequest(
        model=required_string(body, "model"),
        input=_input(body.get("input")),
        instructions=optional_field(body, "instructions", str),
        previous_response_id=optional_field(body, "previous_response_id", str),
        stream=optional_field(body, "stream", bool) or False,
        max_output_tokens=integer_field(body, "max_output_tokens", 1, 2**31 - 1),
        temperature=number_field(body, "temperature", 0.0, 2.0),
        top_p=number_field(body, "top_p", 0.0, 1.0),
        metadata=metadata_field(body, "metadata"),
        store=True if store is None else store,  # OpenAI's default
        user=optional_field(body, "user", str) or "",
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for key, why in REFUSED.items():
        if body.get(key):
            raise InvalidRequest(f"'{key}': {why}", param=key)
    if body.get("tool_choice") not in TOOL_CHOICES:
        raise InvalidRequest(
            "'tool_choice' may only be auto or none: mem8 personas call no tools",
            param="tool_choice",
        )
    text = body.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise InvalidRequest("'text' must be an object", param="text")
        form = text.get("format")
        if form is not None and form != {"type": "text"}:
            raise InvalidRequest(
                'Only text.format {"type": "text"} is supported', param="text.format"
            )


def _input(value: Any) -> list[Said]:
    if isinstance(value, str):
        return [Said("user", value)]
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'input' is required: a string or a non-empty array of input messages",
            param="input",
        )
    return [_item(item, f"input[{i}]") for i, item in enumerate(value)]


def _item(item: Any, where: str) -> Said:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an input message object", param=where)
    kind = item.get("type", "message")
    if kind != "message":
        raise InvalidRequest(
            f"{where}: input items of type {kind!r} are not supported; only messages are",
            param=f"{where}.type",
        )
    role = item.get("role")
    if role not in ROLES:
        raise InvalidRequest(
            f"{where}.role must be one of user, assistant, system, developer; got {role!r}",
            param=f"{where}.role",
        )
    return Said(ROLES[role], _text(item.get("content"), f"{where}.content"))


def _text(content: Any, where: str) -> str:
    return text_content(content, where, TEXT_PARTS)
