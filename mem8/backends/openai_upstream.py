"""Any OpenAI-compatible upstream (llama.cpp server, vLLM, ...): streamed chat completions (SSE)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from mem8.backends._http import (
    Contexts,
    count,
    discard,
    error_message,
    error_text,
    http_timeout,
    json_object,
    new_client,
    transport_failure,
)
from mem8.backends.base import (
    ChatMessage,
    Finish,
    Generated,
    GenerationRequest,
    LLMBackend,
    TextDelta,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolCalls,
    TopLogprob,
    new_call_id,
    registry,
)
from mem8.errors import BackendFailed, BackendUnavailable, Mem8Error

if TYPE_CHECKING:
    from mem8.config import Settings

MODELS_TIMEOUT = 2.0


@dataclass
class _Tally:
    """What an SSE stream has said so far besides its text."""

    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    done: bool = False  # the "data: [DONE]" line came
    # the calls streamed so far by their index: [id, name, arguments so far]
    calls: dict[int, list[str]] = field(default_factory=dict)

    def finish(self) -> Finish:
        reason = "length" if self.finish_reason == "length" else "stop"
        if self.calls:
            reason = "tool_calls"
        return Finish(reason, self.prompt_tokens, self.completion_tokens)

    def tool_calls(self) -> ToolCalls | None:
        if not self.calls:
            return None
        called = [self.calls[index] for index in sorted(self.calls)]
        return ToolCalls(tuple(ToolCall(i or new_call_id(), n, a) for i, n, a in called))

    def add_calls(self, deltas: object) -> None:
        """Adds a chunk's tool_calls deltas: a call's id and name, then its arguments in parts."""
        for position, delta in enumerate(deltas if isinstance(deltas, list) else []):
            if not isinstance(delta, dict):
                continue
            index = delta.get("index", position)
            call = self.calls.setdefault(
                index if isinstance(index, int) else position, ["", "", ""]
            )
            function = delta.get("function")
            function = function if isinstance(function, dict) else {}
            call[0] = call[0] or _string(delta.get("id"))
            call[1] = call[1] or _string(function.get("name"))
            call[2] += _string(function.get("arguments"))


class OpenAIUpstreamBackend(LLMBackend):
    """Chats through an OpenAI-compatible /chat/completions endpoint, streaming the tokens."""

    name: ClassVar[str] = "openai"
    needs_key: ClassVar[bool] = False  # local servers take none; a key is sent when set
    can_logprobs = True  # passed through: an upstream without them says so

    def __init__(
        self, settings: Settings, *, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        self.base_url = (base_url or settings.openai_api_base).rstrip("/")
        self._api_key = settings.upstream_api_key if api_key is None else api_key
        self._timeout = http_timeout(settings.backend_timeout)
        self._contexts = Contexts(settings.upstream_context, self._listed_context)

    def describe(self, model: str) -> str:
        return f"openai:{model} at {self.base_url}"

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        url = f"{self._configured_base()}/chat/completions"
        tally = _Tally()
        # A client per generation: nothing pooled outlives the trio run that made it.
        try:
            async with (
                self._client(self._timeout) as client,
                client.stream("POST", url, json=chat_body(request)) as reply,
            ):
                await self._check_status(reply)
                if _is_json(reply):
                    delta = await self._read_whole(reply, tally)
                    if delta.text:
                        yield delta
                else:
                    lines = reply.aiter_lines()
                    try:
                        async for line in lines:
                            delta = self._read_line(line, tally)
                            if delta.text:
                                yield delta
                            if tally.done:
                                break
                    finally:
                        await discard(reply, lines)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise self._transport_error(error) from error
        if not tally.done and tally.finish_reason is None:
            raise BackendFailed(f"{self._who()}: the stream was cut before 'data: [DONE]'")
        calls = tally.tool_calls()
        if calls is not None:
            yield calls
        yield tally.finish()

    async def context_window(self, model: str, configured: int | None) -> int:
        """The persona's setting; else the max_model_len the upstream lists for the model
        (vLLM does); else upstream_context."""
        return await self._contexts.of(model, configured)

    async def _listed_context(self, model: str) -> int | None:
        """The model's max_model_len in the upstream's listing, 0 if it lists none, None if
        the upstream did not answer."""
        reply = await self._listing()
        if reply is None:
            return None
        body = json_object(reply.text) if reply.is_success else None
        listed = body.get("data") if body is not None else None
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict) and entry.get("id") == model:
                return count(entry.get("max_model_len"))
        return 0

    async def _listing(self) -> httpx.Response | None:
        """GET /models, or None when no upstream is set or it does not answer."""
        if not self.base_url:
            return None
        try:
            async with self._client(httpx.Timeout(MODELS_TIMEOUT)) as client:
                return await client.get(f"{self.base_url}/models")
        except (httpx.HTTPError, httpx.InvalidURL):
            return None

    async def has_model(self, model: str) -> bool:
        reply = await self._listing()
        if reply is None:
            return False
        if reply.status_code == 404:
            return True  # the upstream does not list its models; assume it serves this one
        return reply.is_success and model in _model_ids(reply)

    def _client(self, timeout: httpx.Timeout) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        return new_client(timeout, headers)

    def _configured_base(self) -> str:
        if not self.base_url:
            raise BackendUnavailable(
                "no OpenAI-compatible upstream is configured: set OPENAI_API_BASE "
                "(e.g. http://localhost:8000/v1)"
            )
        return self.base_url

    async def _check_status(self, reply: httpx.Response) -> None:
        if reply.is_success:
            return
        await reply.aread()
        message = f"{self._who()} answered HTTP {reply.status_code}: {error_text(reply)}"
        if reply.status_code in (401, 403):
            message += "; check MEM8_UPSTREAM_API_KEY"
        raise BackendFailed(message)

    async def _read_whole(self, reply: httpx.Response, tally: _Tally) -> TextDelta:
        """A plain JSON reply: an error, or the whole completion (the upstream did not stream)."""
        await reply.aread()
        body = json_object(reply.text) or {}
        self._raise_error(body)
        choice = _first_choice(body)
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        tally.finish_reason = _string(choice.get("finish_reason")) or "stop"
        tally.add_calls(message.get("tool_calls"))
        _count_usage(body, tally)
        return TextDelta(_string(message.get("content")), _logprobs(choice))

    def _read_line(self, line: str, tally: _Tally) -> TextDelta:
        """The text one SSE line adds; the rest of what it says goes into the tally."""
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "error":
            raise BackendFailed(f"{self._who()} failed mid-stream: {value}")
        if field != "data":
            return _NOTHING  # blank separators, comments, event: and id: lines
        if value.strip() == "[DONE]":
            tally.done = True
            return _NOTHING
        chunk = json_object(value)
        if chunk is None:
            raise BackendFailed(f"{self._who()} sent an event that is not JSON: {value[:200]}")
        self._raise_error(chunk)
        return _read_chunk(chunk, tally)

    def _raise_error(self, body: dict[str, Any]) -> None:
        if "error" in body:
            raise BackendFailed(f"{self._who()} failed: {error_message(body)}")

    def _transport_error(self, error: httpx.HTTPError | httpx.InvalidURL) -> Mem8Error:
        return transport_failure(
            error,
            self._who(),
            unreachable="start the server, or point OPENAI_API_BASE at one (or set "
            "MEM8_LLM_BACKEND to ollama or embedded)",
            base_variable="OPENAI_API_BASE",
            base_url=self.base_url,
            read_timeout=self._timeout.read,
        )

    def _who(self) -> str:
        return f"the OpenAI-compatible upstream at {self.base_url}"


_NOTHING = TextDelta("")


def chat_body(request: GenerationRequest) -> dict[str, Any]:
    """The /chat/completions request: streamed, with usage asked for, the sampling knobs, and
    the tools, response format and logprobs in OpenAI's own fields."""
    optional = {
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        "stop": list(request.stop) or None,
        "response_format": _response_format(request),
        "logprobs": request.logprobs or None,
        "top_logprobs": request.top_logprobs or None,
    }
    body = {
        "model": request.model,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": request.temperature,
        **{key: value for key, value in optional.items() if value is not None},
    }
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        body["tool_choice"] = _tool_choice(request.tool_choice)
        if not request.parallel_tool_calls:
            body["parallel_tool_calls"] = False
    return body


