"""The memories of one grid region, bucketed by scope so that recall never crosses scopes.

Recall is two-stage: every memory of the caller's buckets is scored by its binary sketch
(sketch.py, shortlist.py: estimated resonance x weight, 32 bytes read per memory), the best
`candidates` (and any tied with the last) are rescored exactly (rescore.py: float vectors, the
field's activation). The grid merges regions by the same two keys, so the answer does not
depend on how the grid is tiled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mem8.grid import lexical, sketch
from mem8.grid.dynamics import recall_weights
from mem8.grid.lexical import LexicalQuery, Terms
from mem8.grid.rescore import QUIET, Activation, rescore
from mem8.grid.shortlist import shortlist
from mem8.scope import Audience, Scope

MIN_CANDIDATES = 32
# A recall over at most this many memories rescores every one of them exactly: the sketch's
# estimate only saves time where scanning exactly would cost more (~0.1 ms per 1,000 here),
# and ranked by it a chat's top 5 of a few hundred memories lost matches in meaning alone.
EXACT_UP_TO = 2048
# The shortlist weighs memories as they were at `now` rounded down to this many seconds: the
# shortest decay constant is days, so that is within 0.2%; the answer is rescored exactly.
WEIGHT_REFRESH = 600.0
# Resonance is this share meaning (the encoder's cosine) and the rest exact words (lexical.py),
# which the words' coverage of the query keeps low for words shared by chance.
DENSE_SHARE = 0.3
# A memory's score is its resonance x its recall weight ** WEIGHT_EXPONENT. Measured with bench
# locomo on LoCoMo and on the implicit cues (bench/cues.py): at 1, lively small talk (VADER
# amplitude 1.66 on LoCoMo's turns) outranks a calm statement that means more (1.08 on the
# cues) and implicit recall@10 halves, while LoCoMo gains nothing (77.0 at 1, 77.7 at 0); even
# 0.1 costs 1.4 points of it. So the weight (decay, emotion, use) does not rank recall.
WEIGHT_EXPONENT = 0.0


def candidates_for(k: int, visible: int = 0) -> int:
    """How many memories the sketch stage passes to exact rescoring for a top-k recall over
    `visible` memories: all of them up to EXACT_UP_TO, else at least 8k (the sketch's estimate
    of a MiniLM cosine is off by 0.09 (sd), more than a query's cosines spread (0.07), so fewer
    lose the matches in meaning alone)."""
    return max(MIN_CANDIDATES, 8 * k, min(visible, EXACT_UP_TO))


Handles = npt.NDArray[np.int64]
# A handle's memory id: ties are broken by id, and only ties need it.
Names = Callable[[int], str]


@dataclass(frozen=True)
class Candidates:
    """Memories up for a recall by handle (the number the grid gave each at imprint, so that
    a recall moves integers, not id strings): the sketch's estimate (chooses who is rescored)
    and the exact score (ranks the answer), as parallel arrays."""

    handles: Handles
    estimates: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]

    @staticmethod
    def merge(parts: list[Candidates]) -> Candidates:
        if len(parts) < 2:
            return parts[0] if parts else _EMPTY
        return Candidates(
            np.concatenate([p.handles for p in parts]),
            np.concatenate([p.estimates for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )

    def _take(self, order: npt.NDArray[np.intp]) -> Candidates:
        return Candidates(self.handles[order], self.estimates[order], self.scores[order])

    def reaching(self, count: int) -> Candidates:
        """Those whose estimate reaches the count-th best, every one tied with it included
        (all, if no more than `count` are numbers): the same set in any tiling, as long as each
        part holds its own, and found without reading an id."""
        if len(self.estimates) <= count:
            return self
        cut = -np.partition(-self.estimates, count - 1)[count - 1]  # NaN last
        return self if cut != cut else self._take(np.flatnonzero(self.estimates >= cut))

    def ranked(self, k: int, names: Names) -> Candidates:
        """The best k by exact score; equal scores in memory-id order."""
        return self._take(self._best(self.scores, k, names))

    def _best(
        self, keys: npt.NDArray[np.float32], count: int, names: Names
    ) -> npt.NDArray[np.intp]:
        """Positions of the `count` highest keys, ties by memory id: sorting ids as strings
        costs more than the rest, so only where two of those keys are equal, and only the
        best `count` and those tied with the last of them."""
        order = np.argsort(-keys, kind="stable")
        head = keys[order[: count + 1]]
        if count == 0 or not (np.any(head[1:] == head[:-1]) or np.isnan(head).any()):
            return order[:count]
        cut = keys[order[min(count, len(keys)) - 1]]
        near = np.flatnonzero(keys >= cut) if cut == cut else np.arange(len(keys))  # NaN
        ids = np.array([names(h) for h in self.handles[near].tolist()], dtype=str)
        return near[np.lexsort((ids, -keys[near]))][:count]


_EMPTY = Candidates(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))


@dataclass
class _Bucket:
    """Parallel arrays of one scope's memories, grown by doubling."""

    dimensions: int
    ids: list[str] = field(default_factory=list)
    handles: Handles = field(init=False)
    vectors: npt.NDArray[np.float32] = field(init=False)
    sketches: sketch.Sketches = field(init=False)
    created: npt.NDArray[np.float64] = field(init=False)
    tau: npt.NDArray[np.float64] = field(init=False)
    amplitude: npt.NDArray[np.float32] = field(init=False)
    recalls: npt.NDArray[np.int32] = field(init=False)
    standing: npt.NDArray[np.float32] = field(init=False)  # 1, or less once superseded
    cells: npt.NDArray[np.float64] = field(init=False)  # the centre's cell: row, column
    weights: npt.NDArray[np.float32] = field(init=False)  # recall weights at `weighed_at`
    lengths: npt.NDArray[np.float32] = field(init=False)  # terms per memory
    documents: list[Terms] = field(default_factory=list)
    postings: lexical.Postings = field(default_factory=lexical.Postings)
    weighed_at: float | None = None

    def __post_init__(self) -> None:
        self._allocate(16)

    def _allocate(self, capacity: int) -> None:
        kept = len(self.ids)
        fresh: dict[str, npt.NDArray[np.generic]] = {
            "handles": np.zeros(capacity, np.int64),
            "vectors": np.zeros((capacity, self.dimensions), np.float32),
            "sketches": np.zeros((capacity, sketch.WORDS), np.uint64),
            "created": np.zeros(capacity, np.float64),
            "tau": np.zeros(capacity, np.float64),
            "amplitude": np.zeros(capacity, np.float32),
            "recalls": np.zeros(capacity, np.int32),
            "standing": np.ones(capacity, np.float32),
            "cells": np.zeros((capacity, 2), np.float64),
            "weights": np.zeros(capacity, np.float32),
            "lengths": np.zeros(capacity, np.float32),
        }
        for name, array in fresh.items():
            if kept:
                old: npt.NDArray[np.generic] = getattr(self, name)
                array[:kept] = old[:kept]
            setattr(self, name, array)

    def _arrays(self) -> tuple[npt.NDArray[np.generic], ...]:
        return (
            self.handles,
            self.vectors,
            self.sketches,
            self.created,
            self.tau,
            self.amplitude,
            self.recalls,
            self.standing,
            self.cells,
            self.weights,
            self.lengths,
        )

    def add(
        self,
        memory_id: str,
        handle: int,
        vector: npt.NDArray[np.float32],
        bits: sketch.Sketches,
        created: float,
        tau: float,
        amplitude: float,
        recalls: int,
        cell: tuple[int, int],
        found: Terms,
        standing: float,
    ) -> None:
        n = len(self.ids)
        if n == len(self.created):
            self._allocate(2 * n)
        self.ids.append(memory_id)
        self.handles[n] = handle
        self.documents.append(found)
        self.lengths[n] = lexical.length(found)
        self.postings.add(n, found)
        self.vectors[n], self.sketches[n] = vector, bits
        self.created[n], self.tau[n] = created, tau
        self.amplitude[n], self.recalls[n] = amplitude, recalls
        self.standing[n] = standing
        self.cells[n] = cell
        self.reweigh(n)

    def reweigh(self, position: int) -> None:
        """Brings one memory's cached weight in line with the others' (after add, reinforce)."""
        if self.weighed_at is not None:
            at = slice(position, position + 1)
            self.weights[at] = recall_weights(
                self.weighed_at,
                self.created[at],
                self.tau[at],
                self.amplitude[at],
                self.recalls[at],
                self.standing[at],
                WEIGHT_EXPONENT,
            )

    def _weigh(self, now: float) -> npt.NDArray[np.float32]:
        """The cached weights, refreshed when `now` enters a new WEIGHT_REFRESH period."""
        n = len(self.ids)
        period = np.floor(now / WEIGHT_REFRESH) * WEIGHT_REFRESH
        if self.weighed_at != period:
            self.weighed_at = float(period)
            self.weights[:n] = recall_weights(
                self.weighed_at,
                self.created[:n],
                self.tau[:n],
                self.amplitude[:n],
                self.recalls[:n],
                self.standing[:n],
                WEIGHT_EXPONENT,
            )
        return self.weights[:n]

    def remove(self, position: int) -> None:
        """Swaps the last memory into `position` (order inside a bucket carries no meaning)."""
        last = len(self.ids) - 1
        self.postings.remove(position, self.documents[position])
        if position != last:
            self.postings.move(last, position, self.documents[last])
        for array in self._arrays():
            array[position] = array[last]
        self.ids[position] = self.ids[last]
        self.documents[position] = self.documents[last]
        self.ids.pop()
        self.documents.pop()

    def shortlist(
        self, query_bits: sketch.Sketches, words: LexicalQuery, now: float, count: int
    ) -> npt.NDArray[np.intp]:
        """Positions of the best `count` by estimate (all tied with the last one included)."""
        n = len(self.ids)
        weights = self._weigh(now)
        self._lexical = lexical.scores(words, self.postings, self.lengths, n)
        # One numba pass (np.partition alone cost 5x at 25k memories).
        self._estimates, chosen = shortlist(
            query_bits, self.sketches[:n], weights, self._lexical, DENSE_SHARE, count
        )
        return chosen

    def rescore(
        self,
        query: npt.NDArray[np.float32],
        at: npt.NDArray[np.intp],
        now: float,
        activation: Activation | None,
    ) -> Candidates:
        scores = self.exact(query, at, self._lexical[at], now, activation)
        return Candidates(self.handles[at], self._estimates[at], scores)

    def score(
        self,
        query: npt.NDArray[np.float32],
        at: npt.NDArray[np.intp],
        words: LexicalQuery,
        now: float,
        activation: Activation | None,
    ) -> npt.NDArray[np.float32]:
        """The exact scores of the memories at `at`, as a recall's rescoring gives them."""
        found = lexical.scores(words, self.postings, self.lengths, len(self.ids))
        return self.exact(query, at, found[at], now, activation)

    def exact(
        self,
        query: npt.NDArray[np.float32],
        at: npt.NDArray[np.intp],
        matched: npt.NDArray[np.float32],
        now: float,
        activation: Activation | None,
    ) -> npt.NDArray[np.float32]:
        """Resonance (cosine and the word scores `matched`) x weight x activation gain."""
        return rescore(
            query,
            self.vectors,
            at,
            self.created,
            self.tau,
            self.amplitude,
            self.recalls,
            self.standing,
            matched,
            DENSE_SHARE,
            WEIGHT_EXPONENT,
            now,
            self.cells,
            activation or QUIET,
        )


