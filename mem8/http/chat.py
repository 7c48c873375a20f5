"""POST /v1/chat/completions: a ChatRequest in, the persona actor's Token/Done replies out."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any, Protocol

import msgpack
from quart import Response, request

from mem8 import errors
from mem8.actors.messages import (
    Accepted,
    AnswerShape,
    Chat,
    Done,
    Idempotency,
    IdempotentFind,
    IdempotentFound,
    Keep,
    Message,
    Token,
    ToolCalled,
    Turn,
)
from mem8.actors.runtime import ActorRef, ReplyStream, new_request_id
from mem8.http.context import caller, conversation_key
from mem8.http.errors import error_body, from_unexpected
from mem8.http.gate import Gate
from mem8.http.observe import current
from mem8.http.recent import Judged, RecentChats
from mem8.http.validation import ChatRequest, Shape, parse_chat, parse_json
from mem8.system import System

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
UNFINISHED = "the persona ended its answer without finishing it"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
ANSWER_SHAPE = ("stream", "stream_options")  # not part of what a request asks
COMPLETION = "chat.completion"  # the kind of a stored chat completion


class Replies(Protocol):
    """What a streamed answer is read from: the persona's replies, or a kept answer's."""

    def __anext__(self) -> typing.Awaitable[Message]: ...

    def close(self) -> None: ...


class ChatCompletions:
    def __init__(self, system: System, gate: Gate, recent: RecentChats) -> None:
        self.system = system
        self.gate = gate
        self.recent = recent

    async def create(self) -> Response:
        raw = await self.read_body()
        parsed = parse_json(raw)
        # an alias or the default persona answers as that persona: memory and the answer's
        # `model` are the persona's (as OpenAI answers "gpt-4o" with the snapshot it ran)
        body = parse_chat(parsed)
        body = dataclasses.replace(body, model=self.system.persona_id(body.model))
        self._check_lengths(body)
        persona = self.system.persona(body.model)
        current().persona = body.model
        idempotency = _idempotency(parsed)
        if idempotency is not None:
            kept = await self._kept_answer(body, idempotency)
            if kept is not None:
                return kept
        chat = self._chat(body, idempotency)
        release = self.gate.hold_stream(self.gate.caller()) if body.stream else None
        try:
            return await self._answer(body, chat, persona, release)
        except BaseException:
            if release is not None:
                release()
            raise

    async def _answer(
        self, body: ChatRequest, chat: Chat, persona: ActorRef, release: Callable[[], None] | None
    ) -> Response:
        """The persona's answer, whole or streamed (the stream holds its slot until it ends);
        its tokens count against the caller's minute."""
        accepted, first, replies = await self.opened(chat, persona)
        spent = self.spender(chat)
        if body.stream:
            events = _chunks(body, chat, first, replies, spent)
            response = sse_response(released(events, release or (lambda: None)))
        else:
            with replies:
                answered = [first, *[m async for m in replies]]
            response = _completion(body, chat, answered)
            if isinstance(answered[-1], Done):
                spent(answered[-1])
        response.headers["x-mem8-interest"] = f"{accepted.interest:.6f}"
        response.headers["x-mem8-conscious"] = "true" if accepted.conscious else "false"
        return response

    async def opened(self, chat: Chat, persona: ActorRef) -> tuple[Accepted, Message, ReplyStream]:
        """The persona's first replies to a chat: how it judged it (shown on the dashboard),
        and the answer's first piece, waited for so that a backend that is down answers with a
        real status; the Responses API (mem8.http.responses) opens its answers here too."""
        idle = self.system.settings.backend_timeout
        replies = await persona.open_stream(chat, first_timeout=idle, idle_timeout=idle)
        try:
            accepted = await anext(replies)
            first = await anext(replies)
        except BaseException:
            replies.close()
            raise
        if not isinstance(accepted, Accepted):
            replies.close()
            raise errors.ActorUnavailable(f"the persona answered {accepted.type} first")
        self._judged(chat, accepted)
        current().first_piece()
        return accepted, first, replies

    def spender(self, chat: Chat) -> Callable[[Done], None]:
        """What counts a chat's tokens against the caller's minute and in its log line."""
        exchange = current()

        def spent(done: Done) -> None:
            self.gate.spent(chat.tenant, done.prompt_tokens + done.completion_tokens)
            exchange.spent(done.prompt_tokens, done.completion_tokens)

        return spent

    def _judged(self, chat: Chat, accepted: Accepted) -> None:
        valence, arousal, dominance = accepted.emotion or (0.0, 0.0, 0.5)
        judged = Judged(
            chat.arrival,
            chat.tenant,
            chat.persona,
            accepted.interest,
            accepted.conscious,
            valence,
            arousal,
            dominance,
        )
        self.recent.add(judged)

    async def read_body(self) -> bytes:
        """The body, refused before it is read if it says it is too long (and after, if not)."""
        limit = self.system.settings.max_chat_body_bytes
        if (request.content_length or 0) > limit:
            raise _too_large(limit)
        raw = typing.cast(bytes, await request.get_data())
        if len(raw) > limit:
            raise _too_large(limit)
        return raw

    def _check_lengths(self, body: ChatRequest) -> None:
        limit = self.system.settings.max_message_chars
        for i, message in enumerate(body.messages):
            if len(message["content"]) > limit:
                raise errors.StringTooLong(
                    f"Invalid 'messages[{i}].content': string too long. Expected a string with "
                    f"maximum length {limit}, but got a string with length "
                    f"{len(message['content'])} instead.",
                    param=f"messages[{i}].content",
                )

    async def _kept_answer(self, body: ChatRequest, idempotency: Idempotency) -> Response | None:
        """The first answer to a request with this key, if it was answered; 409 if the key
        came with another body."""
        tenant, _ = caller(body.user)
        find = IdempotentFind(new_request_id(), tenant, idempotency.key, self.system.clock.now())
        found = await self.system.memory.ask(find, IdempotentFound)
        if not found.answer:
            return None
        if found.request_sha256 != idempotency.request_sha256:
            raise errors.IdempotencyConflict(
                f"This {IDEMPOTENCY_HEADER} was used with another request body",
                param=IDEMPOTENCY_HEADER,
            )
        return _kept_response(body, msgpack.unpackb(found.answer, raw=False))

    def _chat(self, body: ChatRequest, idempotency: Idempotency | None) -> Chat:
        tenant, user = caller(body.user)
        conversation = conversation_key(tenant, user, body.model, body.messages)
        request_id = new_request_id()
        return Chat(
            request_id=request_id,
            persona=body.model,
            tenant=tenant,
            user=user,
            arrival=self.system.clock.now(),
            messages=[_turn(m) for m in body.messages],
            temperature=body.temperature,
            top_p=body.top_p,
            max_tokens=body.max_tokens,
            stop=body.stop,
            seed=body.seed,
            conversation=conversation,
            idempotency=idempotency,
            keep=_keep(body, request_id) if body.store else None,
            shape=answer_shape(body.shape),
        )


