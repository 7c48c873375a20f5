"""A scripted LLM for unit tests: queued replies out, every call recorded. Never a default."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from typing import ClassVar

import trio

from mem8 import errors
from mem8.backends.base import Finish, Generated, GenerationRequest, LLMBackend, TextDelta


class ScriptedLLM(LLMBackend):
    """Replies with queued texts (split into word tokens), or an echo of the last user message.

    A queued exception is raised instead of replying. Thread-safe, so a test thread can enqueue
    while the server runs in another."""

    name: ClassVar[str] = "scripted"

    def __init__(self, *, token_delay: float = 0.0) -> None:
        self._queue: deque[str | Exception] = deque()
        self._lock = threading.Lock()
        self.history: list[GenerationRequest] = []
        self.token_delay = token_delay
        self.cancelled = 0  # generations closed before their Finish

    def enqueue(self, replies: Iterable[str | Exception]) -> None:
        with self._lock:
            self._queue.extend(replies)

    def _next_reply(self, request: GenerationRequest) -> str | Exception:
        with self._lock:
            self.history.append(request)
            if self._queue:
                return self._queue.popleft()
        users = [m.content for m in request.messages if m.role == "user"]
        return f"echo: {users[-1] if users else ''}"

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        reply = self._next_reply(request)
        if isinstance(reply, Exception):
            raise reply
        tokens = _split_tokens(reply)
        limit = request.max_tokens if request.max_tokens is not None else len(tokens)
        finished = False
        try:
            emitted = 0
            for token in tokens[:limit]:
                if self.token_delay:
                    await trio.sleep(self.token_delay)
                emitted += 1
                yield TextDelta(token)
            prompt_tokens = sum(len(_split_tokens(m.content)) for m in request.messages)
            reason = "length" if limit < len(tokens) else "stop"
            finished = True
            yield Finish(reason, prompt_tokens, emitted)
        finally:
            if not finished:
                self.cancelled += 1


def _split_tokens(text: str) -> list[str]:
    """Word-ish tokens that join back into the text exactly."""
    tokens: list[str] = []
    for i, word in enumerate(text.split(" ")):
        tokens.append(word if i == 0 else " " + word)
    return [t for t in tokens if t]


class UnavailableLLM(LLMBackend):
    """A backend that is down: for tests of the 503 path."""

    name: ClassVar[str] = "unavailable"

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        raise errors.BackendUnavailable("the test backend is down")
        yield  # pragma: no cover - makes this an async generator
