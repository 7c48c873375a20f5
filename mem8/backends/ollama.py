"""Ollama's native chat API: POST /api/chat, answered with one JSON object per line (NDJSON)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from mem8.backends._http import (
    Contexts,
    count,
    discard,
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
    ResponseFormat,
    TextDelta,
    ToolCall,
    ToolCalls,
    new_call_id,
    registry,
)
from mem8.errors import BackendFailed, BackendUnavailable, Mem8Error

if TYPE_CHECKING:
    from mem8.config import Settings

TAGS_TIMEOUT = 2.0
PING_TIMEOUT = 1.0
SHOW_TIMEOUT = 5.0
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)


class OllamaBackend(LLMBackend):
    """Chats with a model served by Ollama, yielding its tokens as they arrive."""

    name: ClassVar[str] = "ollama"

    def __init__(self, settings: Settings, *, base_url: str | None = None) -> None:
        self.base_url = (base_url or settings.ollama_api_base).rstrip("/")
        self._timeout = http_timeout(settings.backend_timeout)
        self._largest_context = settings.ollama_context
        self._contexts = Contexts(settings.ollama_context, self._own_context)

    def describe(self, model: str) -> str:
        return f"ollama:{model} at {self.base_url}"

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        url = f"{self.base_url}/api/chat"
        finish: Finish | None = None
        calls: list[ToolCall] = []
        # A client per generation: nothing pooled outlives the trio run that made it.
        try:
            async with (
                new_client(self._timeout) as session,
                session.stream("POST", url, json=chat_body(request)) as reply,
            ):
                await self._check_status(reply, request.model)
                lines = reply.aiter_lines()
                try:
                    async for line in lines:
                        text, finish = self._read_line(line, calls)
                        if text:
                            yield TextDelta(text)
                        if finish is not None:
                            break
                finally:
                    await discard(reply, lines)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise self._transport_error(error) from error
        if finish is None:
            raise BackendFailed(f"{self._who()}: the stream was cut before its final 'done' line")
        if calls:
            yield ToolCalls(tuple(calls))
            finish = Finish("tool_calls", finish.prompt_tokens, finish.completion_tokens)
        yield finish

    async def context_window(self, model: str, configured: int | None) -> int:
        """The persona's setting; else the model's own (its Modelfile's num_ctx, or what it was
        trained for) up to ollama_context, Ollama's own default. Either way it is sent as
        num_ctx, since Ollama silently cuts a prompt longer than the context it runs with."""
        return await self._contexts.of(model, configured)

    async def _own_context(self, model: str) -> int | None:
        """The model's context as /api/show describes it, 0 if it does not, None if Ollama did
        not answer."""
        try:
            async with new_client(SHOW_TIMEOUT) as session:
                reply = await session.post(f"{self.base_url}/api/show", json={"model": model})
        except (httpx.HTTPError, httpx.InvalidURL):
            return None
        shown = json_object(reply.text) if reply.is_success else None
        return (model_context(shown, self._largest_context) or 0) if shown is not None else None

    async def has_model(self, model: str) -> bool:
        return _tagged(model) in {_tagged(name) for name in await self._model_names()}

    async def reachable(self) -> bool:
        """Whether an Ollama server answers at the base URL (a quick check, about a second)."""
        reply = await self._get("/api/tags", PING_TIMEOUT)
        return reply is not None and reply.is_success

    async def _model_names(self) -> set[str]:
        reply = await self._get("/api/tags", TAGS_TIMEOUT)
        body = json_object(reply.text) if reply is not None and reply.is_success else None
        models = body.get("models") if body is not None else None
        if not isinstance(models, list):
            return set()
        return {
            m[key]
            for m in models
            if isinstance(m, dict)
            for key in ("name", "model")
            if isinstance(m.get(key), str)
        }

    async def _get(self, path: str, timeout: float) -> httpx.Response | None:
        try:
            async with new_client(timeout) as session:
                return await session.get(self.base_url + path)
        except (httpx.HTTPError, httpx.InvalidURL):
            return None

    async def _check_status(self, reply: httpx.Response, model: str) -> None:
        if reply.is_success:
            return
        await reply.aread()
        message = error_text(reply)
        if reply.status_code == 404 and "model" in message and "not found" in message:
            raise BackendUnavailable(
                f"{self._who()} has no model {model!r}: fetch it with `ollama pull {model}` "
                f"(Ollama said: {message})"
            )
        raise BackendFailed(f"{self._who()} answered HTTP {reply.status_code}: {message}")

    def _read_line(self, line: str, calls: list[ToolCall]) -> tuple[str, Finish | None]:
        """The text a stream line adds (its tool calls go to `calls`), and the Finish if it
        is the final 'done' line."""
        if not line.strip():
            return "", None
        chunk = json_object(line)
        if chunk is None:
            raise BackendFailed(f"{self._who()} sent a line that is not JSON: {line[:200]}")
        if "error" in chunk:
            raise BackendFailed(f"{self._who()} failed mid-stream: {chunk['error']}")
        message = chunk.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if isinstance(message, dict):
            calls.extend(_tool_calls(message.get("tool_calls")))
        finish = _finish(chunk) if chunk.get("done") is True else None
        return (text if isinstance(text, str) else ""), finish

    def _transport_error(self, error: httpx.HTTPError | httpx.InvalidURL) -> Mem8Error:
        return transport_failure(
            error,
            self._who(),
            unreachable="start it with `ollama serve`, or set OLLAMA_API_BASE / "
            "MEM8_LLM_BACKEND=embedded",
            base_variable="OLLAMA_API_BASE",
            base_url=self.base_url,
            read_timeout=self._timeout.read,
            timeout_hint="; the model may still be loading",
        )

    def _who(self) -> str:
        return f"Ollama at {self.base_url}"


def chat_body(request: GenerationRequest) -> dict[str, Any]:
    """The /api/chat request: the conversation, streamed, with the sampling options, the tools
    offered (Ollama cannot be made to call one: "required" offers them all, a named choice
    only that one) and the output's format (a JSON schema, or "json")."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(m) for m in request.messages],
        "stream": True,
        "options": _options(request),
    }
    if request.offered:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.offered
        ]
    if request.response_format is not None:
        body["format"] = _format(request.response_format)
    return body


