"""The senses' whole flows on a system run without HTTP: a file read and kept, a recording heard
and remembered, texts turned into waves. One message each, as the routes send them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import trio

from mem8 import errors
from mem8.actors.messages import (
    Embed,
    Embedded,
    FilePage,
    Heard,
    Listen,
    MemoryPage,
    MemoryQuery,
    Upload,
)
from mem8.actors.runtime import new_request_id
from mem8.config import Settings
from mem8.system import System, open_system

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
NOTES = b"The lighthouse keeper painted the tower red.\n\nHe did it every spring."
NOW = 1_700_000_000.0


@pytest.fixture(params=["objects", "msgpack"])
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """No personas (none is needed to sense), the model-free encoder, no journal."""
    return Settings(
        storage=str(tmp_path / "mem8.db"),
        journal="off",
        encoder="lexical",
        personas={},
        actor_wire=request.param,
    )


def run(settings: Settings, scenario: Callable[[System], Awaitable[None]]) -> None:
    async def main() -> None:
        async with open_system(settings, backends={}) as system:
            await scenario(system)

    trio.run(main)


def upload(purpose: str, content: bytes = NOTES, filename: str = "notes.txt") -> Upload:
    return Upload(new_request_id(), "acme", "ann", "", filename, purpose, content, NOW)


async def memories_of(system: System) -> list[dict[str, object]]:
    page = await system.memory.ask(MemoryQuery(new_request_id(), "acme"), MemoryPage)
    return page.memories


def test_an_upload_is_stored_read_and_kept_as_memories_tied_to_it(settings: Settings) -> None:
    async def scenario(system: System) -> None:
        page = await system.reading.ask(upload("user_data"), FilePage, timeout=math.inf)
        (stored,) = page.files
        assert (stored["status"], stored["bytes"], stored["created_at"]) == (
            "processed",
            len(NOTES),
            math.floor(NOW),
        )
        kept = await memories_of(system)
        assert [m["text"] for m in kept] == [
            "The lighthouse keeper painted the tower red.\n\nHe did it every spring."
        ]
        assert kept[0]["source"] == f"file:{stored['id']}"
        assert (kept[0]["modality"], kept[0]["persona"], kept[0]["created"]) == (
            "document",
            "",
            NOW,
        )

    run(settings, scenario)


def test_a_file_for_a_job_is_stored_but_not_read(settings: Settings) -> None:
    async def scenario(system: System) -> None:
        page = await system.reading.ask(upload("batch"), FilePage, timeout=math.inf)
        assert page.files[0]["status"] == "processed"
        assert await memories_of(system) == []

    run(settings, scenario)


def test_a_file_that_cannot_be_read_is_kept_with_the_reason(settings: Settings) -> None:
    async def scenario(system: System) -> None:
        broken = upload("assistants", b"%PDF-1.7 and nothing else", "broken.pdf")
        page = await system.reading.ask(broken, FilePage, timeout=math.inf)
        assert page.files[0]["status"] == "error" and page.files[0]["status_details"]
        assert await memories_of(system) == []

    run(settings, scenario)


def test_a_recording_is_heard_and_each_segment_remembered_as_heard(settings: Settings) -> None:
    async def scenario(system: System) -> None:
        data = (FIXTURES / "audio" / "jfk.wav").read_bytes()
        listen = Listen(new_request_id(), data, "jfk.wav", "acme", "ann", "mem8-technical-v1", 60)
        heard = await system.hearing.ask(listen, Heard, timeout=math.inf)
        segments = heard.transcript["segments"]
        assert "country" in " ".join(s["text"] for s in segments)
        kept = await memories_of(system)
        assert [m["source"] for m in kept] == [
            f"audio:{listen.request_id}:jfk.wav:segment:{s['id']}" for s in segments
        ]
        assert {(m["modality"], m["persona"], m["user"]) for m in kept} == {
            ("audio", "mem8-technical-v1", "ann")
        }

    run(settings, scenario)


def test_noise_is_refused_by_the_hearing_actor(settings: Settings) -> None:
    async def scenario(system: System) -> None:
        listen = Listen(new_request_id(), b"RIFF, but no", "x.wav", "acme", "ann", "p", 60)
        with pytest.raises(errors.InvalidRequest):
            await system.hearing.ask(listen, Heard, timeout=math.inf)
        assert await memories_of(system) == []

    run(settings, scenario)


def test_embeddings_need_the_semantic_encoder(settings: Settings) -> None:
    async def scenario(system: System) -> None:
        embed = Embed(new_request_id(), ["Lisbon in June."], 8, 8192, 32768)
        with pytest.raises(errors.BackendUnavailable, match="MEM8_ENCODER=mpnet"):
            await system.encoding.ask(embed, Embedded)

    run(settings, scenario)


@pytest.mark.parametrize("limits", [(4, 100), (100, 7)], ids=["per input", "per request"])
def test_embeddings_over_the_token_limits_are_refused_before_encoding(
    settings: Settings, limits: tuple[int, int]
) -> None:
    async def scenario(system: System) -> None:
        embed = Embed(new_request_id(), ["Lisbon in June.", "Porto"], 8, *limits)
        with pytest.raises(errors.InvalidRequest) as refused:
            await system.encoding.ask(embed, Embedded, timeout=math.inf)
        assert refused.value.param == "input"

    run(semantic(settings), scenario)


def test_embeddings_are_unit_waves_one_row_per_text(settings: Settings) -> None:
    async def scenario(system: System) -> None:
        embed = Embed(new_request_id(), ["Lisbon in June.", "Porto"], 16, 8192, 32768)
        embedded = await system.encoding.ask(embed, Embedded, timeout=math.inf)
        waves = np.frombuffer(embedded.waves, "<f4").reshape(2, 16)
        np.testing.assert_allclose(np.linalg.norm(waves, axis=1), 1.0, atol=1e-5)
        assert embedded.tokens > 2

    run(semantic(settings), scenario)


def semantic(settings: Settings) -> Settings:
    """The same settings with the semantic encoder (what /v1/embeddings needs)."""
    return dataclasses.replace(settings, encoder="minilm")
