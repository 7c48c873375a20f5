"""Memories that overlap in place and phase, within their scope, become associated."""

from __future__ import annotations

import math
from typing import Any

from mem8.grid.overlaps import MAX_ASSOCIATIONS, Overlaps
from mem8.scope import Scope


def placed(
    memory_id: str, x: float, y: float, phase: float, user: str = "alice"
) -> tuple[dict[str, Any], Scope]:
    return wire(memory_id, x, y, phase, user), Scope("t", user, "p")


def wire(memory_id: str, x: float, y: float, phase: float, user: str = "alice") -> dict[str, Any]:
    return {
        "id": memory_id,
        "x": x,
        "y": y,
        "phase": phase,
        "tenant": "t",
        "user": user,
        "persona": "p",
    }


def test_close_memories_in_phase_are_associated_strongest_first() -> None:
    overlaps = Overlaps(reach=4.0)
    assert overlaps.add(*placed("a", 10.0, 10.0, 0.0)) == []
    overlaps.add(*placed("b", 10.5, 10.0, 0.1))
    found = overlaps.add(*placed("c", 10.2, 10.0, 0.0))
    assert [pair[:2] for pair in found] == [["c", "a"], ["c", "b"]]
    assert found[0][2] > found[1][2]


def test_out_of_phase_far_or_other_scopes_are_not() -> None:
    overlaps = Overlaps(reach=4.0)
    overlaps.add(*placed("a", 10.0, 10.0, 0.0))
    assert overlaps.add(*placed("b", 10.0, 10.0, math.pi)) == []
    assert overlaps.add(*placed("c", 30.0, 30.0, 0.0)) == []
    assert overlaps.add(*placed("d", 10.0, 10.0, 0.0, user="bob")) == []


def test_a_forgotten_memory_is_no_longer_found() -> None:
    overlaps = Overlaps(reach=4.0)
    overlaps.add(*placed("a", 10.0, 10.0, 0.0))
    overlaps.remove("a")
    assert overlaps.add(*placed("b", 10.0, 10.0, 0.0)) == []


def test_at_most_the_strongest_few_are_kept() -> None:
    overlaps = Overlaps(reach=4.0)
    for i in range(MAX_ASSOCIATIONS + 3):
        overlaps.add(*placed(f"m{i}", 10.0 + 0.01 * i, 10.0, 0.0))
    assert len(overlaps.add(*placed("new", 10.0, 10.0, 0.0))) == MAX_ASSOCIATIONS
