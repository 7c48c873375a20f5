"""The chain of turns and recall's spread along it, without actors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mem8.grid.chain import SPREAD, Chain, Known
from mem8.grid.index import Candidates


def chain_of(count: int) -> Chain:
    """Handles 0 .. count - 1, each following the one before."""
    chain = Chain()
    for handle in range(count):
        chain.make_room(handle)
        if handle:
            chain.link(handle - 1, handle)
    return chain


def candidates(handles: list[int], scores: list[float]) -> Candidates:
    return Candidates(
        np.array(handles, np.int64),
        np.array(scores, np.float32),  # the estimates: here the scores themselves
        np.array(scores, np.float32),
    )


def test_around_gives_the_turns_one_and_two_away() -> None:
    chain = chain_of(5)
    (before1, after1), (before2, after2) = chain.around(np.array([0, 2, 4], np.int64))
    assert before1.tolist() == [-1, 1, 3] and after1.tolist() == [1, 3, -1]
    assert before2.tolist() == [-1, 0, 2] and after2.tolist() == [2, 4, -1]


def test_unlinking_joins_the_neighbours() -> None:
    chain = chain_of(3)
    chain.unlink(1)
    (before, after), _ = chain.around(np.array([0, 1, 2], np.int64))
    assert before.tolist() == [-1, -1, 0] and after.tolist() == [2, -1, -1]


def test_room_grows_by_doubling_and_keeps_links() -> None:
    chain = chain_of(40)
    assert len(chain.before) == 64
    assert int(chain.after[38]) == 39 and int(chain.before[39]) == 38


def test_a_candidate_rises_a_share_of_the_way_to_its_better_neighbours() -> None:
    chain = chain_of(5)
    found = candidates([0, 1, 2, 3, 4], [0.1, 0.2, 0.9, 0.3, 0.1])
    spread = chain.spread(found, 5)
    assert len(spread.missing()) == 0
    scores = spread.candidates.scores
    near, far = SPREAD
    assert scores[2] == pytest.approx(0.9)  # the best gains nothing
    assert scores[1] == pytest.approx(0.2 + near * 0.7 + far * max(0.3 - 0.2, 0.0))
    assert scores[0] == pytest.approx(0.1 + near * 0.1 + far * 0.8)
    assert scores[4] == pytest.approx(0.1 + near * 0.2 + far * 0.8)


def test_a_missing_neighbour_is_asked_for_then_counted() -> None:
    chain = chain_of(4)
    found = candidates([0, 1, 2], [0.5, 0.4, 0.3])  # 3 is no region's candidate
    spread = chain.spread(found, 3)
    assert spread.missing().tolist() == [3]
    assert math.isnan(spread.candidates.scores[2])
    known = spread.knowing(np.array([3], np.int64), np.array([0.8], np.float32))
    assert len(known.missing()) == 0
    near, far = SPREAD  # 3 (0.8) one turn after it, 0 (0.5) two before
    assert known.candidates.scores[2] == pytest.approx(0.3 + near * 0.5 + far * 0.2)


def test_only_the_candidates_reaching_the_cut_are_spread() -> None:
    found = candidates([0, 1, 2, 3], [0.9, 0.1, 0.8, 0.8])
    spread = chain_of(4).spread(found, 2)
    assert spread.candidates.handles.tolist() == [0, 2, 3]  # ties with the 2nd included


def test_known_scores_are_nan_when_unknown_and_zero_past_a_chain_end() -> None:
    known = Known(np.array([5, 2], np.int64), np.array([0.5, 0.2], np.float32))
    found = known.scores(np.array([2, 7, -1, 5], np.int64))
    assert found[0] == pytest.approx(0.2) and math.isnan(found[1])
    assert found[2] == 0.0 and found[3] == pytest.approx(0.5)
