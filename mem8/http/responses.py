"""The Responses API: POST /v1/responses is a chat with the persona (the same flow as chat
completions: recall, interest, the answer, imprinting), answered as a Response object or its
typed SSE events. Function tools are the chat completions' own: a call the model makes is a
`function_call` output item, and its result comes back as a `function_call_output` input item. A
response is stored by default (`store`), with its input and the history it continued, so
`previous_response_id` continues it and GET/DELETE and input_items find it. A caller (API key)
sees only its own responses."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import typing
from collections.abc import AsyncGenerator, Callable
from typing import Any

from quart import Response, jsonify, request

from mem8 import errors
from mem8.actors.messages import (
    Chat,
    Done,
    Keep,
    Message,
    StoredAsk,
    StoredChange,
    StoredPage,
    Token,
    ToolCalled,
    Turn,
)
from mem8.actors.runtime import ReplyStream, new_request_id
from mem8.http.chat import UNFINISHED, ChatCompletions, answer_shape, released, sse_response
from mem8.http.context import caller, conversation_key
from mem8.http.errors import from_unexpected
from mem8.http.gate import Gate
from mem8.http.observe import current
from mem8.http.pages import list_page
from mem8.http.response_request import ResponseRequest, Said, name_outputs, parse_response
from mem8.http.stored import paged
from mem8.http.validation import parse_json
from mem8.system import System

RESPONSE = "response"  # the kind of a stored response


def response_id(request_id: str) -> str:
    return f"resp_{request_id}"


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    """The answer as an output message (no content yet while `text` is None)."""
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [output_text(text)],
    }


def call_item(item_id: str, call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    """A function call (in the chat completions' tool_calls shape) as a `function_call` item."""
    function = call["function"]
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call["id"],
        "name": function["name"],
        "arguments": function["arguments"],
    }


def input_item(item_id: str, said: Said) -> dict[str, Any]:
    """An input item as OpenAI lists it: the caller's message, an earlier answer or function
    call resent, or a function's output."""
    if said.call is not None:
        return call_item(item_id, said.call)
    if said.role == "tool":
        return {
            "id": item_id,
            "type": "function_call_output",
            "status": "completed",
            "call_id": said.call_id,
            "output": said.text,
        }
    if said.role == "assistant":
        return message_item(item_id, said.text, "completed")
    content = [{"type": "input_text", "text": said.text}]
    return {
        "id": item_id,
        "type": "message",
        "role": said.role,
        "status": "completed",
        "content": content,
    }


