"""Validates a chat completion body into a ChatRequest, naming the bad field (`param`) if not."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mem8.errors import InvalidRequest

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP = 4
# Other fields (frequency_penalty, logit_bias, metadata ...) are accepted and ignored, as
# OpenAI-compatible servers do; these would change the answer's shape, so they are refused.
UNSUPPORTED = {
    "tools": "tool calls",
    "functions": "function calls",
    "tool_choice": "tool calls",
    "function_call": "function calls",
    "audio": "audio output",
    "prediction": "predicted outputs",
    "web_search_options": "web search",
}


@dataclass(frozen=True)
class ChatRequest:
    model: str
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
    _check_unsupported_options(body)
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


def _check_unsupported_options(body: dict[str, Any]) -> None:
    n = body.get("n", 1)
    if n is not None and (isinstance(n, bool) or n != 1):
        raise InvalidRequest("Only n=1 is supported: a persona gives one answer", param="n")
    if body.get("logprobs"):
        raise InvalidRequest("logprobs are not supported", param="logprobs")
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise InvalidRequest(
            'Only response_format {"type": "text"} is supported', param="response_format"
        )


def required_string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{key}' is required and must be a non-empty string", param=key)
    return value


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'messages' is required and must be a non-empty array", param="messages"
        )
    return [_message(item, f"messages[{i}]") for i, item in enumerate(value)]


def _message(item: Any, where: str) -> dict[str, str]:
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object with 'role' and 'content'", param=where)
    role = item.get("role")
    if role not in ROLES:
        raise InvalidRequest(
            f"{where}.role must be one of system, developer, user, assistant; got {role!r}",
            param=f"{where}.role",
        )
    content = item.get("content")
    if content is None and role == "assistant":
        content = ""  # OpenAI's own shape for a turn that only called tools: no text
    return {"role": ROLES[role], "content": _content(content, f"{where}.content")}


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(
                    f"{where}[{i}] must be a text part; only text is supported",
                    param=f"{where}[{i}]",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{where}[{i}].text must be a string", param=f"{where}[{i}]")
            parts.append(text)
        return "\n".join(parts)
    raise InvalidRequest(f"{where} must be a string or an array of text parts", param=where)


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
