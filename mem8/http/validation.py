"""Validates a chat completion body into a ChatRequest, naming the bad field (`param`) if not."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mem8.errors import InvalidRequest

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",  # the legacy shape of a tool's answer
}
MAX_STOP = 4
MAX_N = 8  # answers are generated one after another: more would hold the model long
MAX_TOP_LOGPROBS = 20
# Other fields (frequency_penalty, logit_bias, metadata ...) are accepted and ignored, as
# OpenAI-compatible servers do; these would change the answer's shape, so they are refused.
UNSUPPORTED = {
    "audio": "audio output",
    "prediction": "predicted outputs",
    "web_search_options": "web search",
}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    # role and content; an assistant's "tool_calls" (JSON), a tool's "tool_call_id" and "name"
    messages: list[dict[str, str]]
    stream: bool
    include_usage: bool
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop: list[str]
    seed: int | None
    user: str
    store: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    shape: Shape = field(default_factory=lambda: Shape())


@dataclass(frozen=True)
class Shape:
    """What the request asks of the answer beyond text (see mem8.actors.messages.AnswerShape)."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    legacy_functions: bool = False
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    n: int = 1


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object whose every string is valid Unicode and every number finite:
    checked here, once, so no field of any route can carry a lone surrogate or an overflow in."""
    if not raw.strip():
        raise InvalidRequest("The request body is empty; expected a JSON object")
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_int=_bounded_int)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise InvalidRequest(f"The request body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object")
    _check_values(body)
    return body


# Longer integers are refused, not parsed: Python's int() refuses 4,300 digits with a
# ValueError, and no field of the API needs more than an int64.
MAX_INT_DIGITS = 20
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Unrepresentable(float):
    """A number JSON gave that no field can take (Infinity, NaN, a 5,000-digit integer)."""


def _no_constant(name: str) -> float:
    return _Unrepresentable("nan")  # JSON has no Infinity or NaN; refused with its param


def _bounded_int(digits: str) -> int | float:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        return _Unrepresentable("nan")
    return int(digits)


def _check_values(body: dict[str, Any]) -> None:
    """Refuses any lone surrogate (in a key or a string) or non-finite number, naming it."""
    pending: list[tuple[str, Any]] = [(key, value) for key, value in body.items()]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            check_text(value, where)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidRequest(
                    f"'{where}' is not a number mem8 can take: JSON numbers must be finite "
                    f"(no Infinity, NaN or overflowing exponent) and integers at most "
                    f"{MAX_INT_DIGITS} digits",
                    param=where,
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_key(key, where)
                pending.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    for key in body:
        _check_key(key, "")


def check_text(value: str, where: str) -> None:
    """Refuses a string holding a lone surrogate (no encoder, journal or store can take it)."""
    if not value.isascii() and _SURROGATE.search(value):
        raise InvalidRequest(
            f"'{where}' holds a lone UTF-16 surrogate, which is not valid Unicode text",
            param=where,
        )


def _check_key(key: str, parent: str) -> None:
    if not key.isascii() and _SURROGATE.search(key):
        raise InvalidRequest(
            "A key holds a lone UTF-16 surrogate, which is not valid Unicode text",
            param=parent or None,
        )


def parse_chat(body: dict[str, Any]) -> ChatRequest:
    for key, what in UNSUPPORTED.items():
        if body.get(key):
            raise InvalidRequest(
                f"{what.capitalize()} are not supported by mem8 personas", param=key
            )
    shape = _shape(body)
    return ChatRequest(
        model=required_string(body, "model"),
        messages=_messages(body.get("messages")),
        stream=optional_field(body, "stream", bool) or False,
        include_usage=_include_usage(body),
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        max_tokens=_max_tokens(body),
        stop=_stop(body.get("stop")),
        seed=integer_field(body, "seed", -(2**63), 2**63 - 1),
        user=optional_field(body, "user", str) or "",
        store=optional_field(body, "store", bool) or False,
        metadata=metadata_field(body, "metadata"),
        shape=shape,
    )


MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def metadata_field(body: dict[str, Any], key: str) -> dict[str, str]:
    """OpenAI's metadata: at most 16 pairs of strings, keys to 64 characters, values to 512."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidRequest(f"'{key}' must be an object of string values", param=key)
    if len(value) > MAX_METADATA_PAIRS:
        raise InvalidRequest(f"'{key}' holds at most {MAX_METADATA_PAIRS} pairs", param=key)
    for name, item in value.items():
        if len(name) > MAX_METADATA_KEY or len(item) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"'{key}' keys are at most {MAX_METADATA_KEY} characters and values at most "
                f"{MAX_METADATA_VALUE}",
                param=f"{key}.{name}",
            )
    return dict(value)


