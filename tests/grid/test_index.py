"""The region index: scoring given memories agrees exactly with a recall's rescoring."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mem8.grid import lexical
from mem8.grid.index import Candidates, RegionIndex
from mem8.grid.lexical import Frequencies
from mem8.scope import Scope

DIMENSIONS = 64
TEXTS = ["Anna married in Lisbon", "the cat Miso", "Lisbon hills", "a lighthouse keeper"] * 20


def test_scoring_given_ids_equals_the_recall_scores() -> None:
    rows = np.random.default_rng(5).standard_normal((len(TEXTS), DIMENSIONS)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    index = RegionIndex(DIMENSIONS)
    corpus = Frequencies()
    for i, (text, row) in enumerate(zip(TEXTS, rows, strict=True)):
        found = lexical.memory_terms(text, "", 100.0 * i)
        corpus.add(found)
        scope = Scope("t", "alice" if i % 2 else "bob", "p")
        index.add(scope, f"m{i:03d}", i, row, 100.0 * i, 86_400.0, 1.0, i % 3, (i, i), found)
    words = lexical.weigh("Lisbon wedding", [corpus])
    hits = index.search(rows[2], 10_000.0, 8, "t", None, None, words=words)
    ids = [index.name(h) for h in hits.handles.tolist()]
    asked = [*reversed(ids), "m999"]  # an id the region does not hold is left out
    held, scores = index.score(rows[2], 10_000.0, asked, words=words)
    assert sorted(held) == sorted(ids)
    exact = dict(zip(ids, hits.scores.tolist(), strict=True))
    assert scores.tolist() == [exact[i] for i in held]


def named(found: Candidates, ids: list[str]) -> list[str]:
    return [ids[h] for h in found.handles.tolist()]


def test_equal_keys_rank_by_memory_id_whatever_the_order() -> None:
    ids = ["m5", "m1", "m4", "m2", "m3", "m0"]
    handles = np.arange(len(ids), dtype=np.int64)
    estimates = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.5], np.float32)
    scores = np.array([0.2, 0.2, 0.7, 0.3, 0.2, 0.1], np.float32)
    found = Candidates(handles, estimates, scores)
    assert named(found.ranked(4, ids.__getitem__), ids) == ["m4", "m2", "m1", "m3"]
    reverse = Candidates(handles[::-1], estimates[::-1], scores[::-1])
    assert named(reverse.ranked(4, ids.__getitem__), ids) == ["m4", "m2", "m1", "m3"]


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, math.nan]), max_size=40),
    count=st.integers(0, 45),
    seed=st.integers(0, 1000),
)
def test_the_best_are_those_of_a_full_sort_by_key_then_id(
    keys: list[float], count: int, seed: int
) -> None:
    ids = [f"m{i:03d}" for i in np.random.default_rng(seed).permutation(len(keys))]
    values = np.array(keys, np.float32)
    found = Candidates(np.arange(len(ids), dtype=np.int64), values, values)
    expected = np.lexsort((np.array(ids, dtype=str), -values))[:count]
    assert named(found.ranked(count, ids.__getitem__), ids) == [ids[i] for i in expected]


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, math.nan]), max_size=40),
    count=st.integers(1, 45),
    parts=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_those_reaching_the_cut_are_the_same_however_the_memories_are_split(
    keys: list[float], count: int, parts: int, seed: int
) -> None:
    """Each part keeps those of its own reaching its count-th best estimate; their union
    then gives those reaching the whole's count-th best, ties included."""
    values = np.array(keys, np.float32)
    handles = np.random.default_rng(seed).permutation(len(keys)).astype(np.int64)
    whole = Candidates(handles, values, values).reaching(count)
    split = [
        Candidates(handles[i::parts], values[i::parts], values[i::parts]).reaching(count)
        for i in range(parts)
    ]
    merged = Candidates.merge(split).reaching(count)
    assert sorted(merged.handles.tolist()) == sorted(whole.handles.tolist())
    numbers = np.sort(values[~np.isnan(values)])[::-1]
    if len(numbers) >= count and len(values) > count:  # the count-th best and all it ties
        assert sorted(whole.estimates.tolist()) == sorted(numbers[numbers >= numbers[count - 1]])
