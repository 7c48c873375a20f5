"""The edge through a live server: hostile text and numbers, oversized headers, foreign Hosts
and browser origins, and wrong content types are refused in the one error shape, before any
actor sees them; the official client and curl-style requests still pass."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from tests.support.server import RunningServer, running_server

MODEL = "mem8-creative-v1"
AUTH = {"Authorization": "Bearer mem8-dummy-key"}
JSON = {**AUTH, "Content-Type": "application/json"}
APP_ORIGIN = "http://app.example:3000"


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.root, timeout=30) as client:
        yield client


def refused(response: httpx.Response, status: int, code: str, param: str | None = None) -> str:
    """Checks the OpenAI error shape; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] == code, error
    assert error["param"] == param, error
    message: str = error["message"]
    return message


def raw_json(http: httpx.Client, path: str, text: str) -> httpx.Response:
    """Posts text as it is: json.dumps would not write Infinity or 5,000 digits for us."""
    return http.post(path, content=text.encode(), headers=JSON)


def chat_body(content: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


LONE_SURROGATES = [
    ("/v1/memories/search", {"query": "\ud800"}, "query"),
    ("/v1/memories/search", {"query": "hello", "user": "\udcff"}, "user"),
    ("/v1/chat/completions", chat_body("\ud800"), "messages[0].content"),
    ("/v1/chat/completions", chat_body(user="\udcff"), "user"),
    ("/v1/chat/completions", chat_body(metadata={"note": "\ud800"}), "metadata.note"),
    ("/v1/embeddings", {"model": MODEL, "input": "\ud800"}, "input"),
    ("/v1/embeddings", {"model": MODEL, "input": ["fine", "\udcff"]}, "input[1]"),
]


@pytest.mark.parametrize(("path", "body", "param"), LONE_SURROGATES)
def test_a_lone_surrogate_anywhere_is_a_400_naming_its_field(
    http: httpx.Client, path: str, body: dict[str, Any], param: str
) -> None:
    message = refused(raw_json(http, path, json.dumps(body)), 400, "invalid_request", param)
    assert "surrogate" in message


@pytest.mark.parametrize(
    ("path", "text", "param"),
    [
        (
            "/v1/chat/completions",
            '{"model": "m", "messages": [], "max_tokens": 9' + "9" * 4999 + "}",
            "max_tokens",
        ),
        ("/v1/memories/search", '{"query": "hello", "limit": Infinity}', "limit"),
        ("/v1/memories/search", '{"query": "hello", "limit": NaN}', "limit"),
        ("/v1/memories/search", '{"query": "hello", "limit": 1e400}', "limit"),
        (
            "/v1/chat/completions",
            '{"model": "m", "messages": [], "temperature": -Infinity}',
            "temperature",
        ),
        ("/v1/embeddings", '{"model": "m", "input": "x", "dimensions": 1e999}', "dimensions"),
    ],
)
def test_numbers_json_cannot_hold_are_a_400_naming_the_param(
    http: httpx.Client, path: str, text: str, param: str
) -> None:
    refused(raw_json(http, path, text), 400, "invalid_request", param)


def test_a_lone_surrogate_in_a_streaming_chat_is_refused_before_the_stream(
    http: httpx.Client,
) -> None:
    body = json.dumps(chat_body("\ud800", stream=True))
    refused(
        raw_json(http, "/v1/chat/completions", body), 400, "invalid_request", "messages[0].content"
    )


def test_after_hostile_text_the_journal_and_memory_still_serve(
    http: httpx.Client, client: OpenAI, llm: ScriptedLLM
) -> None:
    for _ in range(8):  # more than the supervisor's 5 restarts a minute, had they crashed
        raw_json(http, "/v1/chat/completions", json.dumps(chat_body("\ud800")))
        raw_json(http, "/v1/memories/search", json.dumps({"query": "\ud800"}))
    llm.enqueue(["Still here."])
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}]
    )
    assert answer.choices[0].message.content == "Still here."
    assert http.get("/health").text == "OK"