def _usage(answer: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = answer["prompt_tokens"], answer["completion_tokens"]
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def response_object(
    identifier: str,
    created: float,
    model: str,
    asked: dict[str, Any],
    answer: dict[str, Any] | None,
) -> dict[str, Any]:
    """A Response: in progress (no answer yet), completed, or incomplete (cut at its length)."""
    status, incomplete, output, usage = "in_progress", None, [], None
    if answer is not None:
        cut = answer["finish_reason"] == "length"
        status = "incomplete" if cut else "completed"
        incomplete = {"reason": "max_output_tokens"} if cut else None
        output = output_items(asked["output_id"], answer, status)
        usage = _usage(answer)
    return {
        "id": identifier,
        "object": "response",
        "created_at": math.floor(created),
        "status": status,
        "completed_at": math.floor(answer["completed_at"]) if answer else None,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": asked["instructions"],
        "max_output_tokens": asked["max_output_tokens"],
        "model": model,
        "output": output,
        "parallel_tool_calls": asked.get("parallel_tool_calls", False),
        "previous_response_id": asked["previous_response_id"],
        "reasoning": None,
        "store": asked["store"],
        "temperature": asked["temperature"],
        "text": {"format": asked.get("text_format", {"type": "text"})},
        "tool_choice": asked.get("tool_choice", "none"),
        "tools": asked.get("tools", []),
        "top_p": asked["top_p"],
        "truncation": "disabled",
        "metadata": asked["metadata"],
        **({"user": asked["user"]} if asked["user"] else {}),  # a string when given, else absent
        **({"usage": usage} if usage is not None else {}),  # known once answered
    }


def output_items(message_id: str, answer: dict[str, Any], status: str) -> list[dict[str, Any]]:
    """What an answer gives: its text as a message (unless it only called functions), then
    each function call as an item."""
    calls = answer.get("calls", [])  # absent from responses kept before calls were
    text = [message_item(message_id, answer["text"], status)] if answer["text"] or not calls else []
    return text + [call_item(f"fc_{message_id}_{i}", c) for i, c in enumerate(calls)]


class Responses:
    def __init__(self, system: System, gate: Gate, chat: ChatCompletions) -> None:
        self.system = system
        self.gate = gate
        self.chat = chat  # whose flow a response's chat goes through

    async def create(self) -> Response:
        body = parse_response(parse_json(await self.chat.read_body()))
        self._check_lengths(body)
        persona = self.system.persona(body.model)
        current().persona = body.model
        history = await self._history(body.previous_response_id)
        chat = self._chat(body, history)
        release = self.gate.hold_stream(self.gate.caller()) if body.stream else None
        try:
            accepted, first, replies = await self.chat.opened(chat, persona)
        except BaseException:
            if release is not None:
                release()
            raise
        asked = _asked(body, chat, history)
        spent = self.chat.spender(chat)
        if body.stream:
            events = _events(chat, asked, first, replies, spent, self.system.clock.now)
            response = sse_response(released(events, release or (lambda: None)))
        else:
            with replies:
                answered = [first, *[m async for m in replies]]
            answer = _answer(answered, self.system.clock.now())
            spent(typing.cast(Done, answered[-1]))
            identifier = response_id(chat.request_id)
            response = jsonify(
                response_object(identifier, chat.arrival, chat.persona, asked, answer)
            )
        response.headers["x-mem8-interest"] = f"{accepted.interest:.6f}"
        response.headers["x-mem8-conscious"] = "true" if accepted.conscious else "false"
        return response

    async def retrieve(self, response_id: str) -> Response:
        stored = await self._one(response_id)
        return jsonify(_stored_object(stored))

    async def delete(self, response_id: str) -> Response:
        change = StoredChange(
            new_request_id(),
            caller("")[0],
            RESPONSE,
            response_id,
            self.system.clock.now(),
            forget=True,
        )
        await self.system.memory.ask(change, StoredPage)
        return jsonify({"id": response_id, "object": "response", "deleted": True})

    async def cancel(self, response_id: str) -> Response:
        """Only a background response can be cancelled, and mem8 answers none in the
        background: a stored response is finished already (400), any other id a 404."""
        await self._one(response_id)
        raise errors.InvalidRequest(
            "Only responses created with 'background' can be cancelled; this one is finished",
            param="response_id",
        )

    async def input_items(self, response_id: str) -> Response:
        """The response's own input (not the history it continued), newest first by default."""
        stored = await self._one(response_id)
        items = json.loads(stored["request"])["input"]
        page, more = paged(items, request.args, "desc")
        return list_page(page, more)

    async def _one(self, identifier: str, param: str = "response_id") -> dict[str, Any]:
        ask = StoredAsk(new_request_id(), caller("")[0], RESPONSE, id=identifier)
        try:
            return (await self.system.memory.ask(ask, StoredPage)).stored[0]
        except errors.NotFound as error:
            raise errors.NotFound(
                f"Response with id '{identifier}' not found.", param=param
            ) from error

    async def _history(self, previous: str | None) -> list[Said]:
        """What a continued response follows: its predecessor's history, input and answer."""
        if previous is None:
            return []
        stored = await self._one(previous, "previous_response_id")
        asked = json.loads(stored["request"])
        answer = json.loads(stored["answer"])
        earlier = [Said(*entry) for entry in asked["history"]]
        said = [_said(item) for item in asked["input"]]
        calls = [Said("assistant", "", call=call) for call in answer.get("calls", [])]
        text = [Said("assistant", answer["text"])] if answer["text"] or not calls else []
        return [*earlier, *said, *text, *calls]

    def _check_lengths(self, body: ResponseRequest) -> None:
        limit = self.system.settings.max_message_chars
        for i, said in enumerate(body.input):
            if len(said.text) > limit:
                raise errors.StringTooLong(
                    f"Invalid 'input[{i}]': string too long. Expected a string with maximum "
                    f"length {limit}, but got a string with length {len(said.text)} instead.",
                    param=f"input[{i}]",
                )

    def _chat(self, body: ResponseRequest, history: list[Said]) -> Chat:
        tenant, user = caller(body.user)
        opening = [] if body.instructions is None else [Said("system", body.instructions)]
        said = [*opening, *history, *name_outputs(body.input, history)]
        messages = [{"role": s.role, "content": s.text} for s in said]
        request_id = new_request_id()
        chat = Chat(
            request_id=request_id,
            persona=body.model,
            tenant=tenant,
            user=user,
            arrival=self.system.clock.now(),
            messages=turns(said),
            temperature=body.temperature,
            top_p=body.top_p,
            max_tokens=body.max_output_tokens,
            conversation=conversation_key(tenant, user, body.model, messages),
            shape=answer_shape(body.shape),
        )
        if not body.store:
            return chat
        kept = _asked(body, chat, history)
        keep = Keep(RESPONSE, response_id(request_id), body.metadata, json.dumps(kept))
        return dataclasses.replace(chat, keep=keep)


def turns(said: list[Said]) -> list[Turn]:
    """The conversation as the persona takes it: function calls made one after another are one
    assistant turn's tool calls (its text, if a message came just before them)."""
    turns: list[Turn] = []
    for s in said:
        if s.call is None:
            turns.append(Turn(s.role, s.text, None, s.call_id, s.name))
            continue
        last = turns[-1] if turns else None
        if last is not None and last.role == "assistant":
            calls = json.loads(last.tool_calls or "[]")
            turns[-1] = dataclasses.replace(last, tool_calls=json.dumps([*calls, s.call]))
        else:
            turns.append(Turn("assistant", "", json.dumps([s.call])))
    return turns


def _said(item: dict[str, Any]) -> Said:
    """A stored input item back as what was said."""
    if item["type"] == "function_call":
        call = {"name": item["name"], "arguments": item["arguments"]}
        return Said(
            "assistant", "", call={"id": item["call_id"], "type": "function", "function": call}
        )
    if item["type"] == "function_call_output":
        return Said("tool", item["output"], call_id=item["call_id"])
    return Said(item["role"], "\n".join(part["text"] for part in item["content"]))


def _asked(body: ResponseRequest, chat: Chat, history: list[Said]) -> dict[str, Any]:
    """What a response keeps of its request: what the routes show back, and the history."""
    return {
        "input": [input_item(f"msg_{chat.request_id}_{i}", s) for i, s in enumerate(body.input)],
        "history": [[s.role, s.text, s.call, s.call_id, s.name] for s in history],
        "output_id": f"msg_{chat.request_id}",
        "instructions": body.instructions,
        "previous_response_id": body.previous_response_id,
        "max_output_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "metadata": body.metadata,
        "store": body.store,
        "user": body.user,
        "tools": [_tool_echo(tool) for tool in body.tools],
        "tool_choice": _choice_echo(body.shape.tool_choice),
        "parallel_tool_calls": body.shape.parallel_tool_calls,
        "text_format": body.text_format,
    }


def _tool_echo(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as a Response shows what it was given."""
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),  # OpenAI's default for the Responses API
    }


def _choice_echo(choice: str) -> str | dict[str, str]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "name": choice}


def _answer(answered: list[Message], completed_at: float) -> dict[str, Any]:
    """The persona's whole answer (its pieces, then Done) as a response keeps it."""
    done = answered[-1]
    if not isinstance(done, Done):
        raise errors.ActorUnavailable(UNFINISHED)
    return {
        "text": "".join(m.text for m in answered if isinstance(m, Token)),
        "calls": [c for m in answered if isinstance(m, ToolCalled) for c in json.loads(m.calls)],
        "finish_reason": done.finish_reason,
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "completed_at": completed_at,
    }


def _stored_object(stored: dict[str, Any]) -> dict[str, Any]:
    asked = json.loads(stored["request"])
    answer = json.loads(stored["answer"])
    answer.setdefault("completed_at", stored["created"])
    asked["metadata"] = stored["metadata"]
    return response_object(stored["id"], stored["created"], stored["model"], asked, answer)


async def _events(
    chat: Chat,
    asked: dict[str, Any],
    first: Message,
    replies: ReplyStream,
    spent: Callable[[Done], None],
    now: Callable[[], float],
) -> AsyncGenerator[bytes, None]:
    """The Responses API's typed SSE events, numbered in order: the response created and in
    progress; its message added with its first text, each piece of text, the message done; each
    function call added, its arguments, done; then the response completed (or incomplete). An
    answer with neither text nor calls is an empty message. An error after the first event is
    an `error` event. Leaving early (the client went away) closes the reply channel, which stops
    the generation."""
    numbers = itertools.count()
    identifier = response_id(chat.request_id)
    message_id = asked["output_id"]
    place = {"item_id": message_id, "output_index": 0, "content_index": 0}
    items = 0  # output items opened so far
    text: list[str] = []
    calls: list[dict[str, Any]] = []

    def event(kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": next(numbers), **fields}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

    def message_opened() -> list[bytes]:
        nonlocal items
        place["output_index"] = items
        items += 1
        added = message_item(message_id, None, "in_progress")
        return [
            event("response.output_item.added", output_index=place["output_index"], item=added),
            event("response.content_part.added", **place, part=output_text("")),
        ]

    def message_closed(status: str) -> list[bytes]:
        whole = message_item(message_id, "".join(text), status)
        return [
            event("response.output_text.done", **place, text="".join(text), logprobs=[]),
            event("response.content_part.done", **place, part=whole["content"][0]),
            event("response.output_item.done", output_index=place["output_index"], item=whole),
        ]

    def called(call: dict[str, Any]) -> list[bytes]:
        nonlocal items
        index, items = items, items + 1
        item_id = f"fc_{message_id}_{len(calls)}"
        calls.append(call)
        arguments = call["function"]["arguments"]
        at = {"item_id": item_id, "output_index": index}
        return [
            event(
                "response.output_item.added",
                output_index=index,
                item={**call_item(item_id, call, "in_progress"), "arguments": ""},
            ),
            event("response.function_call_arguments.delta", **at, delta=arguments),
            event(
                "response.function_call_arguments.done",
                **at,
                name=call["function"]["name"],
                arguments=arguments,
            ),
            event("response.output_item.done", output_index=index, item=call_item(item_id, call)),
        ]

    started = response_object(identifier, chat.arrival, chat.persona, asked, None)
    pieces: list[Message] = [first]
    writing = False  # a message is open
    try:
        yield event("response.created", response=started)
        yield event("response.in_progress", response=started)
        message: Message | None = first
        while message is not None:
            if isinstance(message, Token):
                if not writing and not calls:
                    writing = True
                    for opened in message_opened():
                        yield opened
                text.append(message.text)
                yield event("response.output_text.delta", **place, delta=message.text, logprobs=[])
            elif isinstance(message, ToolCalled):
                if writing:
                    writing = False
                    for closed in message_closed("completed"):
                        yield closed
                for call in json.loads(message.calls):
                    for piece in called(call):
                        yield piece
            elif isinstance(message, Done):
                spent(message)
                answer = _answer(pieces, now())
                finished = response_object(identifier, chat.arrival, chat.persona, asked, answer)
                if not writing and not calls:  # nothing said: an empty message
                    writing = True
                    for opened in message_opened():
                        yield opened
                if writing:
                    for closed in message_closed(finished["status"]):
                        yield closed
                yield event(f"response.{finished['status']}", response=finished)
                return
            message = await anext(replies, None)
            if message is not None:
                pieces.append(message)
        raise errors.ActorUnavailable(UNFINISHED)
    except errors.Mem8Error as error:
        yield event("error", **_error_fields(error))
    except Exception as error:  # headers are sent: the error travels as an event
        yield event("error", **_error_fields(from_unexpected(error)))
    finally:
        replies.close()


def _error_fields(error: errors.Mem8Error) -> dict[str, Any]:
    """An error as the stream's `error` event carries it."""
    return {"code": error.code, "message": error.message, "param": error.param}
