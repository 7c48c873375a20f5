"""Test doubles behind the real backend contract: a scripted LLM (queued replies out, every call
recorded) and a recorder around a real backend. Never a default."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import aclosing
from typing import ClassVar

import trio

from mem8 import errors
from mem8.backends.base import (
    ChatMessage,
    Finish,
    Generated,
    GenerationRequest,
    LLMBackend,
    TextDelta,
    TokenCounter,
    TokenLogprob,
    ToolCall,
    ToolCalls,
    TopLogprob,
    registry,
)

UNLIMITED = 1 << 30  # a scripted model's context unless a test gives it one


class WordTokens:
    """A scripted model's tokens: its words (what it splits replies into and counts)."""

    def text(self, text: str) -> int:
        return len(_split_tokens(text))

    def prompt(self, messages: Sequence[ChatMessage]) -> int:
        return sum(self.text(m.content) for m in messages)


Scripted = str | Exception | list[ToolCall]


class ScriptedLLM(LLMBackend):
    """Replies with queued texts (split into word tokens), then the lines of `cycle` in turn
    (a simulation's script), or an echo of the last user message.

    A queued exception is raised instead of replying, a queued list of ToolCalls is the
    answer's calls. Asked for logprobs, each word has a made-up one (-0.5, then -0.6 ...).
    Thread-safe, so a test thread can enqueue while the server runs in another. `context` (in
    words) makes it refuse longer prompts as a real model does."""

    name: ClassVar[str] = "scripted"
    can_logprobs = True
    travels = True  # its script goes with it (see __getstate__)

    def __init__(
        self, *, token_delay: float = 0.0, context: int = UNLIMITED, cycle: Iterable[str] = ()
    ) -> None:
        self.context = context
        self._cycle = list(cycle)
        self._said = 0  # lines of the cycle said
        self._queue: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self.history: list[GenerationRequest] = []
        self.token_delay = token_delay
        self.cancelled = 0  # generations closed before their Finish
        self.closed_early = threading.Event()  # set at the first of them: a test thread waits

    def __getstate__(self) -> dict[str, object]:
        """A copy for another process (a persona in a Ray worker): all but the locks."""
        state = dict(vars(self))
        del state["_lock"], state["closed_early"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        vars(self).update(state)
        self._lock = threading.Lock()
        self.closed_early = threading.Event()

    def enqueue(self, replies: Iterable[Scripted]) -> None:
        with self._lock:
            self._queue.extend(replies)

    def _next_reply(self, request: GenerationRequest) -> Scripted:
        with self._lock:
            self.history.append(request)
            if self._queue:
                return self._queue.popleft()
            if self._cycle:
                self._said += 1
                return self._cycle[(self._said - 1) % len(self._cycle)]
        users = [m.content for m in request.messages if m.role == "user"]
        return f"echo: {users[-1] if users else ''}"

    def counter(self, model: str) -> TokenCounter:
        return WordTokens()

    async def context_window(self, model: str, configured: int | None) -> int:
        return min(configured, self.context) if configured else self.context

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        reply = self._next_reply(request)
        if isinstance(reply, Exception):
            raise reply
        prompt_tokens = WordTokens().prompt(request.messages)
        if prompt_tokens >= self.context:
            raise errors.ContextLengthExceeded(
                f"the scripted model's context holds {self.context} words; the prompt has "
                f"{prompt_tokens}",
                param="messages",
            )
        if isinstance(reply, list):
            yield ToolCalls(tuple(reply))
            yield Finish("tool_calls", prompt_tokens, len(reply))
            return
        tokens = _split_tokens(reply)
        limit = len(tokens) if request.max_tokens is None else request.max_tokens
        limit = min(limit, self.context - prompt_tokens)
        finished = False
        try:
            emitted = 0
            for token in tokens[:limit]:
                if self.token_delay:
                    await trio.sleep(self.token_delay)
                emitted += 1
                yield TextDelta(token, _logprobs(token, emitted, request.top_logprobs))
            reason = "length" if limit < len(tokens) else "stop"
            finished = True
            yield Finish(reason, prompt_tokens, emitted)
        finally:
            if not finished:
                self.cancelled += 1
                self.closed_early.set()


def _logprobs(token: str, position: int, top: int) -> tuple[TokenLogprob, ...]:
    """A made-up, reproducible log probability for a word and `top` alternatives."""
    logprob = -0.4 - position / 10
    alternatives = tuple(TopLogprob(f"{token}~{i}", logprob - i - 1) for i in range(top))
    return (TokenLogprob(token, logprob, (TopLogprob(token, logprob), *alternatives)[:top]),)


def _split_tokens(text: str) -> list[str]:
    """Word-ish tokens that join back into the text exactly."""
    tokens: list[str] = []
    for i, word in enumerate(text.split(" ")):
        tokens.append(word if i == 0 else " " + word)
    return [t for t in tokens if t]


class RecordingLLM(LLMBackend):
    """A real backend whose requests are kept, so a test can read the prompt it received."""

    name: ClassVar[str] = "recording"

    def __init__(self, inner: LLMBackend) -> None:
        self.inner = inner
        self.history: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        self.history.append(request)
        async with aclosing(self.inner.generate(request)) as generation:
            async for item in generation:
                yield item

    async def start(self) -> None:
        await self.inner.start()

    def counter(self, model: str) -> TokenCounter:
        return self.inner.counter(model)

    async def context_window(self, model: str, configured: int | None) -> int:
        return await self.inner.context_window(model, configured)

    def describe(self, model: str) -> str:
        return self.inner.describe(model)

    async def aclose(self) -> None:
        await self.inner.aclose()


class UnavailableLLM(LLMBackend):
    """A backend that is down: for tests of the 503 path."""

    name: ClassVar[str] = "unavailable"

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        raise errors.BackendUnavailable("the test backend is down")
        yield  # pragma: no cover - makes this an async generator


# Chosen with llm_backend = "scripted": every persona shares one, found in System.backends.
registry.register("scripted", lambda settings: ScriptedLLM())
