"""The Files API through the official client on a live server: uploads are stored, read into
memory (the fixtures' known text), scoped to their caller, recalled in chat and forgotten when
deleted; a hostile upload ends as a file in error and the server keeps serving."""

from __future__ import annotations

import io
import random
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
import trio
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.replay import replay
from tests.senses import hostile
from tests.senses.test_documents import drawn
from tests.support.openapi import violations
from tests.support.server import RunningServer, running_server

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
PERSONA = "mem8-technical-v1"
AUTH = {"Authorization": "Bearer mem8-dummy-key"}  # the tenant the `client` fixture is


def memories(server: RunningServer, **params: str) -> list[dict[str, object]]:
    listed = httpx.get(server.base_url + "/memories", params=params, headers=AUTH, timeout=30)
    assert listed.status_code == 200, listed.text
    data: list[dict[str, object]] = listed.json()["data"]
    return data


def ask(server: RunningServer, llm: ScriptedLLM, question: str, model: str) -> str:
    """The system prompt the persona's LLM got for this question: what was recalled."""
    llm.enqueue(["Noted."])
    body = {"model": model, "messages": [{"role": "user", "content": question}]}
    answer = httpx.post(server.base_url + "/chat/completions", json=body, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    return llm.history[-1].messages[0].content


def test_a_pdf_is_stored_read_into_memory_and_served_back(
    client: OpenAI, server: RunningServer
) -> None:
    data = (FIXTURES / "pdf" / "crazyones.pdf").read_bytes()
    uploaded = client.files.create(file=("crazyones.pdf", data), purpose="assistants")
    assert uploaded.status == "processed" and uploaded.bytes == len(data)
    assert uploaded.filename == "crazyones.pdf" and uploaded.id.startswith("file-")
    assert not violations("OpenAIFile", uploaded.model_dump(exclude_unset=True))
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).content == data
    kept = memories(server, modality="document")
    text = " ".join(str(m["text"]) for m in kept)
    assert "Heres to the crazy ones" in text  # the fixture has no apostrophe
    assert all(m["persona"] == "" for m in kept)  # no model: every persona's


def test_office_fixtures_come_out_with_their_known_text(
    client: OpenAI, server: RunningServer
) -> None:
    for path, expected in (
        (FIXTURES / "docx" / "test.docx", "python-docx was here too!"),
        (FIXTURES / "docx" / "par-hyperlinks.docx", "One awesome hyperlink."),
        (FIXTURES / "xlsx" / "utf8.xlsx", "Здравствуйте, Russian language"),
    ):
        uploaded = client.files.create(file=(path.name, path.read_bytes()), purpose="user_data")
        assert uploaded.status == "processed", uploaded.status_details
        assert expected in " ".join(str(m["text"]) for m in memories(server)), path.name


def test_a_file_without_a_model_is_recalled_by_every_persona_and_with_one_only_by_it(
    client: OpenAI, server: RunningServer, llm: ScriptedLLM
) -> None:
    shared = b"The staging cluster's admin password rotates every Tuesday at 09:00."
    bound = b"Project Heron ships its beta to the Oslo office on March 14."
    client.files.create(file=("ops.txt", shared), purpose="assistants")
    client.files.create(
        file=("heron.md", bound), purpose="assistants", extra_body={"model": PERSONA}
    )
    for persona in (PERSONA, "mem8-creative-v1"):
        assert "Tuesday at 09:00" in ask(
            server, llm, "When does the admin password rotate?", persona
        )
    assert "Oslo" in ask(server, llm, "When does Project Heron ship its beta?", PERSONA)
    assert "Oslo" not in ask(
        server, llm, "When does Project Heron ship its beta?", "mem8-creative-v1"
    )


