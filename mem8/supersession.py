"""Knowledge updates: when what a user says replaces a fact they told before.

"My build server is now called zephyr-43" after "my build server is called zephyr-42": the
older memory is kept, but marked superseded by the newer one, which recall then ranks first.
The judgement is made at imprint, between the new statement and the memories its own recall
brought up (so it costs nothing extra), by a rule that prefers missing an update to inventing
one:
- the two must be about the same thing: their meanings close (cosine >= SAME_SUBJECT);
- the old statement's values (names, numbers, codes: capitalised or digit-bearing words) must
  have gone from the new one, and the new one must bring words of its own: a statement that
  repeats the old value ("zephyr-42 crashed again") confirms it, it does not replace it;
- a word of continuity ("still", "again", "no change") without one of change ("now",
  "switched", "no longer", ...) means the fact holds.
Measured on bench/data/updates.json (bench/updates.py): it finds about a third of the updates
and almost never invents one. It misses updates that share no meaning with the old statement
in the encoder's eyes ("I work at Shopify" then "I started at Stripe on Monday"), updates of values
written in lower case ("oat milk" to "almond milk") when the old statement names another value,
and it knows nothing of negation beyond the words above."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mem8.grid.lexical import terms

# Cosine of two statements' vectors at or above which they may be about the same thing
# (bench/updates.py fits it on four folds of the items and scores the fifth: 0.55 on every
# fold, with MiniLM's vectors and with MPNet's).
SAME_SUBJECT = 0.55
# The share of the old statement's values the new one may repeat and still replace it,
# unless it says it changes them.
KEPT_VALUES = 0.5
_APOSTROPHES = "'\u2019"
_TOKEN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9{_APOSTROPHES}&.+/-]*[A-Za-z0-9+]|[A-Za-z0-9]")
# Where a sentence (or a speaker's line, "Sam: ...") ends, so that its first word is not a value.
_SENTENCE_END = re.compile(r"[.!?:]\s+")
_LABEL = re.compile(r"^\s*[A-Z][\w .'-]{0,40}:\s+")  # "Sam: ", "Old Friend: "
_PRONOUNS = {"I", "I'm", "I've", "I'd", "I'll"}
_CHANGE = re.compile(
    r"\b(?:now|no longer|not any ?more|anymore|switched|switching|changed|moved|renamed|"
    r"instead|these days|replaced|from now on|as of|traded|upgraded|downgraded|left|quit)\b",
    re.IGNORECASE,
)
_CONTINUITY = re.compile(
    r"\b(?:still|again|another|no changes?|not chang\w*|staying|same as)\b", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Statement:
    """What the judgement needs of a memory: its text and its encoder vector."""

    text: str
    vector: npt.NDArray[np.float32]


def values(text: str) -> set[str]:
    """The words that carry a statement's values: those holding a digit, and capitalised
    ones not opening a sentence (names, places, products), lower-cased, without "'s"."""
    found: set[str] = set()
    opening = True
    for match in re.finditer(f"{_SENTENCE_END.pattern}|{_TOKEN.pattern}", text):
        token = match.group(0)
        if not _TOKEN.fullmatch(token):
            opening = True
            continue
        capitalised = token[0].isupper() and not opening and token not in _PRONOUNS
        if capitalised or any(c.isdigit() for c in token):
            found.add(re.sub(rf"[{_APOSTROPHES}]s$", "", token.lower()))
        opening = False
    return found


def supersedes(new: Statement, old: Statement) -> bool:
    """Whether `new` replaces the fact `old` states (see the module's rule)."""
    if float(new.vector @ old.vector) < SAME_SUBJECT:
        return False
    changes = bool(_CHANGE.search(new.text))
    if _CONTINUITY.search(new.text) and not changes:
        return False
    before, after = values(old.text), values(new.text)
    if before:
        if not before - after:
            return False  # every old value is still there: the fact is confirmed
        if len(before & after) >= KEPT_VALUES * len(before) and not changes:
            return False
    if not _same_words(new.text, old.text, before | after):
        return False  # close in meaning, but not a word of what it says in common
    return bool(after - before or set(terms(new.text)) - set(terms(old.text)))


def _same_words(new: str, old: str, values: set[str]) -> bool:
    """Whether the two share a word beyond their values and the speaker who said them: an
    update says again what it changes ("my build server is now called ...")."""
    said = set(terms(_unlabelled(new))) & set(terms(_unlabelled(old)))
    return bool(said - {term for value in values for term in terms(value)})


def _unlabelled(text: str) -> str:
    """The text without a leading speaker label ("Sam: ...")."""
    return _LABEL.sub("", text, count=1)
