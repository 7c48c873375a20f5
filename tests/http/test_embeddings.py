"""POST /v1/embeddings through the official openai client against a live server."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import trio
import trio.testing
from openai import OpenAI

from mem8.encoders import open_encoder
from mem8.encoders.minilm import MiniLMEncoder
from tests.support.server import RunningServer

MODEL = "mem8-creative-v1"
WAVES = "Wave-based memory systems"
TEXTS = [WAVES, "Emotional context persistence", "The cat sat on the mat."]
AUTH = {"Authorization": "Bearer mem8-dummy-key"}  # the tenant the `client` fixture is


def post(server: RunningServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.base_url + "/embeddings", json=body, headers=AUTH, timeout=60)


def test_the_default_base64_answer_is_the_float_one(client: OpenAI) -> None:
    default = client.embeddings.create(model=MODEL, input=WAVES)  # the client asks for base64
    floats = client.embeddings.create(model=MODEL, input=WAVES, encoding_format="float")
    vector = default.data[0].embedding
    assert len(vector) == 1536
    np.testing.assert_allclose(vector, floats.data[0].embedding, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    assert default.model == MODEL and default.object == "list"
    assert default.data[0].object == "embedding" and default.data[0].index == 0


def test_base64_is_little_endian_float32(server: RunningServer) -> None:
    body = {"model": MODEL, "input": WAVES}
    encoded = post(server, {**body, "encoding_format": "base64"}).json()["data"][0]["embedding"]
    floats = post(server, body).json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert decoded.tolist() == floats


@pytest.mark.parametrize("dimensions", [1, 256, 384, 1000])
def test_dimensions_are_honoured_at_unit_length(client: OpenAI, dimensions: int) -> None:
    response = client.embeddings.create(model=MODEL, input=WAVES, dimensions=dimensions)
    vector = response.data[0].embedding
    assert len(vector) == dimensions
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_a_list_keeps_its_order_and_counts_its_tokens(client: OpenAI) -> None:
    response = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    assert [item.index for item in response.data] == [0, 1, 2]
    for text, item in zip(TEXTS, response.data, strict=True):
        alone = client.embeddings.create(model=MODEL, input=text, encoding_format="float")
        np.testing.assert_allclose(item.embedding, alone.data[0].embedding, atol=1e-6)
    encoder = open_encoder("minilm")
    assert isinstance(encoder, MiniLMEncoder)
    tokens = sum(encoder.count_tokens(TEXTS))
    assert response.usage.prompt_tokens == response.usage.total_tokens == tokens


def test_related_texts_are_closer_than_unrelated_ones(client: OpenAI) -> None:
    texts = ["My sister's wedding is in June.", "My sibling gets married this June.", TEXTS[2]]
    vectors = np.array(
        [d.embedding for d in client.embeddings.create(model=MODEL, input=texts).data]
    )
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_embeddings_do_not_create_memories(client: OpenAI, server: RunningServer) -> None:
    feeling = "My sister Anna is getting married in Lisbon and I'm so nervous about my speech!"
    client.embeddings.create(model=MODEL, input=[feeling, WAVES], user="alice")
    listed = httpx.get(server.base_url + "/memories", headers=AUTH).json()
    assert listed["data"] == []


def test_an_unknown_model_is_the_chat_routes_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.embeddings.create(model="mem8-unknown", input=WAVES)
    assert caught.value.body == {
        "message": "Model 'mem8-unknown' not found",
        "type": "invalid_request_error",
        "param": "model",
        "code": 404,
    }


TOO_LONG = " ".join(["memory"] * 8200)  # one token a word, plus [CLS] and [SEP]
LONG = " ".join(["memory"] * 8000)  # 40 of them are 320,080 tokens: refused before encoding
BAD_BODIES = {
    "no model": ({"input": WAVES}, "model"),
    "no input": ({"model": MODEL}, "input"),
    "empty string": ({"model": MODEL, "input": ""}, "input"),
    "empty list": ({"model": MODEL, "input": []}, "input"),
    "empty string in a list": ({"model": MODEL, "input": [WAVES, ""]}, "input"),
    "a number": ({"model": MODEL, "input": 5}, "input"),
    "a number in a list": ({"model": MODEL, "input": [WAVES, None]}, "input"),
    "no token of cl100k_base": ({"model": MODEL, "input": [1212, 300_000]}, "input"),
    "an empty token list": ({"model": MODEL, "input": [[1212, 318], []]}, "input"),
    "too many inputs": ({"model": MODEL, "input": ["a"] * 2049}, "input"),
    "too many tokens": ({"model": MODEL, "input": TOO_LONG}, "input"),
    "too many in all": ({"model": MODEL, "input": [LONG] * 40}, "input"),
    "zero dimensions": ({"model": MODEL, "input": WAVES, "dimensions": 0}, "dimensions"),
    "too many dimensions": ({"model": MODEL, "input": WAVES, "dimensions": 1537}, "dimensions"),
    "fractional dimensions": ({"model": MODEL, "input": WAVES, "dimensions": 1.5}, "dimensions"),
    "dimensions as text": ({"model": MODEL, "input": WAVES, "dimensions": "8"}, "dimensions"),
    "unknown format": (
        {"model": MODEL, "input": WAVES, "encoding_format": "int8"},
        "encoding_format",
    ),
    "format not text": ({"model": MODEL, "input": WAVES, "encoding_format": 1}, "encoding_format"),
    "user not text": ({"model": MODEL, "input": WAVES, "user": 7}, "user"),
}


@pytest.mark.parametrize(("body", "param"), BAD_BODIES.values(), ids=BAD_BODIES)
def test_a_bad_body_is_a_400_naming_its_field(
    server: RunningServer, body: dict[str, Any], param: str
) -> None:
    response = post(server, body)
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": {
            "message": response.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": param,
            "code": "invalid_request",
        }
    }


def test_encoding_does_not_hold_up_other_requests(server: RunningServer) -> None:
    """A long input encodes on a worker thread (measured ~3 s for 8,000 tokens) while the event
    loop answers others: once every task of the server's loop waits, the long request waiting
    on its thread, a health check is still answered."""

    async def meanwhile() -> None:
        async with httpx.AsyncClient(base_url=server.root, headers=AUTH, timeout=60) as http:
            encoded = trio.Event()

            async def encode() -> None:
                response = await http.post("/v1/embeddings", json={"model": MODEL, "input": LONG})
                assert response.status_code == 200, response.text
                encoded.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(encode)
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)  # it is at the encoder
                assert (await http.get("/health")).text == "OK"
                assert not encoded.is_set()

    trio.from_thread.run(meanwhile, trio_token=server.token)