def multipart(disposition: bytes, value: bytes) -> tuple[bytes, dict[str, str]]:
    """A form with purpose, one more part as given, and a file: bytes no client would write."""
    parts = [
        b'Content-Disposition: form-data; name="purpose"\r\n\r\nassistants',
        b"Content-Disposition: form-data; " + disposition + b"\r\n\r\n" + value,
    ]
    if b"filename" not in disposition:
        parts.append(b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhi')
    body = b"".join(b"--XyZ\r\n" + part + b"\r\n" for part in parts) + b"--XyZ--\r\n"
    return body, {**AUTH, "Content-Type": "multipart/form-data; boundary=XyZ"}


@pytest.mark.parametrize(
    ("disposition", "value"),
    [
        (b'name="user"', b"\xed\xa0\x80"),  # a surrogate's UTF-8-style bytes
        (b'name="user"', b"\xff\xfe"),
        (b"name=\"file\"; filename*=UTF-8''%ED%A0%80.txt", b"hi"),
        (b'name="file"; filename="\xed\xb3\xbf.txt"', b"hi"),
    ],
)
def test_invalid_text_in_a_form_is_a_400_or_replaced_never_a_500(
    http: httpx.Client, disposition: bytes, value: bytes
) -> None:
    body, headers = multipart(disposition, value)
    response = http.post("/v1/files", content=body, headers=headers)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:  # werkzeug decoded it with replacement characters
        json.dumps(response.json(), ensure_ascii=False).encode()  # storable, valid text
    assert http.get("/health").text == "OK"


def test_a_header_of_invalid_utf8_is_no_500(http: httpx.Client, llm: ScriptedLLM) -> None:
    llm.enqueue(["Hi."])
    headers = {**JSON, "x-mem8-conversation": b"\xed\xa0\x80\xff"}  # type: ignore[dict-item]
    answer = http.post("/v1/chat/completions", content=json.dumps(chat_body()), headers=headers)
    assert answer.status_code == 200, answer.text


def test_a_64_kb_header_is_a_431_in_the_error_shape(http: httpx.Client) -> None:
    response = http.get("/v1/models", headers={"x-padding": "a" * 65536})
    refused(response, 431, "request_header_fields_too_large")


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8420", "127.0.0.2.nip.io"])
def test_an_unknown_host_is_refused_on_loopback(http: httpx.Client, host: str) -> None:
    refused(http.get("/v1/models", headers={"Host": host}), 400, "host_not_allowed")


@pytest.mark.parametrize("host", ["localhost", "localhost:8420", "127.0.0.1:1", "[::1]:8420"])
def test_the_loopback_names_are_served_with_any_port(http: httpx.Client, host: str) -> None:
    assert http.get("/v1/models", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    ("content_type", "path"),
    [
        ("text/plain", "/v1/chat/completions"),
        ("application/x-www-form-urlencoded", "/v1/chat/completions"),
        ("text/plain;charset=UTF-8", "/v1/embeddings"),
        (None, "/v1/memories/search"),
    ],
)
def test_a_json_route_requires_a_json_content_type(
    http: httpx.Client, content_type: str | None, path: str
) -> None:
    headers = dict(AUTH) if content_type is None else {**AUTH, "Content-Type": content_type}
    body = json.dumps({**chat_body(), "input": "x", "query": "x"}).encode()
    refused(http.post(path, content=body, headers=headers), 415, "unsupported_media_type")


def test_json_with_a_charset_is_accepted(http: httpx.Client, llm: ScriptedLLM) -> None:
    llm.enqueue(["Fine."])
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    answer = http.post("/v1/chat/completions", content=json.dumps(chat_body()), headers=headers)
    assert answer.status_code == 200, answer.text


def test_a_multipart_route_requires_a_form(http: httpx.Client) -> None:
    body = json.dumps({"purpose": "assistants"})
    for path in ("/v1/files", "/v1/audio/transcriptions"):
        response = http.post(path, content=body, headers=JSON)
        refused(response, 415, "unsupported_media_type")


def test_a_foreign_origin_is_refused_and_gets_no_cors_headers(
    http: httpx.Client, llm: ScriptedLLM
) -> None:
    # what a page elsewhere can send without a preflight: text/plain JSON, a multipart upload
    origin = {"Origin": "http://evil.example"}
    chat = json.dumps(chat_body()).encode()
    response = http.post(
        "/v1/chat/completions", content=chat, headers={**origin, "Content-Type": "text/plain"}
    )
    refused(response, 403, "origin_not_allowed")
    upload = http.post(
        "/v1/files", files={"file": ("a.txt", b"x")}, data={"purpose": "batch"}, headers=origin
    )
    refused(upload, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in upload.headers
    preflight = http.options(
        "/v1/chat/completions",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    refused(preflight, 403, "origin_not_allowed")
    assert llm.history == []


@pytest.fixture
def cors_server(settings: Settings, llm: ScriptedLLM) -> Iterator[RunningServer]:
    configured = dataclasses.replace(settings, cors_origins=APP_ORIGIN, allowed_hosts="mem8.lan")
    with running_server(configured, dict.fromkeys(configured.personas, llm)) as running:
        yield running


def test_a_configured_origin_gets_its_preflight_and_cors_headers(
    cors_server: RunningServer, llm: ScriptedLLM
) -> None:
    with httpx.Client(base_url=cors_server.root, timeout=30) as http:
        preflight = http.options(
            "/v1/chat/completions",
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204, preflight.text
        assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
        llm.enqueue(["Hi."])
        answer = http.post(
            "/v1/chat/completions", json=chat_body(), headers={**AUTH, "Origin": APP_ORIGIN}
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "x-mem8-interest" in answer.headers["access-control-expose-headers"]
        assert "Origin" in answer.headers["vary"]
        error = http.post("/v1/chat/completions", content=b"{}", headers={"Origin": APP_ORIGIN})
        assert (
            error.status_code == 415 and error.headers["access-control-allow-origin"] == APP_ORIGIN
        )
        assert http.get("/v1/models", headers={"Host": "mem8.lan:8420"}).status_code == 200
        assert http.get("/v1/models", headers={"Host": "evil.example"}).status_code == 400


def test_an_assistant_turn_with_null_content_is_accepted_as_empty(
    client: OpenAI, llm: ScriptedLLM, server: RunningServer
) -> None:
    llm.enqueue(["Done."])
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "Look it up"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "And now?"},
        ],
    )
    assert answer.choices[0].message.content == "Done."
    sent = [m.content for m in llm.history[-1].messages]
    assert "None" not in sent
    listed = httpx.get(server.base_url + "/memories", headers=AUTH, timeout=30).json()["data"]
    assert all(m["text"] != "None" for m in listed)


def test_expires_after_on_an_upload_is_refused_not_ignored(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.files.create(
            file=("a.txt", b"hello"),
            purpose="assistants",
            expires_after={"anchor": "created_at", "seconds": 3600},
        )
    assert raised.value.body["param"] == "expires_after"  # type: ignore[index]


def test_a_kept_alive_connection_survives_refusals_before_the_body_is_read(
    server: RunningServer,
) -> None:
    """An unknown route and a wrong method are refused before their bodies are read; the
    next request on the same client still gets its answer (a kept-alive connection with an
    unread body hung it, 10 times in 60)."""
    with httpx.Client(base_url=server.root, timeout=10) as client:
        for i in range(40):
            body = {"model": "mem8-creative-v1", "input": "x" * (i * 97 % 5000)}
            assert client.post("/v1/no-such-route", json=body).status_code == 404
            assert client.put("/v1/models", json=body).status_code in (404, 405)
            assert client.get("/v1/models").status_code == 200
