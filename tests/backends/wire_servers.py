"""Small real HTTP servers speaking Ollama's NDJSON and OpenAI's SSE wire formats, for tests.

Each runs on 127.0.0.1 on an ephemeral port in a background thread, records what it receives,
streams one flushed line (or event) per token, and notices when the client goes away."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeVar

Framing = Literal["chunked", "close"]  # chunked transfer encoding, or the body ends at close


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the decoded JSON body, or None


@dataclass
class Script:
    """How a server answers a generation: the tokens and the misbehaviour, if any."""

    tokens: tuple[str, ...] = ("Hello", ",", " wave", " world")
    token_delay: float = 0.0  # seconds before each token
    drop_after: int | None = None  # close the socket abruptly after this many tokens
    error_after: int | None = None  # send an error line/event after this many tokens
    framing: Framing = "chunked"
    prompt_tokens: int = 11
    send_counts: bool = True  # Ollama's eval counts / the OpenAI usage chunk
    # answer with these calls ({"name", "arguments": object}) after the tokens, if any
    tool_calls: tuple[dict[str, Any], ...] = ()


class WireServer(ThreadingHTTPServer):
    """A threaded HTTP server that keeps a record of the requests and of the stream it sent."""

    daemon_threads = True
    keeps_records = True  # False under load: the record would grow with every request

    def __init__(self, handler: type[BaseHTTPRequestHandler], script: Script) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.script = script
        self.received: list[Received] = []
        self.tokens_sent = 0
        self.disconnected = threading.Event()  # a write failed: the client went away
        self.stream_ended = threading.Event()  # the handler finished a stream, either way

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def last_body(self) -> Any:
        return self.received[-1].body

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that reset a kept-alive connection between requests."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OllamaServer(WireServer):
    def __init__(
        self,
        script: Script,
        *,
        models: tuple[str, ...] = ("llama2:latest",),
        shown: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(_OllamaHandler, script)
        self.models = models
        # What /api/show says of every model (Ollama's keys: parameters, model_info, ...).
        self.shown = shown if shown is not None else {"model_info": {"llama.context_length": 4096}}


class OpenAIServer(WireServer):
    def __init__(
        self,
        script: Script,
        *,
        models: tuple[str, ...] = ("smol",),
        api_key: str = "",
        list_models: bool = True,
        fail_status: int | None = None,
        stream_reply: bool = True,
        max_model_len: int | None = None,
    ) -> None:
        super().__init__(_OpenAIHandler, script)
        self.max_model_len = max_model_len  # listed with each model, as vLLM does
        self.models = models
        self.api_key = api_key
        self.list_models = list_models  # False: /v1/models is a 404, as on some upstreams
        self.fail_status = fail_status  # answer every completion with this HTTP error
        # False: one chat.completion JSON even when asked to stream (as without "stream")
        self.stream_reply = stream_reply


Server = TypeVar("Server", bound=WireServer)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """Serves in a background thread until the block ends."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on a port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class _Disconnected(Exception):
    """The client closed the connection while we were writing."""


class _Dropped(Exception):
    """We closed the connection mid-body on purpose."""


class _WireHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WireServer
    _framing: Framing = "chunked"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the record instead."""

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        if self.server.keeps_records:
            headers = {key.lower(): value for key, value in self.headers.items()}
            self.server.received.append(Received(self.command, self.path, headers, body))
        return body

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, content_type: str, pieces: Iterator[bytes]) -> None:
        """Sends the pieces one write each, then ends the body; stops if the client goes away."""
        script = self.server.script
        self._framing = script.framing
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if script.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            for piece in pieces:
                self._write(piece)
            self._write(b"")
        except _Disconnected:
            self.server.disconnected.set()
            self.close_connection = True
        except _Dropped:
            self.close_connection = True
        finally:
            self.server.stream_ended.set()

    def _tokens(self, limit: int | None) -> Iterator[tuple[int, str]]:
        """The script's tokens (up to `limit`) at its pace; drops the connection when told."""
        script = self.server.script
        for index, token in enumerate(script.tokens[:limit]):
            if index == script.drop_after:
                self._drop()
                return
            time.sleep(script.token_delay)
            yield index, token
            self.server.tokens_sent += 1

    def _write(self, piece: bytes) -> None:
        if self._framing == "chunked":
            piece = b"%x\r\n%s\r\n" % (len(piece), piece)
        elif not piece:
            return
        try:
            self.wfile.write(piece)
            self.wfile.flush()
        except OSError as error:
            raise _Disconnected from error

    def _drop(self) -> None:
        """Closes the socket mid-body, as a crashed upstream would."""
        self.connection.shutdown(socket.SHUT_RDWR)
        raise _Dropped


