"""POST /v1/audio/transcriptions through the official client on a live server: real Whisper
transcripts of the fixtures, every response format, limits, and what is heard is remembered."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from tests.senses.test_audio import JFK, normalise, wav, word_error_rate
from tests.support.openapi import violations
from tests.support.server import RunningServer

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "audio"
MODEL = "mem8-technical-v1"
AUTH = {"Authorization": "Bearer mem8-dummy-key"}


def transcribe(server: RunningServer, data: bytes, **fields: str) -> httpx.Response:
    return httpx.post(
        server.base_url + "/audio/transcriptions",
        files={"file": ("speech.wav", data, "audio/wav")},
        data={"model": MODEL, **fields},
        headers=AUTH,
        timeout=60,
    )


def test_the_spec_example_transcribes_jfk(client: OpenAI) -> None:
    with (FIXTURES / "jfk.wav").open("rb") as audio:
        transcript = client.audio.transcriptions.create(model=MODEL, file=audio)
    assert word_error_rate(JFK, transcript.text) <= 0.1, transcript.text


def test_verbose_json_has_segments_and_words_in_openai_shape(client: OpenAI) -> None:
    with (FIXTURES / "english.wav").open("rb") as audio:
        verbose = client.audio.transcriptions.create(
            model=MODEL,
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    body = verbose.model_dump(exclude_unset=True)
    assert not violations("CreateTranscriptionResponseVerboseJson", body)
    assert normalise(verbose.text) == ["one", "two", "three"]
    assert [normalise(w.word)[0] for w in verbose.words or []] == ["one", "two", "three"]
    assert verbose.duration == pytest.approx(2.745, abs=0.01)
    assert verbose.segments and verbose.segments[0].start < verbose.segments[-1].end


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_text_formats(server: RunningServer, fmt: str) -> None:
    response = transcribe(server, (FIXTURES / "english.wav").read_bytes(), response_format=fmt)
    assert response.status_code == 200, response.text
    body = response.text
    assert normalise(body.split("\n")[-2] if fmt != "text" else body) == ["one", "two", "three"]
    if fmt == "srt":
        assert body.startswith("1\n00:00:0") and " --> " in body and "," in body.split("\n")[1]
    if fmt == "vtt":
        assert body.startswith("WEBVTT\n\n00:00:0") and "." in body.split("\n")[2]


def test_what_is_heard_is_remembered_and_recalled_in_a_later_chat(
    server: RunningServer, llm: ScriptedLLM
) -> None:
    response = transcribe(server, (FIXTURES / "jfk.wav").read_bytes(), user="ann")
    assert response.status_code == 200, response.text
    memories = httpx.get(
        server.base_url + "/memories", params={"modality": "audio", "user": "ann"}, headers=AUTH
    ).json()["data"]
    assert memories and all(m["persona"] == MODEL for m in memories)
    assert "fellow Americans" in " ".join(m["text"] for m in memories)
    llm.enqueue(["Ask what you can do."])
    chat = {
        "model": MODEL,
        "user": "ann",
        "messages": [{"role": "user", "content": "What did the speech say about our country?"}],
    }
    answer = httpx.post(server.base_url + "/chat/completions", json=chat, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    assert "your country" in llm.history[-1].messages[0].content


def test_silence_is_an_empty_transcript_and_no_memory(server: RunningServer) -> None:
    silence = wav(np.zeros(16_000 * 3, np.int16))
    response = transcribe(server, silence, user="quiet")
    assert response.status_code == 200, response.text
    assert response.json()["text"] == ""
    listed = httpx.get(server.base_url + "/memories", params={"user": "quiet"}, headers=AUTH)
    assert listed.json()["data"] == []


ERRORS = {
    "unknown persona": ({"model": "mem8-x"}, b"jfk", 404, "model"),
    "no model": ({"model": ""}, b"jfk", 400, "model"),
    "garbage": ({}, bytes(range(256)) * 10, 400, "file"),
    "empty": ({}, b"", 400, "file"),
    "bad format": ({"response_format": "xml"}, b"jfk", 400, "response_format"),
    "words without verbose": ({"timestamp_granularities[]": "word"}, b"jfk", 400, None),
    "temperature": ({"temperature": "3"}, b"jfk", 400, "temperature"),
    "german": ({"language": "de"}, b"jfk", 400, "language"),
}


@pytest.mark.parametrize(("fields", "data", "status", "param"), ERRORS.values(), ids=ERRORS)
def test_bad_requests_are_openai_errors(
    server: RunningServer, fields: dict[str, str], data: bytes, status: int, param: str | None
) -> None:
    if data == b"jfk":
        data = (FIXTURES / "jfk.wav").read_bytes()
    response = transcribe(server, data, **fields)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and (param is None or error["param"] == param)


def test_more_than_25_mb_is_413(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.audio.transcriptions.create(model=MODEL, file=("big.wav", bytes(26 << 20)))
    assert raised.value.status_code == 413


def test_a_json_body_is_a_clear_415(server: RunningServer) -> None:
    response = httpx.post(
        server.base_url + "/audio/transcriptions", json={"model": MODEL}, headers=AUTH
    )
    assert response.status_code == 415  # the media type is wrong, as for a JSON route
    assert "multipart/form-data" in response.json()["error"]["message"]
