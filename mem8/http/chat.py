"""POST /v1/chat/completions: a ChatRequest in, the persona actor's Token/Done replies out."""

from __future__ import annotations

import json
import math
import typing
from collections.abc import AsyncIterator
from typing import Any

from quart import Response, request

from mem8 import errors
from mem8.actors.messages import Accepted, Chat, Done, Message, Token, Turn
from mem8.actors.runtime import ReplyStream, new_request_id
from mem8.http.context import caller, conversation_key
from mem8.http.errors import error_body, from_unexpected
from mem8.http.validation import ChatRequest, parse_chat, parse_json
from mem8.system import System

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
UNFINISHED = "the persona ended its answer without finishing it"


class ChatCompletions:
    def __init__(self, system: System) -> None:
        self.system = system

    async def create(self) -> Response:
        body = parse_chat(parse_json(typing.cast(bytes, await request.get_data())))
        persona = self.system.persona(body.model)
        chat = self._chat(body)
        idle = self.system.settings.backend_timeout
        replies = await persona.open_stream(chat, first_timeout=idle, idle_timeout=idle)
        try:
            accepted = await anext(replies)
            # Waiting for the first answer lets a backend that is down answer with a real status.
            first = await anext(replies)
        except BaseException:
            replies.close()
            raise
        if not isinstance(accepted, Accepted):
            replies.close()
            raise errors.ActorUnavailable(f"the persona answered {accepted.type} first")
        if body.stream:
            response = _sse_response(_chunks(body, chat, first, replies))
        else:
            with replies:
                response = _completion(body, chat, [first, *[m async for m in replies]])
        response.headers["x-mem8-interest"] = f"{accepted.interest:.6f}"
        response.headers["x-mem8-conscious"] = "true" if accepted.conscious else "false"
        return response

    def _chat(self, body: ChatRequest) -> Chat:
        tenant, user = caller(body.user)
        conversation = conversation_key(tenant, user, body.model, body.messages)
        return Chat(
            request_id=new_request_id(),
            persona=body.model,
            tenant=tenant,
            user=user,
            arrival=self.system.clock.now(),
            messages=[Turn(m["role"], m["content"]) for m in body.messages],
            temperature=body.temperature,
            top_p=body.top_p,
            max_tokens=body.max_tokens,
            stop=body.stop,
            seed=body.seed,
            conversation=conversation,
        )


def _completion(body: ChatRequest, chat: Chat, replies: list[Message]) -> Response:
    text = "".join(m.text for m in replies if isinstance(m, Token))
    done = replies[-1]
    if not isinstance(done, Done):
        raise errors.ActorUnavailable(UNFINISHED)
    payload = {
        "id": completion_id(chat.request_id),
        "object": "chat.completion",
        "created": math.floor(chat.arrival),
        "model": body.model,
        "system_fingerprint": f"mem8-{done.backend}",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
        ],
        "usage": _usage(done),
    }
    return Response(json.dumps(payload), content_type="application/json")


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def _usage(done: Done) -> dict[str, int]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def _sse_response(events: AsyncIterator[bytes]) -> Response:
    response = Response(events, content_type="text/event-stream", headers=SSE_HEADERS)
    response.timeout = None  # a long answer is not a stuck one
    return response


async def _chunks(
    body: ChatRequest, chat: Chat, first: Message, replies: ReplyStream
) -> AsyncIterator[bytes]:
    """SSE events: the role, each token, the finish reason, optional usage, then [DONE].

    Leaving early (the client went away) closes the reply channel, which stops the generation."""
    base = {
        "id": completion_id(chat.request_id),
        "object": "chat.completion.chunk",
        "created": math.floor(chat.arrival),
        "model": body.model,
    }
    usage_field = {"usage": None} if body.include_usage else {}

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk = {**base, "choices": [choice], **usage_field, **extra}
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    try:
        yield event({"role": "assistant", "content": ""})
        message: Message | None = first
        while message is not None:
            if isinstance(message, Token):
                yield event({"content": message.text})
            elif isinstance(message, Done):
                yield event({}, message.finish_reason)
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