def _keep(body: ChatRequest, request_id: str) -> Keep:
    """What `store: true` keeps of the request, for GET /v1/chat/completions (mem8.http.stored)."""
    asked = {
        "messages": body.messages,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "seed": body.seed,
    }
    return Keep(COMPLETION, completion_id(request_id), body.metadata, json.dumps(asked))


def _turn(message: dict[str, str]) -> Turn:
    return Turn(
        message["role"],
        message["content"],
        message.get("tool_calls"),
        message.get("tool_call_id"),
        message.get("name"),
    )


def answer_shape(shape: Shape) -> AnswerShape | None:
    """The shape as the actors carry it; None when only text is asked (as chats were)."""
    if shape == Shape():
        return None
    response_format = shape.response_format
    return AnswerShape(
        tools=json.dumps(shape.tools),
        tool_choice=shape.tool_choice,
        parallel_tool_calls=shape.parallel_tool_calls,
        legacy_functions=shape.legacy_functions,
        response_format=None if response_format is None else json.dumps(response_format),
        logprobs=shape.logprobs,
        top_logprobs=shape.top_logprobs,
        n=shape.n,
    )


def _too_large(limit: int) -> errors.InputTooLarge:
    return errors.InputTooLarge(
        f"The chat request body is larger than {limit} bytes (MEM8_MAX_CHAT_BODY_BYTES)"
    )