class RegionIndex:
    """Scope-bucketed memory arrays with two-stage resonance scoring."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self._axes = sketch.projection(dimensions)
        self._buckets: dict[Scope, _Bucket] = {}
        self._where: dict[str, tuple[Scope, int]] = {}
        self._names: dict[int, str] = {}  # handle -> memory id

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, memory_id: str) -> bool:
        return memory_id in self._where

    def add(
        self,
        scope: Scope,
        memory_id: str,
        handle: int,
        vector: npt.NDArray[np.float32],
        created: float,
        tau: float,
        amplitude: float,
        recalls: int = 0,
        cell: tuple[int, int] = (0, 0),
        found: Terms | None = None,
        standing: float = 1.0,
    ) -> None:
        """One memory and its handle; `found` are its terms for exact word matching (none:
        meaning only); `standing` its share of weight (less once superseded)."""
        bucket = self._buckets.get(scope)
        if bucket is None:
            bucket = self._buckets[scope] = _Bucket(self.dimensions)
        self._where[memory_id] = (scope, len(bucket.ids))
        self._names[handle] = memory_id
        bits = sketch.sketch(vector, self._axes)[0]
        bucket.add(
            *(memory_id, handle, vector, bits, created, tau, amplitude, recalls, cell),
            *(found or {}, standing),
        )

    def name(self, handle: int) -> str:
        """The id of the memory with this handle."""
        return self._names[handle]

    def refresh(self) -> None:
        """Readies what recall reads after a batch of additions (the word postings' arrays)."""
        for bucket in self._buckets.values():
            bucket.postings.refresh()

    def remove(self, memory_id: str) -> bool:
        place = self._where.pop(memory_id, None)
        if place is None:
            return False
        scope, position = place
        bucket = self._buckets[scope]
        del self._names[int(bucket.handles[position])]
        moved = bucket.ids[-1]
        bucket.remove(position)
        if moved != memory_id:
            self._where[moved] = (scope, position)
        return True

    def uses(self) -> list[tuple[str, int, float, float]]:
        """(id, recalls, tau, standing) of every memory, by id: what recall and knowledge
        updates have changed."""
        found = []
        for memory_id, (scope, position) in self._where.items():
            bucket = self._buckets[scope]
            found.append(
                (
                    memory_id,
                    int(bucket.recalls[position]),
                    float(bucket.tau[position]),
                    float(bucket.standing[position]),
                )
            )
        return sorted(found)

    def supersede(self, memory_id: str, standing: float) -> None:
        """Sets a memory's standing (its share of weight: less once superseded)."""
        place = self._where.get(memory_id)
        if place is not None:
            bucket = self._buckets[place[0]]
            bucket.standing[place[1]] = standing
            bucket.reweigh(place[1])

    def reinforce(self, memory_id: str, recalls: int, tau: float) -> None:
        place = self._where.get(memory_id)
        if place is not None:
            bucket = self._buckets[place[0]]
            bucket.recalls[place[1]], bucket.tau[place[1]] = recalls, tau
            bucket.reweigh(place[1])

    def search(
        self,
        query: npt.NDArray[np.float32],
        now: float,
        k: int,
        tenant: str,
        user: str | None,
        persona: str | None,
        activation: Activation | None = None,
        query_bits: sketch.Sketches | None = None,
        words: LexicalQuery | None = None,
        count: int = 0,
    ) -> Candidates:
        """This region's share of a top-k recall over the buckets matching the filters (None:
        any user / any persona; a persona also gets those shared with every persona): its
        best `count` by estimate (0: candidates_for(k); and any tied with the last), each with
        its exact score. `words` are the query's weighed terms (none: meaning only)."""
        words = words or LexicalQuery({}, 1.0)
        count = count or candidates_for(k)
        if query_bits is None:
            query_bits = sketch.sketch(query, self._axes)[0]
        found: list[Candidates] = []
        audience = Audience(tenant, user, persona)
        for scope, bucket in self._buckets.items():
            if not bucket.ids or not audience.admits(scope):
                continue
            positions = bucket.shortlist(query_bits, words, now, count)
            found.append(bucket.rescore(query, positions, now, activation))
        return Candidates.merge(found).reaching(count)

    def score(
        self,
        query: npt.NDArray[np.float32],
        now: float,
        ids: list[str],
        activation: Activation | None = None,
        words: LexicalQuery | None = None,
    ) -> tuple[list[str], npt.NDArray[np.float32]]:
        """The exact scores `search` would give those of `ids` this region holds: the held
        ids and their scores."""
        words = words or LexicalQuery({}, 1.0)
        wanted: dict[Scope, list[tuple[int, str]]] = {}
        for memory_id in ids:
            place = self._where.get(memory_id)
            if place is not None:
                wanted.setdefault(place[0], []).append((place[1], memory_id))
        held: list[str] = []
        scores: list[npt.NDArray[np.float32]] = []
        for scope, found in wanted.items():
            at = np.array([position for position, _ in found], np.intp)
            scores.append(self._buckets[scope].score(query, at, words, now, activation))
            held += [memory_id for _, memory_id in found]
        return held, np.concatenate(scores) if scores else np.zeros(0, np.float32)
