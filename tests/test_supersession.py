"""The knowledge-update rule: a new statement replaces an old fact only when it is about the
same thing, the old values are gone, and it does not say the fact still holds."""

from __future__ import annotations

import numpy as np
import pytest

from mem8.supersession import SAME_SUBJECT, Statement, supersedes, values


def said(text: str, similarity: float = 0.9) -> tuple[Statement, Statement]:
    """A statement and a vector pair whose cosine is `similarity`."""
    new = np.array([1.0, 0.0], np.float32)
    old = np.array([similarity, float(np.sqrt(1 - similarity**2))], np.float32)
    return Statement(text, new), Statement("", old)


def judge(old: str, new: str, similarity: float = 0.9) -> bool:
    statement, before = said(new, similarity)
    return supersedes(statement, Statement(old, before.vector))


def test_values_are_names_numbers_and_codes_not_opening_words() -> None:
    assert values("My build server is called zephyr-42. Ask Gwen's team.") == {"zephyr-42", "gwen"}
    assert values("I drive a 2012 Honda Civic") == {"2012", "honda", "civic"}
    assert values("I'm tired. I think so.") == set()
    assert values("Sam: My father died in January.") == {"january"}  # a speaker's line


@pytest.mark.parametrize(
    ("old", "new", "replaced"),
    [
        ("My build server is called zephyr-42.", "My build server is now called zephyr-43.", True),
        ("My bank is Barclays.", "My bank is Monzo these days.", True),
        # close in meaning, but it says nothing again: not a change of the first (in a
        # simulation's transcript, a client's lines weeks apart)
        (
            "Sam: My father died suddenly in January and I can't breathe at night.",
            "Sam: The panic came back on Sunday when I drove past the hospital.",
            False,
        ),
        ("My build server is called zephyr-42.", "zephyr-42 crashed again last night.", False),
        ("I take 10mg of lisinopril.", "No changes: keep going with the 10mg lisinopril.", False),
        ("Our parrot Mango is an African grey.", "The vet says Mango is still healthy.", False),
    ],
)
def test_an_update_replaces_a_confirmation_does_not(old: str, new: str, replaced: bool) -> None:
    assert judge(old, new) is replaced


def test_statements_far_apart_in_meaning_never_replace_each_other() -> None:
    old, new = "I bank with Barclays.", "My current account is with Monzo these days."
    assert judge(old, new, SAME_SUBJECT - 0.01) is False
