"""A store follows the encoder: another encoder's memories are encoded again before a server
starts on them, and a reader beside a server refuses them instead."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.encoders import open_encoder
from mem8.errors import ConfigError
from mem8.grid.placement import Placer
from mem8.reencoding import check_encoder, follow_encoder, made_by
from mem8.storage.sqlite import ENCODER_STATE, GRID_STATE, MemoryStore
from mem8.system import open_system
from tests.support.server import running_server

FACTS = [
    "My sister Anna is getting married in Lisbon in June.",
    "I adopted a grey cat called Miso last spring.",
    "The billing service is written in Go and leaks goroutines.",
]
PERSONA = "mem8-counselor-v1"


def remember_with(settings: Settings, encoder: str) -> None:
    """A server with `encoder` keeps FACTS as memories, then stops (saving its field)."""
    llm = ScriptedLLM()
    keeper = dataclasses.replace(settings.personas[PERSONA], interest_threshold=0.0)
    personas = {**settings.personas, PERSONA: keeper}  # remembers everything it is told
    served = dataclasses.replace(settings, encoder=encoder, personas=personas)
    with (
        running_server(served, dict.fromkeys(served.personas, llm)) as server,
        OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        for fact in FACTS:
            client.chat.completions.create(
                model=PERSONA, messages=[{"role": "user", "content": fact}]
            )


def stored(settings: Settings) -> MemoryStore:
    return MemoryStore.open(Path(settings.storage))


def test_a_server_with_another_encoder_encodes_the_memories_again(settings: Settings) -> None:
    remember_with(settings, "lexical")
    with stored(settings) as store:
        assert store.vector_sizes() == {256}
        assert store.get_state(ENCODER_STATE) == b"lexical-hash"
        assert store.get_state(GRID_STATE) is not None
        before = store.stats().memories
    llm = ScriptedLLM()
    settings = dataclasses.replace(settings, encoder="minilm")
    with (
        running_server(settings, dict.fromkeys(settings.personas, llm)) as server,
        OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        found = client.post(
            "/memories/search",
            body={"query": "Who is getting married abroad?", "limit": 1},
            cast_to=object,
        )
    assert "Lisbon" in found["data"][0]["text"]  # type: ignore[index]
    with stored(settings) as store:
        assert store.vector_sizes() == {384}
        assert store.get_state(ENCODER_STATE) == b"all-MiniLM-L6-v2-int8"
        assert store.stats().memories == before


def test_encoding_again_re_centres_and_drops_the_saved_field(tmp_path: Path) -> None:
    settings = Settings(storage=str(tmp_path / "m.db"), journal="off")
    remember_with(settings, "lexical")
    minilm = open_encoder("minilm")
    with stored(settings) as store:
        old = {m.id: (m.phase, m.text) for m in store.iter_all()}
        assert follow_encoder(store, minilm, Placer(384, settings.grid_size)) == len(old)
        assert store.get_state(GRID_STATE) is None
        placer = Placer(384, settings.grid_size)
        for memory in store.iter_all():
            phase, text = old[memory.id]
            assert (memory.text, memory.phase) == (text, phase)  # binding's phases are kept
            centre = placer.place(minilm.embed(text), text, "text")
            assert (memory.x, memory.y) == pytest.approx((centre.x, centre.y))
        assert follow_encoder(store, minilm, placer) == 0  # once is enough


def test_a_store_from_before_the_encoder_was_named_is_taken_as_is(tmp_path: Path) -> None:
    settings = Settings(storage=str(tmp_path / "m.db"), journal="off")
    remember_with(settings, "minilm")
    with stored(settings) as store:
        store.delete_states([ENCODER_STATE])
        minilm = open_encoder("minilm")
        assert made_by(store, minilm)
        assert not made_by(store, open_encoder("lexical"))
        assert follow_encoder(store, minilm, Placer(384, settings.grid_size)) == 0
        assert store.get_state(ENCODER_STATE) == b"all-MiniLM-L6-v2-int8"


def test_a_reader_beside_a_server_refuses_another_encoder_s_store(tmp_path: Path) -> None:
    settings = Settings(storage=str(tmp_path / "m.db"), journal="off")
    remember_with(settings, "lexical")
    with stored(settings) as store, pytest.raises(ConfigError, match="lexical-hash"):
        check_encoder(store, open_encoder("minilm"))

    async def headless() -> None:
        async with open_system(settings, backends={}, journal=False, persist=False):
            pass

    with pytest.raises(ConfigError, match="encode them again"):
        trio.run(headless)
    with stored(settings) as store:
        assert store.vector_sizes() == {256}  # untouched