def test_deleting_a_file_forgets_its_memories(
    client: OpenAI, server: RunningServer, llm: ScriptedLLM
) -> None:
    uploaded = client.files.create(
        file=("note.txt", b"The spare key hides under the blue flowerpot."), purpose="assistants"
    )
    assert "flowerpot" in ask(server, llm, "Where is the spare key?", PERSONA)
    deleted = client.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    assert memories(server) == []
    assert "flowerpot" not in ask(server, llm, "Where is the spare key?", PERSONA)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_callers_see_only_their_own_files(client: OpenAI, server: RunningServer) -> None:
    mine = client.files.create(file=("a.txt", b"mine"), purpose="assistants")
    with OpenAI(base_url=server.base_url, api_key="someone-else", max_retries=0) as other:
        theirs = other.files.create(file=("b.txt", b"theirs"), purpose="assistants")
        assert [f.id for f in other.files.list()] == [theirs.id]
        for call in (other.files.retrieve, other.files.delete, other.files.content):
            with pytest.raises(openai.NotFoundError):
                call(mine.id)
    assert [f.id for f in client.files.list()] == [mine.id]


def test_listing_pages_by_creation_with_purpose_filter(client: OpenAI) -> None:
    made = [client.files.create(file=(f"{i}.jsonl", b"{}\n"), purpose="batch").id for i in range(3)]
    client.files.create(file=("x.txt", b"text"), purpose="assistants")
    page = client.files.list(purpose="batch", limit=2, order="asc")
    assert [f.id for f in page.data] == made[:2] and page.has_more
    rest = client.files.list(purpose="batch", limit=2, order="asc", after=made[1])
    assert [f.id for f in rest.data] == made[2:]
    assert [f.id for f in client.files.list(purpose="batch")] == made[::-1]
    assert not violations("ListFilesResponse", page.model_dump(exclude_unset=True))
    deleted = client.files.delete(made[0])
    assert not violations("DeleteFileResponse", deleted.model_dump(exclude_unset=True))


def test_a_zip_bomb_posing_as_docx_is_a_file_in_error_and_the_server_keeps_serving(
    client: OpenAI, server: RunningServer
) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", bytes(300 << 20))
    uploaded = client.files.create(file=("report.docx", bomb.getvalue()), purpose="assistants")
    assert uploaded.status == "error" and uploaded.status_details
    assert memories(server) == []
    assert httpx.get(server.root + "/health").text == "OK"


ERRORS = {
    "no purpose": ({}, 400, "purpose"),
    "bad purpose": ({"purpose": "memories"}, 400, "purpose"),
    "unknown persona": ({"purpose": "assistants", "model": "mem8-x"}, 404, "model"),
}


