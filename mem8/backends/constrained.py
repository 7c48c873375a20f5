"""Holding a local model to JSON schemas: the prompt and GBNF grammar that make its answer a
well-formed tool call or a reply matching a response format, and the call read back.

A call is written as Qwen2.5 and Hermes-style models are trained to write one,
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`; the grammar lets nothing else
through. When the model may choose ("auto"), it answers freely first: if it begins a call (Qwen
writes the tags as special tokens, which the text leaves out, so a call shows as "{" or "<"), that
answer is dropped and the call is made again under the grammar. A grammar offering both a call
and prose does not work: llama.cpp's grammar refuses the special tag token the model would pick,
and the model then writes prose (a ```json block) instead; such a block begun under "auto" is
taken as a call begun, and made again under the grammar."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from mem8 import errors
from mem8.backends.base import ChatMessage, GenerationRequest, Tool, ToolCall, new_call_id

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
# text: free; call: must call; either: a call or prose, as the model begins; json: a reply
# matching a schema
Mode = Literal["text", "call", "either", "json"]
CALL_STARTS = ("<", "{")  # how a call begins, once leading whitespace is dropped
# Offered tools and left to choose, a small model often writes its call as a ```json block of
# prose: that is taken as beginning a call too (a fence of any other language is prose)
FENCED_CALL = "```json"
_DEFINITIONS = ("$defs", "definitions")


@dataclass(frozen=True, slots=True)
class Constraint:
    mode: Mode
    grammar: str | None = None  # GBNF, as llama.cpp reads it (under "either": for the call)
    hint: str = ""  # what the system prompt adds: the tools, or the format asked for


def constraint(request: GenerationRequest) -> Constraint:
    """How the request holds the model: to its tools when it offers any, else to its
    response format, else not at all."""
    offered = request.offered
    if offered:
        must = request.tool_choice != "auto"
        call = _grammar(_call_schema(offered), "tools").replace("root ::=", "tool-call ::=", 1)
        root = f'root ::= "{CALL_OPEN}" "\\n"? tool-call "\\n"? "{CALL_CLOSE}"'
        grammar = f"{call}\n{root}\n"
        return Constraint("call" if must else "either", grammar, _tools_hint(offered, must))
    wanted = request.response_format
    if wanted is None:
        return Constraint("text")
    schema = wanted.schema if wanted.kind == "json_schema" and wanted.schema else None
    grammar = _grammar(schema or {"type": "object"}, "response_format")
    hint = "Answer with a JSON object only"
    if schema is not None:
        hint += f", matching this JSON schema: {json.dumps(schema)}"
    return Constraint("json", grammar, hint + ".")


def rendered(messages: tuple[ChatMessage, ...], hint: str = "") -> list[dict[str, str]]:
    """The messages as any chat template takes them (role and text): calls written as the
    model writes them, a tool's answer as a user turn, the hint after the first system
    prompt (some templates take a system message only first)."""
    turns = [_rendered(m) for m in messages]
    if hint and turns and turns[0]["role"] == "system":
        turns[0] = {"role": "system", "content": f"{turns[0]['content']}\n\n{hint}"}
    elif hint:
        turns.insert(0, {"role": "system", "content": hint})
    return turns


def read_calls(text: str) -> tuple[ToolCall, ...]:
    """The call the model wrote (none if it was cut short)."""
    inner = text.strip().removeprefix(CALL_OPEN).removesuffix(CALL_CLOSE)
    try:
        call = json.loads(inner)
    except ValueError:
        return ()
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return ()
    arguments = json.dumps(call.get("arguments", {}), ensure_ascii=False)
    return (ToolCall(new_call_id(), call["name"], arguments),)


def _rendered(message: ChatMessage) -> dict[str, str]:
    if message.role == "tool":
        answer = f"{message.name}: {message.content}" if message.name else message.content
        return {"role": "user", "content": f"<tool_response>\n{answer}\n</tool_response>"}
    calls = [
        f'{CALL_OPEN}{{"name": {json.dumps(c.name)}, "arguments": {c.arguments}}}{CALL_CLOSE}'
        for c in message.tool_calls
    ]
    return {"role": message.role, "content": "\n".join([message.content, *calls]).strip()}


def _call_schema(tools: tuple[Tool, ...]) -> dict[str, Any]:
    """A call of one of the tools: its name, and arguments matching its parameters (their
    definitions lifted to the top, where a `#/$defs/...` reference looks for them)."""
    definitions: dict[str, Any] = {}
    choices = []
    for tool in tools:
        parameters = dict(tool.parameters) or {"type": "object", "properties": {}}
        for key in _DEFINITIONS:
            definitions.update(parameters.pop(key, None) or {})
        choices.append(
            {
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": parameters},
                "required": ["name", "arguments"],
            }
        )
    schema: dict[str, Any] = choices[0] if len(choices) == 1 else {"anyOf": choices}
    if definitions:
        schema = {**schema, "$defs": definitions}
    return schema


def _grammar(schema: dict[str, Any], param: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf  # the embedded extra's

    try:
        grammar: str = json_schema_to_gbnf(json.dumps(_enumerated(schema)))
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise errors.InvalidRequest(
            f"the embedded model cannot follow this JSON schema: {error}", param=param
        ) from error
    return grammar


def _enumerated(schema: Any) -> Any:
    """The schema with each small integer range spelled out as an enum: llama-cpp-python's
    converter ignores minimum and maximum, but keeps to an enum."""
    if isinstance(schema, list):
        return [_enumerated(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    low, high = _integer_range(schema)
    if low is not None and high is not None and 0 <= high - low <= MAX_ENUMERATED:
        return {"enum": list(range(low, high + 1))}
    return {key: _enumerated(value) for key, value in schema.items()}


MAX_ENUMERATED = 256


def _integer_range(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    if schema.get("type") != "integer":
        return None, None
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = math.floor(schema["exclusiveMinimum"]) + 1
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = math.ceil(schema["exclusiveMaximum"]) - 1
    low = math.ceil(low) if isinstance(low, int | float) and not isinstance(low, bool) else None
    high = (
        math.floor(high) if isinstance(high, int | float) and not isinstance(high, bool) else None
    )
    return low, high


def _tools_hint(tools: tuple[Tool, ...], must: bool) -> str:
    """The tools as Qwen2.5's own chat template offers them (the words it was trained on)."""
    described = "\n".join(
        json.dumps(
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
        )
        for t in tools
    )
    when = (
        "You must call one of these functions now."
        if must
        else ("You may call one or more functions to assist with the user query.")
    )
    return (
        f"# Tools\n\n{when}\n\nYou are provided with function signatures within "
        f"<tools></tools> XML tags:\n<tools>\n{described}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        f"{CALL_OPEN}{CALL_CLOSE} XML tags:\n{CALL_OPEN}\n"
        f'{{"name": <function-name>, "arguments": <args-json-object>}}\n{CALL_CLOSE}'
    )