def _message(message: ChatMessage) -> dict[str, Any]:
    native: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        native["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        native["tool_call_id"] = message.tool_call_id
    return native


def _tool(tool: Tool) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


def _tool_choice(choice: str) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _response_format(request: GenerationRequest) -> dict[str, Any] | None:
    wanted = request.response_format
    if wanted is None:
        return None
    if wanted.kind == "json_object":
        return {"type": "json_object"}
    described = {"name": wanted.name, "schema": wanted.schema or {}, "strict": wanted.strict}
    return {"type": "json_schema", "json_schema": described}


def _read_chunk(chunk: dict[str, Any], tally: _Tally) -> TextDelta:
    choice = _first_choice(chunk)
    delta = choice.get("delta")
    delta = delta if isinstance(delta, dict) else {}
    tally.finish_reason = _string(choice.get("finish_reason")) or tally.finish_reason
    tally.add_calls(delta.get("tool_calls"))
    _count_usage(chunk, tally)
    return TextDelta(_string(delta.get("content")), _logprobs(choice))


def _logprobs(choice: dict[str, Any]) -> tuple[TokenLogprob, ...]:
    """A choice's logprobs.content, as the backend contract carries them."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return tuple(
        TokenLogprob(
            _string(item.get("token")),
            _number(item.get("logprob")),
            tuple(
                TopLogprob(_string(top.get("token")), _number(top.get("logprob")))
                for top in item.get("top_logprobs") or []
                if isinstance(top, dict)
            ),
        )
        for item in (content if isinstance(content, list) else [])
        if isinstance(item, dict)
    )


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _first_choice(body: dict[str, Any]) -> dict[str, Any]:
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


def _count_usage(body: dict[str, Any], tally: _Tally) -> None:
    usage = body.get("usage")
    if isinstance(usage, dict):
        tally.prompt_tokens = count(usage.get("prompt_tokens"))
        tally.completion_tokens = count(usage.get("completion_tokens"))


def _model_ids(reply: httpx.Response) -> set[str]:
    body = json_object(reply.text)
    models = body.get("data") if body is not None else None
    if not isinstance(models, list):
        return set()
    return {m["id"] for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)}


def _is_json(reply: httpx.Response) -> bool:
    return str(reply.headers.get("content-type", "")).startswith("application/json")


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


registry.register("openai", OpenAIUpstreamBackend)
