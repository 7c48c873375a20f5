"""The memory actor's pieces that need no running system: how a recalled memory is shown."""

from __future__ import annotations

import numpy as np

from mem8.actors.memory import recalled_memory
from mem8.actors.messages import Percept
from mem8.memory import Emotion, Memory
from mem8.passages import PASSAGE_CHARS
from mem8.scope import Scope

FILLER = "The quarterly numbers were reviewed line by line and nothing stood out at all. " * 12


def memory(text: str) -> Memory:
    return Memory(
        id="mem-1",
        text=text,
        source="chat:r1:assistant",
        modality="text",
        scope=Scope("t", "u", "p"),
        created=100.0,
        emotion=Emotion(),
        importance=1.0,
        band=0,
        phase=0.0,
        tau=1e6,
        x=1.0,
        y=1.0,
        amplitude=1.0,
        vector=np.zeros(4, np.float32),
    )


def test_a_long_memory_kept_whole_is_recalled_by_its_most_relevant_passage() -> None:
    whole = FILLER + "Priya maintains the billing service, which is written in Go. " + FILLER
    recalled = recalled_memory(memory(whole), "who maintains the billing service?", 0.5, 0.4)
    assert recalled.excerpt is True and len(recalled.text) <= PASSAGE_CHARS
    assert "billing service" in recalled.text
    assert (recalled.source, recalled.superseded_by) == ("chat:r1:assistant", "")


def test_a_short_memory_is_recalled_whole() -> None:
    recalled = recalled_memory(memory("Lisbon in June."), "where?", 0.5, 0.4)
    assert (recalled.text, recalled.excerpt) == ("Lisbon in June.", False)


def test_long_percepts_become_one_percept_per_passage_in_order() -> None:
    long = Percept(FILLER * 2, "audio:1", "audio", 5.0)
    short = Percept("It rained.", "audio:2", "audio", 6.0)
    cut = [passage for percept in [long, short] for passage in percept.passages()]
    assert len(cut) > 3 and cut[-1] == short
    assert all(p.source == "audio:1" and len(p.text) <= PASSAGE_CHARS for p in cut[:-1])
