"""The MPNet encoder: torch's vectors to within float rounding, batching that changes nothing, long
texts read whole, meaning in the cosines, and a build that is checked before it is loaded."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mem8 import errors
from mem8.encoders import mpnet, open_encoder
from mem8.encoders.mpnet import MAX_TOKENS, WINDOW, MPNetEncoder, relative_buckets
from tests.encoders.test_minilm import PARAPHRASES, SENTENCES, locomo_conversation, long_text

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "mpnet-reference.json"


@pytest.fixture(scope="module")
def encoder() -> Iterator[MPNetEncoder]:
    opened = open_encoder("mpnet")
    assert isinstance(opened, MPNetEncoder)
    yield opened


def references() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(REFERENCE.read_text())["references"]
    return rows


def test_vectors_are_torch_s_to_within_rounding(encoder: MPNetEncoder) -> None:
    """Against HF transformers' MPNetModel on the same weights (how: the file's note)."""
    rows = references()
    expected = np.array([row["vector"] for row in rows], np.float32)
    vectors = encoder.embed_batch([row["text"] for row in rows])
    assert np.abs(vectors - expected).max() < 1e-5  # measured: 5e-7, the rounding to 6 decimals
    assert (vectors * expected).sum(axis=1).min() > 0.99999


def test_tokens_are_counted_as_the_reference_tokenizer_counts(encoder: MPNetEncoder) -> None:
    rows = references()
    assert encoder.count_tokens([row["text"] for row in rows]) == [row["tokens"] for row in rows]


def test_vectors_are_unit_rows_and_do_not_change(encoder: MPNetEncoder) -> None:
    first = encoder.embed_batch(SENTENCES)
    assert first.shape == (len(SENTENCES), 768) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(first, encoder.embed_batch(SENTENCES))  # from the cache
    assert np.array_equal(first, encoder.encode_fresh(SENTENCES))


def test_a_batch_gives_the_vectors_of_one_text_at_a_time(encoder: MPNetEncoder) -> None:
    # More texts than one model batch holds, of very different lengths, one spanning 2 windows.
    texts = [*SENTENCES * 7, long_text(WINDOW + 50), "", "a " * 40]
    batched = encoder.encode_fresh(texts)
    alone = np.concatenate([encoder.encode_fresh([text]) for text in texts])
    assert np.abs(batched - alone).max() < 1e-5


def test_a_long_text_is_counted_and_read_to_its_end(encoder: MPNetEncoder) -> None:
    first_window = long_text(WINDOW)
    assert encoder.count_tokens([first_window]) == [MAX_TOKENS]
    ending = "My sister Anna is getting married in Lisbon and I am nervous about my speech."
    text = f"{first_window} {ending} {ending}"
    assert encoder.count_tokens([text]) == [MAX_TOKENS + 32]
    wedding = encoder.embed(SENTENCES[1])
    # Cut at 384 tokens, the text would be its first window alone; read to its end, the ending
    # pulls it towards its meaning (measured: cosine 0.005 -> 0.059).
    assert wedding @ encoder.embed(text) > wedding @ encoder.embed(first_window) + 0.04


def test_repeating_a_whole_window_changes_nothing(encoder: MPNetEncoder) -> None:
    once = long_text(WINDOW)
    np.testing.assert_allclose(encoder.embed(f"{once} {once}"), encoder.embed(once), atol=1e-5)


@pytest.mark.parametrize(("sentence", "paraphrase"), PARAPHRASES)
def test_a_paraphrase_is_closer_than_any_unrelated_sentence(
    encoder: MPNetEncoder, sentence: str, paraphrase: str
) -> None:
    """By a wider margin than MiniLM's 0.1 (measured: 0.52 at the least)."""
    others = [p for s, p in PARAPHRASES if s != sentence]
    vector = encoder.embed(sentence)
    closest_other = max(vector @ encoder.embed_batch(others).T)
    assert vector @ encoder.embed(paraphrase) > closest_other + 0.3


def test_a_question_finds_its_evidence_turn(encoder: MPNetEncoder) -> None:
    """As MiniLM's test: LoCoMo's first conversation, its single-hop questions against all its
    ~400 turns. Measured: 20% first, 61% in the top 10 (MiniLM: 22%, 51%)."""
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
    assert np.mean(ranks <= 10) >= 0.55


def test_relative_positions_fall_in_hf_s_buckets() -> None:
    """Where each bucket starts, key position minus query position, as HF's
    MPNetEncoder.relative_position_bucket puts them (from -400 to 400)."""
    starts = {
        -400: 15, -90: 14, -63: 13, -45: 12, -31: 11, -22: 10, -15: 9, -11: 8,
        **{-d: d for d in range(8)},
        **{d: 16 + d for d in range(1, 9)},
        12: 25, 16: 26, 23: 27, 32: 28, 46: 29, 64: 30, 91: 31,
    }  # fmt: skip
    relative = np.arange(-400, 401)
    buckets = relative_buckets(relative)
    changes = np.flatnonzero(np.diff(buckets, prepend=-1))
    assert dict(zip(relative[changes].tolist(), buckets[changes].tolist(), strict=True)) == starts


@pytest.fixture
def build(tmp_path: Path) -> mpnet.Build:
    """A copy of the installed build's manifest and tokenizer, with a small stand-in graph."""
    copy = mpnet.Build(tmp_path)
    shutil.copyfile(mpnet.installed().tokenizer, copy.tokenizer)
    copy.graph.write_bytes(b"an ONNX graph")
    copy.manifest.write_text(
        json.dumps(mpnet.manifest(hashlib.sha256(b"an ONNX graph").hexdigest()))
    )
    return copy


def test_a_build_is_loaded_only_as_its_manifest_records_it(build: mpnet.Build) -> None:
    assert mpnet.verified(build) == (build.graph, build.tokenizer)
    build.graph.write_bytes(b"an ONNX graph, changed")
    with pytest.raises(errors.BackendUnavailable, match="has changed since it was built"):
        mpnet.verified(build)


def test_a_build_by_another_version_of_mem8_is_refused(build: mpnet.Build) -> None:
    recorded = json.loads(build.manifest.read_text())
    build.manifest.write_text(json.dumps({**recorded, "graph_version": 0}))
    with pytest.raises(errors.BackendUnavailable, match="another version of mem8"):
        mpnet.verified(build)


@pytest.mark.parametrize("kind", ["graph", "tokenizer", "manifest"])
def test_a_missing_file_names_how_to_install(build: mpnet.Build, kind: str) -> None:
    getattr(build, kind).unlink()
    with pytest.raises(errors.BackendUnavailable, match="MEM8_ENCODER=mpnet"):
        mpnet.verified(build)