@pytest.mark.parametrize(("fields", "status", "param"), ERRORS.values(), ids=ERRORS)
def test_bad_uploads_are_openai_errors(
    server: RunningServer, fields: dict[str, str], status: int, param: str
) -> None:
    response = httpx.post(
        server.base_url + "/files", files={"file": ("a.txt", b"hi")}, data=fields, headers=AUTH
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_an_empty_file_is_a_file_in_error(client: OpenAI) -> None:
    uploaded = client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert uploaded.status == "error" and "empty" in (uploaded.status_details or "")


def test_an_unknown_file_is_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nope")


def test_an_image_is_read_by_ocr_and_kept_as_a_visual_memory(
    client: OpenAI, server: RunningServer
) -> None:
    uploaded = client.files.create(file=("note.png", drawn("Meeting at noon")), purpose="vision")
    assert uploaded.status == "processed", uploaded.status_details
    kept = memories(server, modality="image")
    texts = [str(m["text"]) for m in kept]
    assert texts[0].startswith("A PNG image, 900 x 220 pixels")
    assert "Meeting at noon" in " ".join(texts[1:])


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


HOSTILE = {
    "docx zip bomb": ("report.docx", lambda: hostile.office_bomb("docx", 1024)),
    "xlsx zip bomb": ("sheet.xlsx", lambda: hostile.office_bomb("xlsx", 1024, declared=4096)),
    "billion laughs": ("lol.xml", hostile.billion_laughs),
    "external entity": ("secret.xml", hostile.external_entity),
    "pdf stream bomb": ("bomb.pdf", hostile.pdf_bomb),
    "30000x30000 png": ("huge.png", lambda: hostile.png_declaring(30000, 30000)),
    "truncated pdf": (
        "t.pdf",
        lambda: _truncated((FIXTURES / "pdf" / "crazyones.pdf").read_bytes()),
    ),
    "truncated docx": (
        "t.docx",
        lambda: _truncated((FIXTURES / "docx" / "test.docx").read_bytes()),
    ),
    "truncated xlsx": (
        "t.xlsx",
        lambda: _truncated((FIXTURES / "xlsx" / "utf8.xlsx").read_bytes()),
    ),
    "truncated png": ("t.png", lambda: _truncated(drawn("cut"))),
    "random bytes as pdf": ("r.pdf", lambda: random.Random(1).randbytes(4096)),
    "random bytes as docx": ("r.docx", lambda: random.Random(2).randbytes(4096)),
    "random bytes as png": ("r.png", lambda: random.Random(3).randbytes(4096)),
    "random bytes as txt": ("r.txt", lambda: random.Random(4).randbytes(4096)),
    "a zip as json": ("data.json", lambda: hostile.office_bomb("docx", 1)),
    "deep json": ("deep.json", lambda: hostile.nested_json(200_000)),
    "deep xml": ("deep.xml", lambda: hostile.nested_xml(200_000)),
    "deep html": ("deep.html", lambda: hostile.nested_html(200_000)),
}


@pytest.mark.parametrize(("filename", "build"), HOSTILE.values(), ids=HOSTILE)
def test_hostile_uploads_end_in_error_quickly_and_the_server_keeps_serving(
    server: RunningServer, filename: str, build: Callable[[], bytes]
) -> None:
    started = time.monotonic()
    response = httpx.post(
        server.base_url + "/files",
        files={"file": (filename, build())},
        data={"purpose": "assistants"},
        headers=AUTH,
        timeout=120,
    )
    assert time.monotonic() - started < 60
    if response.status_code == 200:
        uploaded = response.json()
        assert uploaded["status"] == "error" and uploaded["status_details"], uploaded
        assert "Traceback" not in uploaded["status_details"]
    else:
        assert response.status_code in (400, 413), response.text
    assert "root:" not in " ".join(str(m["text"]) for m in memories(server))
    assert httpx.get(server.root + "/health").text == "OK"


def test_uploads_transcripts_and_deletions_replay_identically(settings: Settings) -> None:
    llm = ScriptedLLM()
    with (
        running_server(settings, dict.fromkeys(settings.personas, llm)) as server,
        OpenAI(base_url=server.base_url, api_key="key-a", max_retries=0) as client,
    ):
        kept = client.files.create(
            file=("plan.md", b"# Plan\n\nThe launch moves to Friday."), purpose="assistants"
        )
        gone = client.files.create(
            file=("old.txt", b"The launch was on Monday."),
            purpose="assistants",
            extra_body={"model": PERSONA},
        )
        with (FIXTURES / "audio" / "english.wav").open("rb") as speech:
            client.audio.transcriptions.create(model=PERSONA, file=speech)
        client.files.delete(gone.id)
        llm.enqueue(["Friday."])
        client.chat.completions.create(
            model=PERSONA, messages=[{"role": "user", "content": "When is the launch?"}]
        )
        assert "Friday" in llm.history[-1].messages[0].content
        assert client.files.retrieve(kept.id).status == "processed"
    report = trio.run(replay, Path(settings.storage + ".journal"))
    assert report.problems == [] and report.mismatches == []
    assert report.state_matched is True


def test_a_persona_search_finds_a_file_shared_with_every_persona(
    client: OpenAI, server: RunningServer
) -> None:
    client.files.create(file=("door.txt", b"The back door code is 4417."), purpose="assistants")
    found = httpx.post(
        server.base_url + "/memories/search",
        json={"query": "back door code", "persona": PERSONA},
        headers=AUTH,
        timeout=30,
    )
    assert found.status_code == 200, found.text
    assert "4417" in " ".join(m["text"] for m in found.json()["data"])
