"""Validates a Responses API body (POST /v1/responses) into a ResponseRequest, naming the bad
field (`param`) if not. Function tools, `tool_choice` and `text.format` are the chat
completions' own (mem8.http.validation) in the Responses API's flatter shapes; what would
change the answer's shape beyond them (built-in tools, background runs, logprobs ...) is
refused, never silently ignored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mem8.errors import InvalidRequest
from mem8.http.validation import (
    ROLES,
    Shape,
    function_of,
    integer_field,
    metadata_field,
    number_field,
    optional_field,
    parallel_field,
    required_string,
    response_format_of,
    text_content,
    tool_choice_of,
    unique_names,
)

TEXT_PARTS = ("input_text", "output_text", "text")
# Refused when given (not null, not empty, not false): each would change what is answered.
REFUSED = {
    "background": "background responses are not supported: ask without 'background'",
    "conversation": "conversations are not supported: continue with 'previous_response_id'",
    "prompt": "prompt templates are not supported",
    "include": "'include' asks for output mem8 does not produce",
    "top_logprobs": "logprobs are not supported by the Responses API here",
    "context_management": "context management is not supported",
}


@dataclass(frozen=True)
class Said:
    """One input item: a message (who said it, user, assistant or system, and its text); a
    function call the model made (`call`, in the chat completions' tool_calls shape); or a
    function's output (role "tool", `call_id` and its function's `name`)."""

    role: str
    text: str
    call: dict[str, Any] | None = None
    call_id: str | None = None
    name: str | None = None


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
    shape: Shape = field(default_factory=Shape)
    tools: list[dict[str, Any]] = field(default_factory=list)  # as asked, echoed back
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})


def parse_response(body: dict[str, Any]) -> ResponseRequest:
    _refuse_unsupported(body)
    store = optional_field(body, "store", bool)
    tools = _tools(body.get("tools"))
    text_format = _text_format(body.get("text"))
    shape = Shape(
        tools=[function_of(tool, f"tools[{i}]") for i, tool in enumerate(tools)],
        tool_choice=tool_choice_of(body.get("tool_choice"), tools, "tool_choice"),
        parallel_tool_calls=parallel_field(body),
        response_format=response_format_of(_as_chat_format(text_format)),
    )
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
        shape=shape,
        tools=tools,
        text_format=text_format,
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for key, why in REFUSED.items():
        if body.get(key):
            raise InvalidRequest(f"'{key}': {why}", param=key)


def _tools(value: Any) -> list[dict[str, Any]]:
    """The function tools as asked (`{"type": "function", "name", "parameters", ...}`)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("'tools' must be an array of function tools", param="tools")
    for i, tool in enumerate(value):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise InvalidRequest(
                f"tools[{i}]: tools of type {kind!r} are not supported; mem8 personas call "
                "function tools only",
                param=f"tools[{i}]",
            )
    unique_names([function_of(tool, f"tools[{i}]") for i, tool in enumerate(value)], "tools")
    return value


def _text_format(text: Any) -> dict[str, Any]:
    if text is None:
        return {"type": "text"}
    if not isinstance(text, dict):
        raise InvalidRequest("'text' must be an object", param="text")
    form = text.get("format")
    if form is None:
        return {"type": "text"}
    if not isinstance(form, dict):
        raise InvalidRequest("'text.format' must be an object", param="text.format")
    return form


def _as_chat_format(form: dict[str, Any]) -> dict[str, Any]:
    """`text.format` as the chat completions' `response_format` (its schema one level down),
    its errors named after `text.format`."""
    if form.get("type") != "json_schema":
        if form.get("type") not in ("text", "json_object"):
            raise InvalidRequest(
                "'text.format' must be of type 'text', 'json_object' or 'json_schema'",
                param="text.format",
            )
        return form
    described = {k: form[k] for k in ("name", "schema", "strict") if k in form}
    if not isinstance(described.get("name"), str):
        raise InvalidRequest("'text.format.name' is required", param="text.format.name")
    try:
        response_format_of({"type": "json_schema", "json_schema": described})
    except InvalidRequest as error:
        raise InvalidRequest(error.message, param="text.format") from error
    return {"type": "json_schema", "json_schema": described}


def _input(value: Any) -> list[Said]:
    if isinstance(value, str):
        return [Said("user", value)]
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'input' is required: a string or a non-empty array of input items",
            param="input",
        )
    said = [_item(item, f"input[{i}]") for i, item in enumerate(value)]
    return name_outputs(said, [])


def name_outputs(said: list[Said], earlier: list[Said]) -> list[Said]:
    """Each function output named after the call it answers (in this input or earlier)."""
    called = {
        s.call["id"]: s.call["function"]["name"] for s in [*earlier, *said] if s.call is not None
    }
    return [
        Said(s.role, s.text, s.call, s.call_id, called.get(s.call_id or "", ""))
        if s.role == "tool"
        else s
        for s in said
    ]


def _item(item: Any, where: str) -> Said:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an input item object", param=where)
    kind = item.get("type", "message")
    if kind == "function_call":
        return Said("assistant", "", call=_call(item, where))
    if kind == "function_call_output":
        output = item.get("output")
        return Said(
            "tool",
            text_content(output, f"{where}.output", TEXT_PARTS),
            call_id=_string(item, "call_id", where),
        )
    if kind != "message":
        raise InvalidRequest(
            f"{where}: input items of type {kind!r} are not supported; only messages, "
            "function calls and their outputs are",
            param=f"{where}.type",
        )
    role = item.get("role")
    if role not in ROLES or ROLES[role] == "tool":
        raise InvalidRequest(
            f"{where}.role must be one of user, assistant, system, developer; got {role!r}",
            param=f"{where}.role",
        )
    return Said(ROLES[role], text_content(item.get("content"), f"{where}.content", TEXT_PARTS))


def _call(item: dict[str, Any], where: str) -> dict[str, Any]:
    """A function_call item as the chat completions' tool call."""
    arguments = item.get("arguments")
    if not isinstance(arguments, str):
        raise InvalidRequest(
            f"{where}.arguments must be a string of JSON", param=f"{where}.arguments"
        )
    name = _string(item, "name", where)
    return {
        "id": _string(item, "call_id", where),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{where}.{key} is required", param=f"{where}.{key}")
    return value