def number_field(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    """An optional number within [low, high] (temperature, top_p), for the other routes."""
    return _number(body, key, low, high)


def _shape(body: dict[str, Any]) -> Shape:
    legacy = body.get("tools") is None and body.get("functions") is not None
    tools = _functions(body) if legacy else _tools(body.get("tools"))
    choice_key = "function_call" if legacy else "tool_choice"
    logprobs = optional_field(body, "logprobs", bool) or False
    top = integer_field(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top is not None and not logprobs:
        raise InvalidRequest(
            "'top_logprobs' may only be set when 'logprobs' is true", param="top_logprobs"
        )
    return Shape(
        tools=tools,
        tool_choice=tool_choice_of(body.get(choice_key), tools, choice_key),
        parallel_tool_calls=parallel_field(body),
        legacy_functions=legacy,
        response_format=response_format_of(body.get("response_format")),
        logprobs=logprobs,
        top_logprobs=top or 0,
        n=integer_field(body, "n", 1, MAX_N) or 1,
    )


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("'tools' must be an array of function tools", param="tools")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(
                f"{where} must be a tool of type 'function' (the only kind mem8 calls)",
                param=where,
            )
        tools.append(function_of(tool.get("function"), f"{where}.function"))
    unique_names(tools, "tools")
    return tools


def _functions(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("functions")
    if not isinstance(value, list):
        raise InvalidRequest("'functions' must be an array of functions", param="functions")
    functions = [function_of(f, f"functions[{i}]") for i, f in enumerate(value)]
    unique_names(functions, "functions")
    return functions


def function_of(value: Any, where: str) -> dict[str, Any]:
    """A function's name, description and parameters' schema, checked."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object with a 'name'", param=where)
    name = value.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
        raise InvalidRequest(
            f"{where}.name is required: 1 to 64 letters, digits, '_' or '-'",
            param=f"{where}.name",
        )
    description = value.get("description", "")
    if not isinstance(description, str):
        raise InvalidRequest(f"{where}.description must be a string", param=f"{where}.description")
    parameters = value.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, dict):
        raise InvalidRequest(
            f"{where}.parameters must be a JSON schema object", param=f"{where}.parameters"
        )
    return {"name": name, "description": description, "parameters": parameters}


_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def unique_names(tools: list[dict[str, Any]], key: str) -> None:
    names = [t["name"] for t in tools]
    for name in names:
        if names.count(name) > 1:
            raise InvalidRequest(f"'{key}' names the function {name!r} twice", param=key)


def tool_choice_of(value: Any, tools: list[dict[str, Any]], key: str) -> str:
    """`auto`, `none`, `required` (not in the legacy `function_call`) or an offered function's
    name, from the string or the object that names it."""
    if value is None:
        return "auto" if tools else "none"
    modes = ("auto", "none") if key == "function_call" else ("auto", "none", "required")
    if value in modes:
        if value != "none" and not tools:
            raise InvalidRequest(f"'{key}' {value!r} needs tools to call", param=key)
        return str(value)
    named = value.get("name") if isinstance(value, dict) else None
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        named = value["function"].get("name")
    if not isinstance(named, str):
        raise InvalidRequest(
            f"'{key}' must be one of {', '.join(modes)} or name a function", param=key
        )
    if named not in {t["name"] for t in tools}:
        raise InvalidRequest(f"'{key}' names {named!r}, which is not among the tools", param=key)
    return named


def parallel_field(body: dict[str, Any]) -> bool:
    value = optional_field(body, "parallel_tool_calls", bool)
    return True if value is None else bool(value)


def response_format_of(value: Any) -> dict[str, Any] | None:
    """None for text; else {"kind", "schema", "name", "strict"}."""
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"kind": kind, "schema": None, "name": "response", "strict": False}
    if kind != "json_schema":
        raise InvalidRequest(
            "'response_format' must be of type 'text', 'json_object' or 'json_schema'",
            param="response_format",
        )
    described = value.get("json_schema")
    where = "response_format.json_schema"
    if not isinstance(described, dict) or not isinstance(described.get("name"), str):
        raise InvalidRequest(f"'{where}' must be an object with a 'name'", param=where)
    schema = described.get("schema", {})
    if not isinstance(schema, dict):
        raise InvalidRequest(f"'{where}.schema' must be a JSON schema object", param=where)
    strict = described.get("strict") or False
    if not isinstance(strict, bool):
        raise InvalidRequest(f"'{where}.strict' must be a boolean", param=f"{where}.strict")
    return {"kind": kind, "schema": schema, "name": described["name"], "strict": strict}


def required_string(body: dict[str, Any], key: str, where: str = "") -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        name = f"{where}.{key}" if where else key
        raise InvalidRequest(f"'{name}' is required and must be a non-empty string", param=name)
    return value


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'messages' is required and must be a non-empty array", param="messages"
        )
    messages = [_message(item, f"messages[{i}]") for i, item in enumerate(value)]
    _pair_calls(messages)
    return messages


def _pair_calls(messages: list[dict[str, str]]) -> None:
    """Names each tool answer after the call it answers; a legacy call (no id) gets one, and
    the function's answer after it that id, as upstreams pair them."""
    called: dict[str, str] = {}  # call id -> function
    legacy: dict[str, str] = {}  # function -> the id given to its last legacy call
    for i, message in enumerate(messages):
        if "tool_calls" in message:
            calls = json.loads(message["tool_calls"])
            for j, call in enumerate(calls):
                if not call["id"]:
                    call["id"] = legacy[call["function"]["name"]] = f"call_{i}_{j}"
                called[call["id"]] = call["function"]["name"]
            message["tool_calls"] = json.dumps(calls)
        elif message["role"] == "tool" and not message["tool_call_id"]:
            message["tool_call_id"] = legacy.get(message["name"], "")
        elif message["role"] == "tool" and not message.get("name"):
            message["name"] = called.get(message["tool_call_id"], "")


def _message(item: Any, where: str) -> dict[str, str]:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object with 'role' and 'content'", param=where)
    role = item.get("role")
    if role not in ROLES:
        raise InvalidRequest(
            f"{where}.role must be one of system, developer, user, assistant, tool; got {role!r}",
            param=f"{where}.role",
        )
    content = item.get("content")
    if content is None and role == "assistant":
        content = ""  # OpenAI's own shape for a turn that only called tools: no text
    message = {"role": ROLES[role], "content": _content(content, f"{where}.content")}
    if role == "assistant":
        calls = _tool_calls(item, where)
        if calls:
            message["tool_calls"] = json.dumps(calls)
    elif role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(
                f"{where}.tool_call_id is required for a tool message",
                param=f"{where}.tool_call_id",
            )
        message["tool_call_id"] = call_id
    elif role == "function":
        message["name"] = required_string(item, "name", where)
        message["tool_call_id"] = ""
    return message


def _tool_calls(item: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """An assistant turn's calls in OpenAI's shape (a legacy function_call is one of them)."""
    value = item.get("tool_calls")
    legacy = item.get("function_call")
    if value is None and legacy is not None:
        value = [{"id": "", "type": "function", "function": legacy}]
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    calls = []
    for i, call in enumerate(value):
        at = f"{where}.tool_calls[{i}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"{at}.function must name a function", param=f"{at}.function")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            raise InvalidRequest(
                f"{at}.function.arguments must be a string of JSON",
                param=f"{at}.function.arguments",
            )
        call_id = call.get("id") or ""
        if not isinstance(call_id, str):
            raise InvalidRequest(f"{at}.id must be a string", param=f"{at}.id")
        calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    return calls


def _content(value: Any, where: str) -> str:
    return text_content(value, where, ("text",))


def text_content(value: Any, where: str, kinds: tuple[str, ...]) -> str:
    """A message's content as text: a string, or its parts of the given types joined by lines
    (chat's "text"; the Responses API's "input_text" and "output_text" too)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be a string or an array of text parts", param=where)
    texts = []
    for i, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") not in kinds:
            kind = part.get("type") if isinstance(part, dict) else None
            raise InvalidRequest(
                f"{where}[{i}]: content of type {kind!r} is not supported; only text is",
                param=f"{where}[{i}]",
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}[{i}].text must be a string", param=f"{where}[{i}].text")
        texts.append(text)
    return "\n".join(texts)


def optional_field(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidRequest(f"'{key}' must be a {kind.__name__}", param=key)
    return value


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"'{key}' must be a number", param=key)
    if not low <= value <= high:
        raise InvalidRequest(
            f"'{key}' must be between {low:g} and {high:g}, got {value}", param=key
        )
    return float(value)


def integer_field(body: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{key}' must be an integer", param=key)
    if not low <= value <= high:
        raise InvalidRequest(f"'{key}' must be between {low} and {high}", param=key)
    return value


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = integer_field(body, key, 1, 2**31 - 1)
        if value is not None:
            return value
    return None


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise InvalidRequest("'stop' must be a non-empty string or an array of them", param="stop")
    if len(stops) > MAX_STOP:
        raise InvalidRequest(f"'stop' takes at most {MAX_STOP} sequences", param="stop")
    return stops


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object", param="stream_options")
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise InvalidRequest(
            "'stream_options.include_usage' must be a boolean", param="stream_options.include_usage"
        )
    return include