def _idempotency(parsed: dict[str, Any]) -> Idempotency | None:
    """The request's Idempotency-Key and the hash of what it asks: the body, canonically,
    without the answer's shape (a retry may ask for it whole or streamed)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_CHARS:
        raise errors.InvalidRequest(
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_CHARS} characters",
            param=IDEMPOTENCY_HEADER,
        )
    asked = {k: v for k, v in parsed.items() if k not in ANSWER_SHAPE}
    canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return Idempotency(key, hashlib.sha256(canonical.encode()).hexdigest())


def _kept_response(body: ChatRequest, kept: dict[str, Any]) -> Response:
    """A kept answer, answered again as the first request was (whole, or as a stream)."""
    request_id, arrival = kept["request_id"], kept["arrival"]
    reason, prompt_tokens, completion_tokens = kept["finish"]
    chat = Chat(request_id, body.model, "", "", arrival, [])
    done = Done(request_id, reason, prompt_tokens, completion_tokens, kept["answered_by"])
    first = Token(request_id, kept["text"])
    calls = kept.get("calls")  # absent from keys kept before calls were kept apart
    replies: list[Message] = [ToolCalled(request_id, json.dumps(calls))] if calls else []
    if body.stream:
        response = sse_response(_chunks(body, chat, first, _KeptReplies([*replies, done])))
    else:
        response = _completion(body, chat, [first, *replies, done])
    response.headers["x-mem8-interest"] = f"{kept['interest']:.6f}"
    response.headers["x-mem8-conscious"] = "true" if kept["conscious"] else "false"
    response.headers["Idempotent-Replayed"] = "true"
    return response


class _KeptReplies:
    """A kept answer's remaining replies, read like the persona's."""

    def __init__(self, replies: list[Message]) -> None:
        self._replies = list(replies)

    async def __anext__(self) -> Message:
        if not self._replies:
            raise StopAsyncIteration
        return self._replies.pop(0)

    def close(self) -> None:
        self._replies.clear()


def _completion(body: ChatRequest, chat: Chat, replies: list[Message]) -> Response:
    done = replies[-1]
    if not isinstance(done, Done):
        raise errors.ActorUnavailable(UNFINISHED)
    payload = {
        "id": completion_id(chat.request_id),
        "object": "chat.completion",
        "created": math.floor(chat.arrival),
        "model": body.model,
        "system_fingerprint": f"mem8-{done.backend}",
        "choices": [_choice(body.shape, replies, done, i) for i in range(body.shape.n)],
        "usage": _usage(done),
    }
    return Response(json.dumps(payload), content_type="application/json")


def _choice(shape: Shape, replies: list[Message], done: Done, index: int) -> dict[str, Any]:
    """Answer number `index`: its text or its calls, its log probabilities, why it ended."""
    tokens = [m for m in replies if isinstance(m, Token) and m.index == index]
    calls = [
        call
        for m in replies
        if isinstance(m, ToolCalled) and m.index == index
        for call in json.loads(m.calls)
    ]
    text = "".join(m.text for m in tokens)
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        message["content"] = text or None
        message.update(_calls_field(shape, calls))
    logprobs = None
    if shape.logprobs:
        content = [item for m in tokens for item in json.loads(m.logprobs or "[]")]
        logprobs = {"content": content, "refusal": None}
    return {
        "index": index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": _finish_reason(shape, done, index),
    }


def _calls_field(shape: Shape, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The calls as the request asked for them: `tool_calls`, or a legacy `function_call`."""
    if shape.legacy_functions:
        return {"function_call": calls[0]["function"]}
    return {"tool_calls": calls}


