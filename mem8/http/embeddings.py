"""POST /v1/embeddings: texts in, their wave representation (mem8/encoders/wave.py) out.

Embedding reads no memory and writes none: the encoding actor counts, checks and encodes."""

from __future__ import annotations

import base64
import json
import math
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import trio
from quart import Response, request

from mem8.actors.messages import Embed, Embedded
from mem8.actors.runtime import new_request_id
from mem8.errors import InvalidRequest
from mem8.http import tokens
from mem8.http.validation import integer_field, optional_field, parse_json, required_string
from mem8.system import System

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 32_768  # summed over a request's inputs: ~15 s of encoding on one thread
ENCODING_FORMATS = ("float", "base64")
MAX_DIMENSIONS = 1536  # the wave's samples at most: mem8.encoders.wave.MAX_DIMENSIONS


Tokens = list[int]


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str  # as the client sent it: its name picks the encoding of token arrays
    inputs: list[str | Tokens]  # texts, or token ids to decode
    dimensions: int
    encoding_format: str
    user: str


def parse_embedding(body: dict[str, Any]) -> EmbeddingRequest:
    encoding_format = optional_field(body, "encoding_format", str) or "float"
    if encoding_format not in ENCODING_FORMATS:
        raise InvalidRequest(
            "'encoding_format' must be 'float' or 'base64'", param="encoding_format"
        )
    return EmbeddingRequest(
        model=required_string(body, "model"),
        inputs=_inputs(body.get("input")),
        dimensions=integer_field(body, "dimensions", 1, MAX_DIMENSIONS) or MAX_DIMENSIONS,
        encoding_format=encoding_format,
        user=optional_field(body, "user", str) or "",
    )


def _inputs(value: Any) -> list[str | Tokens]:
    """A string, an array of strings, an array of token ids, or an array of those arrays."""
    if isinstance(value, str) or (isinstance(value, list) and value and _is_token(value[0])):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidRequest(
            "'input' is required: a string, an array of strings, an array of token ids or an "
            "array of token-id arrays",
            param="input",
        )
    if len(value) > MAX_INPUTS:
        raise InvalidRequest(f"'input' takes at most {MAX_INPUTS} inputs", param="input")
    for i, item in enumerate(value):
        text = isinstance(item, str) and item
        tokens = isinstance(item, list) and item and all(_is_token(t) for t in item)
        if not (text or tokens):
            raise InvalidRequest(
                f"input[{i}] must be a non-empty string or a non-empty array of token ids",
                param="input",
            )
    return value


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def texts_of(body: EmbeddingRequest) -> list[str]:
    """The inputs as texts, token arrays decoded with the encoding the client's model uses."""
    if all(isinstance(item, str) for item in body.inputs):
        return typing.cast(list[str], body.inputs)
    words = tokens.vocabulary(tokens.encoding_for(body.model))
    return [
        item if isinstance(item, str) else words.decode(item, f"input[{i}]")
        for i, item in enumerate(body.inputs)
    ]


def _response_body(embedded: Embedded, body: EmbeddingRequest, model: str) -> bytes:
    """The JSON answer, serialised on a worker thread: 2048 waves are 3 million floats."""
    waves = np.frombuffer(embedded.waves, "<f4").reshape(len(body.inputs), body.dimensions)
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
        for i, v in enumerate(waves)
    ]
    usage = {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens}
    payload = {"object": "list", "data": data, "model": model, "usage": usage}
    return json.dumps(payload).encode()


def _encoded(vector: npt.NDArray[np.float32], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    floats: list[float] = vector.tolist()
    return floats


class Embeddings:
    def __init__(self, system: System) -> None:
        self.system = system

    async def create(self) -> Response:
        body = parse_embedding(parse_json(typing.cast(bytes, await request.get_data())))
        persona = self.system.persona_id(body.model)  # an unknown name is the spec's 404
        texts = await trio.to_thread.run_sync(texts_of, body)  # the first load reads a file
        embed = Embed(
            new_request_id(), texts, body.dimensions, MAX_INPUT_TOKENS, MAX_REQUEST_TOKENS
        )
        # as long as the limits allow: 32,768 tokens are ~15 s of encoding on one thread
        embedded = await self.system.encoding.ask(embed, Embedded, timeout=math.inf)
        payload = await trio.to_thread.run_sync(_response_body, embedded, body, persona)
        return Response(payload, content_type="application/json")