def _tagged(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


class _OllamaHandler(_WireHandler):
    server: OllamaServer

    def do_GET(self) -> None:
        self._record()
        if self.path == "/api/tags":
            models = [{"name": m, "model": m, "size": 3825819519} for m in self.server.models]
            self._send_json(200, {"models": models})
        else:
            self._send_json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/api/show":
            self._send_json(200, self.server.shown)
        elif self.path != "/api/chat":
            self._send_json(404, {"error": "404 page not found"})
        elif _tagged(body["model"]) not in {_tagged(m) for m in self.server.models}:
            missing = body["model"]
            self._send_json(404, {"error": f'model "{missing}" not found, try pulling it first'})
        else:
            self._stream("application/x-ndjson", self._chat_lines(body))

    def _chat_lines(self, body: dict[str, Any]) -> Iterator[bytes]:
        script = self.server.script
        limit = body.get("options", {}).get("num_predict")
        sent = 0
        for index, token in self._tokens(limit):
            if index == script.error_after:
                yield _line({"error": "llama runner process has terminated"})
                return
            yield _line(self._chunk(body, token, done=False))
            sent += 1
        if script.tool_calls:
            called = self._chunk(body, "", done=False)
            called["message"]["tool_calls"] = [{"function": call} for call in script.tool_calls]
            yield _line(called)
        last = self._chunk(body, "", done=True)
        last["done_reason"] = "length" if limit is not None and limit <= sent else "stop"
        if script.send_counts:
            last.update(prompt_eval_count=script.prompt_tokens, eval_count=sent)
        yield _line(last)

    def _chunk(self, body: dict[str, Any], token: str, *, done: bool) -> dict[str, Any]:
        return {
            "model": body["model"],
            "created_at": "2024-05-01T12:00:00.000000Z",
            "message": {"role": "assistant", "content": token},
            "done": done,
        }


class _OpenAIHandler(_WireHandler):
    server: OpenAIServer

    def do_GET(self) -> None:
        self._record()
        if self.path != "/v1/models" or not self.server.list_models:
            self._send_json(404, {"detail": "Not Found"})
        elif self._authorized():
            data = [{"id": m, "object": "model", "owned_by": "wire"} for m in self.server.models]
            if self.server.max_model_len is not None:
                data = [{**m, "max_model_len": self.server.max_model_len} for m in data]
            self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        body = self._record()
        if self.path != "/v1/chat/completions":
            self._send_json(404, {"detail": "Not Found"})
        elif not self._authorized():
            return
        elif self.server.fail_status is not None:
            error = {"message": "CUDA error: out of memory", "type": "server_error", "code": None}
            self._send_json(self.server.fail_status, {"error": error})
        elif not self.server.stream_reply or not body.get("stream"):
            self._send_json(200, self._whole_completion(body))
        else:
            self._stream("text/event-stream", self._events(body))

    def _authorized(self) -> bool:
        expected = self.server.api_key
        if not expected or self.headers.get("Authorization") == f"Bearer {expected}":
            return True
        error = {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
        self._send_json(401, {"error": error})
        return False

    def _whole_completion(self, body: dict[str, Any]) -> Any:
        script = self.server.script
        text = "".join(script.tokens)
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        usage = {"prompt_tokens": script.prompt_tokens, "completion_tokens": len(script.tokens)}
        return {
            **_chunk_head(body),
            "object": "chat.completion",
            "choices": [choice],
            "usage": usage,
        }

    def _events(self, body: dict[str, Any]) -> Iterator[bytes]:
        script = self.server.script
        limit = body.get("max_tokens")
        yield _event(_completion_chunk(body, {"role": "assistant", "content": ""}, None))
        sent = 0
        for index, token in self._tokens(limit):
            if index == script.error_after:
                yield _event({"error": {"message": "the model crashed", "type": "server_error"}})
                return
            logprobs = _logprobs(token) if body.get("logprobs") else None
            yield _event(_completion_chunk(body, {"content": token}, None, logprobs))
            sent += 1
        reason = "length" if limit is not None and limit <= sent else "stop"
        for index, call in enumerate(script.tool_calls):
            # as OpenAI streams a call: its id and name, then its arguments in two parts
            arguments = json.dumps(call["arguments"])
            head = {"id": f"call_{index}", "type": "function", "function": {"name": call["name"]}}
            for part in (
                {**head, "function": {**head["function"], "arguments": ""}},
                {"function": {"arguments": arguments[:5]}},
                {"function": {"arguments": arguments[5:]}},
            ):
                yield _event(
                    _completion_chunk(body, {"tool_calls": [{"index": index, **part}]}, None)
                )
            reason = "tool_calls"
        yield _event(_completion_chunk(body, {}, reason))
        if script.send_counts and body.get("stream_options", {}).get("include_usage"):
            yield _event(_usage_chunk(body, script.prompt_tokens, sent))
        yield b"data: [DONE]\n\n"


def _completion_chunk(
    body: dict[str, Any], delta: dict[str, Any], reason: str | None, logprobs: Any = None
) -> Any:
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
    return {**_chunk_head(body), "choices": [choice]}


def _logprobs(token: str) -> Any:
    """A made-up log probability for the token, with one alternative."""
    top = [
        {"token": token, "logprob": -0.5, "bytes": None},
        {"token": "x", "logprob": -2.0, "bytes": None},
    ]
    return {"content": [{"token": token, "logprob": -0.5, "bytes": None, "top_logprobs": top}]}


def _usage_chunk(body: dict[str, Any], prompt: int, completion: int) -> Any:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return {**_chunk_head(body), "choices": [], "usage": usage}


def _chunk_head(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-wire",
        "object": "chat.completion.chunk",
        "created": 1714564800,
        "model": body["model"],
    }


def _line(value: Any) -> bytes:
    return json.dumps(value).encode() + b"\n"


def _event(value: Any) -> bytes:
    return b"data: " + json.dumps(value).encode() + b"\n\n"