def _finish_reason(shape: Shape, done: Done, index: int) -> str:
    reasons = done.finish_reasons or [done.finish_reason]
    reason = reasons[index] if index < len(reasons) else done.finish_reason
    if reason == "tool_calls" and shape.legacy_functions:
        return "function_call"
    return reason


def _calls_delta(shape: Shape, calls: list[dict[str, Any]], first: int) -> dict[str, Any]:
    """Whole calls as one delta, numbered on from `first` (OpenAI's stream sends a call's
    arguments in pieces; one piece is a valid stream too)."""
    if shape.legacy_functions:
        return {"function_call": calls[0]["function"]}
    return {"tool_calls": [{"index": first + i, **call} for i, call in enumerate(calls)]}


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def _usage(done: Done) -> dict[str, int]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def sse_response(events: AsyncGenerator[bytes, None]) -> Response:
    """A stream of events; the request is logged and counted when it ends."""
    streamed = current().streamed(events)
    response = Response(streamed, content_type="text/event-stream", headers=SSE_HEADERS)
    response.timeout = None  # a long answer is not a stuck one
    return response


async def released(
    events: AsyncGenerator[bytes, None], release: Callable[[], None]
) -> AsyncGenerator[bytes, None]:
    """The events, then the stream's slot given back (however the stream ends)."""
    try:
        async with aclosing(events):
            async for event in events:
                yield event
    finally:
        release()


async def _chunks(
    body: ChatRequest,
    chat: Chat,
    first: Message,
    replies: Replies,
    spent: Callable[[Done], None] = lambda done: None,
) -> AsyncGenerator[bytes, None]:
    """SSE events: the role, each token, the finish reason, optional usage, then [DONE].

    Leaving early (the client went away) closes the reply channel, which stops the generation."""
    base = {
        "id": completion_id(chat.request_id),
        "object": "chat.completion.chunk",
        "created": math.floor(chat.arrival),
        "model": body.model,
    }
    usage_field = {"usage": None} if body.include_usage else {}
    shape = body.shape
    begun: set[int] = set()  # answers whose role chunk went out

    def event(
        delta: dict[str, Any],
        finish: str | None = None,
        index: int = 0,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        chunk = {**base, "choices": [choice], **usage_field}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    def role(index: int) -> list[bytes]:
        if index in begun:
            return []
        begun.add(index)
        return [event({"role": "assistant", "content": ""}, index=index)]

    try:
        yield role(0)[0]
        message: Message | None = first
        calls_sent = [0] * shape.n  # each answer's calls so far: a call's `index`
        while message is not None:
            if isinstance(message, Token):
                for chunk in role(message.index):
                    yield chunk
                logprobs = None
                if shape.logprobs:
                    logprobs = {"content": json.loads(message.logprobs or "[]"), "refusal": None}
                yield event({"content": message.text}, None, message.index, logprobs)
            elif isinstance(message, ToolCalled):
                for chunk in role(message.index):
                    yield chunk
                calls = json.loads(message.calls)
                yield event(
                    _calls_delta(shape, calls, calls_sent[message.index]), None, message.index
                )
                calls_sent[message.index] += len(calls)
            elif isinstance(message, Done):
                spent(message)
                for index in range(shape.n):
                    for chunk in role(index):
                        yield chunk
                    yield event({}, _finish_reason(shape, message, index), index)
                if body.include_usage:
                    final = {**base, "choices": [], "usage": _usage(message)}
                    yield b"data: " + json.dumps(final).encode() + b"\n\n"
                yield b"data: [DONE]\n\n"
                return
            message = await anext(replies, None)
        raise errors.ActorUnavailable(UNFINISHED)
    except errors.Mem8Error as error:
        yield b"data: " + json.dumps(error_body(error)).encode() + b"\n\n"
    except Exception as error:  # headers are sent: the error travels as an event
        yield b"data: " + json.dumps(error_body(from_unexpected(error))).encode() + b"\n\n"
    finally:
        replies.close()