def _message(message: ChatMessage) -> dict[str, Any]:
    """A message as Ollama takes it: a call's arguments as an object, a tool's answer named."""
    native: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        native["tool_calls"] = [
            {"function": {"name": call.name, "arguments": _arguments(call.arguments)}}
            for call in message.tool_calls
        ]
    if message.role == "tool" and message.name:
        native["tool_name"] = message.name
    return native


def _arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return {}  # a caller's malformed arguments: Ollama takes only an object


def _format(response_format: ResponseFormat) -> str | dict[str, Any]:
    if response_format.kind == "json_schema" and response_format.schema is not None:
        return response_format.schema
    return "json"


def _tool_calls(value: Any) -> list[ToolCall]:
    """Ollama's calls (arguments as an object, no id) as OpenAI's (arguments as JSON text)."""
    if not isinstance(value, list):
        return []
    calls = []
    for call in value:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            arguments = function.get("arguments", {})
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            call_id = call.get("id")
            calls.append(
                ToolCall(
                    call_id if isinstance(call_id, str) else new_call_id(), function["name"], text
                )
            )
    return calls


def model_context(shown: dict[str, Any], largest: int) -> int | None:
    """A model's context from its /api/show: num_ctx in its parameters (its Modelfile's
    choice), else its trained context_length capped at `largest`."""
    parameters = shown.get("parameters")
    if isinstance(parameters, str) and (found := _NUM_CTX.search(parameters)):
        return int(found.group(1))
    info = shown.get("model_info")
    if isinstance(info, dict):
        trained = [count(v) for k, v in info.items() if k.endswith(".context_length")]
        if trained and max(trained) > 0:
            return min(max(trained), largest)
    return None


def _options(request: GenerationRequest) -> dict[str, Any]:
    optional = {
        "top_p": request.top_p,
        "num_predict": request.max_tokens,
        "seed": request.seed,
        "num_ctx": request.context,
    }
    options: dict[str, Any] = {"temperature": request.temperature}
    options.update({key: value for key, value in optional.items() if value is not None})
    if request.stop:
        options["stop"] = list(request.stop)
    return options


def _finish(chunk: dict[str, Any]) -> Finish:
    reason = "length" if chunk.get("done_reason") == "length" else "stop"
    return Finish(reason, count(chunk.get("prompt_eval_count")), count(chunk.get("eval_count")))


def _tagged(model: str) -> str:
    """`llama2` means `llama2:latest` to Ollama; a tag follows the last ':' after the last '/'."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


registry.register("ollama", OllamaBackend)
