"""The semantic encoder: stable vectors, batching that changes nothing, long texts read whole,
and meaning that shows in the cosines (paraphrases, and real LoCoMo turns found by question)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mem8.encoders import open_encoder
from mem8.encoders.minilm import MAX_TOKENS, WINDOW, MiniLMEncoder, _windows

# In CI the repository is cloned with shared/ beside it: /work/main and /work/shared here.
LOCOMO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "locomo"
SENTENCES = [
    "The cat sat on the mat.",
    "My sister Anna is getting married in Lisbon on June 3rd.",
    "Quarterly revenue grew by twelve percent, driven by cloud services.",
    "ok",
    "How do I reset my router when the lights keep blinking orange?",
]


@pytest.fixture(scope="module")
def encoder() -> Iterator[MiniLMEncoder]:
    opened = open_encoder("minilm")
    assert isinstance(opened, MiniLMEncoder)
    yield opened


def long_text(words: int) -> str:
    """A text of many distinct tokens (one word piece each: small numbers are in the vocabulary)."""
    return " ".join(str(i % 100) for i in range(words))


def test_vectors_are_unit_rows_and_do_not_change(encoder: MiniLMEncoder) -> None:
    first = encoder.embed_batch(SENTENCES)
    assert first.shape == (len(SENTENCES), 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(first, encoder.embed_batch(SENTENCES))  # from the cache
    assert np.array_equal(first, encoder.encode_fresh(SENTENCES))


def test_a_batch_gives_the_vectors_of_one_text_at_a_time(encoder: MiniLMEncoder) -> None:
    # More texts than one model batch holds, of very different lengths, one spanning 3 windows.
    texts = [*SENTENCES * 8, long_text(600), "", "a " * 40]
    batched = encoder.encode_fresh(texts)
    alone = np.concatenate([encoder.encode_fresh([text]) for text in texts])
    assert np.abs(batched - alone).max() < 1e-5


def test_windows_frame_every_piece_once_in_order() -> None:
    cls, sep = 101, 102
    pieces = list(range(1000, 1000 + 2 * WINDOW + 3))
    windows = _windows([cls, *pieces, sep])
    assert [len(w) for w in windows] == [MAX_TOKENS, MAX_TOKENS, 5]
    assert all(w[0] == cls and w[-1] == sep for w in windows)
    assert [p for w in windows for p in w[1:-1]] == pieces
    assert _windows([cls, sep]) == [[cls, sep]]


def test_a_long_text_is_counted_and_read_to_its_end(encoder: MiniLMEncoder) -> None:
    first_window = long_text(WINDOW)
    assert encoder.count_tokens([first_window]) == [MAX_TOKENS]
    ending = "My sister Anna is getting married in Lisbon and I am nervous about my speech."
    text = f"{first_window} {ending} {ending}"
    assert encoder.count_tokens([text]) == [MAX_TOKENS + 32]
    wedding = encoder.embed(SENTENCES[1])
    # Cut at 256 tokens, the text would be its first window alone; read to its end, the ending
    # pulls it towards its meaning (measured: cosine 0.10 -> 0.21).
    assert wedding @ encoder.embed(text) > wedding @ encoder.embed(first_window) + 0.07


def test_repeating_a_whole_window_changes_nothing(encoder: MiniLMEncoder) -> None:
    """Two identical windows average to the one: the weights are the windows' token counts."""
    once = long_text(WINDOW)
    np.testing.assert_allclose(encoder.embed(f"{once} {once}"), encoder.embed(once), atol=1e-5)


PARAPHRASES = [
    ("The cat sat on the mat.", "A cat was sitting on the rug."),
    ("How do I reset my router?", "What's the way to restart my wifi box?"),
    ("My sister is getting married in June.", "My sibling's wedding is this June."),
    ("The stock market fell sharply today.", "Share prices dropped steeply today."),
    ("I love hiking in the mountains.", "Walking in the hills is my favourite thing."),
]


@pytest.mark.parametrize(("sentence", "paraphrase"), PARAPHRASES)
def test_a_paraphrase_is_closer_than_any_unrelated_sentence(
    encoder: MiniLMEncoder, sentence: str, paraphrase: str
) -> None:
    others = [p for s, p in PARAPHRASES if s != sentence]
    vector = encoder.embed(sentence)
    closest_other = max(vector @ encoder.embed_batch(others).T)
    assert vector @ encoder.embed(paraphrase) > closest_other + 0.1


def locomo_conversation() -> dict[str, Any]:
    path = LOCOMO / "locomo-dev5.json"
    if not path.is_file():
        raise FileNotFoundError(f"LoCoMo is missing: expected {path} (shared/ beside the repo)")
    sample: dict[str, Any] = json.loads(path.read_text())[0]
    return sample


def test_a_question_finds_its_evidence_turn(encoder: MiniLMEncoder) -> None:
    """Each single-hop question of LoCoMo's first conversation against all its ~400 turns;
    chance would put the evidence in the top 10 for 2.4% of them. Measured: 22% first, 51% in the
    top 10."""
    sample = locomo_conversation()
    sessions = [v for k, v in sample["conversation"].items() if re.fullmatch(r"session_\d+", k)]
    turns = [turn for session in sessions for turn in session]
    ids = [turn["dia_id"] for turn in turns]
    single_hop = [
        qa
        for qa in sample["qa"]
        if qa["category"] == 4 and len(qa["evidence"]) == 1 and qa["evidence"][0] in ids
    ]
    asked = encoder.embed_batch([qa["question"] for qa in single_hop])
    told = encoder.embed_batch([f"{turn['speaker']}: {turn['text']}" for turn in turns])
    evidence = np.array([ids.index(qa["evidence"][0]) for qa in single_hop])
    scores = asked @ told.T
    ranks = (scores > scores[np.arange(len(evidence)), evidence][:, None]).sum(axis=1) + 1
    assert len(ranks) >= 30
    assert np.mean(ranks == 1) >= 0.15
    assert np.mean(ranks <= 10) >= 0.4
