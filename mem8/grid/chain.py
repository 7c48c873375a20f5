"""The chain of turns, and how recall spreads along it: an answer comes up with its question.

Each memory (by handle, the number the grid gave it at imprint) knows the turn before it and
the turn after it in its scope's stream. A recall's candidates rise a share of the way to their
best neighbour's exact score one and two turns away, where that is higher than their own."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from mem8.grid.index import Candidates, Handles

# Recall spreads along the chain of turns: a memory rises these shares of the way to its best
# neighbour's score one and two turns away, where that is higher than its own (an answer is
# recalled with the question it answers; a memory in a stretch of near misses gains nothing).
SPREAD = (0.7, 0.2)

Around = list[tuple[Handles, Handles]]  # per step of SPREAD: the turns before, the turns after


class Chain:
    """By handle: the turn before it and the turn after it (-1: none)."""

    def __init__(self) -> None:
        self.before = np.full(0, -1, np.int64)
        self.after = np.full(0, -1, np.int64)

    def make_room(self, handle: int) -> None:
        """Room for a newly given handle (given in order from 0), grown by doubling."""
        if handle == len(self.before):
            more = np.full(max(16, handle), -1, np.int64)
            self.before = np.concatenate([self.before, more])
            self.after = np.concatenate([self.after, more])

    def link(self, before: int, handle: int) -> None:
        """`handle` follows `before`."""
        self.before[handle] = before
        self.after[before] = handle

    def unlink(self, handle: int) -> None:
        """Takes `handle` out of its chain: its neighbours now follow each other."""
        before, after = int(self.before[handle]), int(self.after[handle])
        self.before[handle] = self.after[handle] = -1
        if before >= 0 and self.after[before] == handle:
            self.after[before] = -1
        if after >= 0 and self.before[after] == handle:
            self.before[after] = -1
        if before >= 0 and after >= 0:
            self.before[after], self.after[before] = before, after

    def around(self, handles: Handles) -> Around:
        """For each step of SPREAD, the turns that many before and after each of `handles` in
        its chain (-1 where the chain ends)."""
        before, after, steps = handles, handles, []
        for _ in SPREAD:
            before = np.where(before >= 0, self.before[before], -1)
            after = np.where(after >= 0, self.after[after], -1)
            steps.append((before, after))
        return steps

    def spread(self, found: Candidates, count: int) -> Spread:
        """The candidates whose estimate reaches the count-th best of `found` (ties included),
        spread along the chain with the exact scores `found` holds."""
        pool = found.reaching(count)
        return Spread(pool, self.around(pool.handles), Known(found.handles, found.scores))


class Known:
    """The exact scores known in a recall, by handle: looked up for many handles at once."""

    def __init__(self, handles: Handles, scores: npt.NDArray[np.float32]) -> None:
        order = np.argsort(handles, kind="stable")
        self._handles = handles[order]
        self._scores = scores[order]

    def scores(self, handles: Handles) -> npt.NDArray[np.float64]:
        """Each handle's score: NaN where it is not known, 0 where a chain ends (-1)."""
        found = np.full(len(handles), math.nan)
        if len(self._handles):
            at = np.minimum(np.searchsorted(self._handles, handles), len(self._handles) - 1)
            hit = self._handles[at] == handles
            found[hit] = self._scores[at[hit]]
        found[handles < 0] = 0.0
        return found

    def plus(self, handles: Handles, scores: npt.NDArray[np.float32]) -> Known:
        return Known(
            np.concatenate([self._handles, handles]), np.concatenate([self._scores, scores])
        )


class Spread:
    """A recall's pool after spreading: `candidates` holds the spread scores (NaN where a
    neighbour's score is not known yet: `missing` says whose, `knowing` adds them)."""

    def __init__(self, pool: Candidates, around: Around, known: Known) -> None:
        self.pool = pool
        self.around = around
        self.known = known
        self.candidates = spread(pool, around, known)

    def missing(self) -> Handles:
        """The neighbours whose exact scores are not known (none if every score is)."""
        if not np.isnan(self.candidates.scores).any():
            return np.zeros(0, np.int64)
        wanted = np.unique(np.concatenate([side for step in self.around for side in step]))
        unknown: Handles = wanted[(wanted >= 0) & np.isnan(self.known.scores(wanted))]
        return unknown

    def knowing(self, handles: Handles, scores: npt.NDArray[np.float32]) -> Spread:
        """Spread again, with these neighbours' exact scores known too."""
        return Spread(self.pool, self.around, self.known.plus(handles, scores))


def spread(pool: Candidates, around: Around, known: Known) -> Candidates:
    """Each candidate gains a share of what its best neighbour in the chain of turns scores
    above it (`known`: the exact scores of the pool's neighbours; NaN for one that is missing)."""
    own = pool.scores.astype(np.float64)
    spread = own.copy()
    for share, (before, after) in zip(SPREAD, around, strict=True):
        best = np.maximum(known.scores(before), known.scores(after))
        spread += share * np.maximum(best - own, 0.0)
    return Candidates(pool.handles, pool.estimates, spread.astype(np.float32))
