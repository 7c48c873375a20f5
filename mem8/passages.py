"""Long texts become passages: pieces of bounded length cut at sentence boundaries (a sentence
longer than a passage at word boundaries), so that a memory is one thing recall can find and a
prompt can show, never a wall of text. A text of n passages' length is cut into about n equal
ones, so no passage is a stub."""

from __future__ import annotations

import math
import re
from collections import Counter

from mem8.grid.lexical import terms

PASSAGE_CHARS = 600  # the longest passage: about 150 tokens, well inside the encoder's 256
# Where a sentence ends: after . ! ? (and closing quotes or brackets) before white space, and
# at line breaks, which in chat and documents end items, headings and paragraphs.
_CLOSING = "\"')]\u201d\u2019"  # quotes and brackets that may follow a full stop
_SENTENCE = re.compile(rf"[^\n]*?(?:[.!?\u2026]+[{re.escape(_CLOSING)}]*(?=\s)|\n|$)", re.DOTALL)


def passages(text: str, limit: int = PASSAGE_CHARS) -> list[str]:
    """The text cut into passages of at most `limit` characters, in order; one when it fits."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    target = len(text) / math.ceil(len(text) / limit)
    found: list[str] = []
    current, gap = "", ""
    for piece, ends_line in _pieces(text, limit):
        joined = current + gap + piece
        if current and (len(joined) > limit or len(current) >= target):
            found.append(current)
            joined = piece
        current, gap = joined, "\n" if ends_line else " "
    if current:
        found.append(current)
    return found


def _pieces(text: str, limit: int) -> list[tuple[str, bool]]:
    """Sentences without the white space around them, each no longer than limit, and whether
    each ended a line."""
    pieces: list[tuple[str, bool]] = []
    for match in _SENTENCE.finditer(text):
        sentence = match.group(0).strip()
        ends_line = match.group(0).endswith("\n")
        if not sentence:
            if ends_line and pieces:  # a line break after a sentence's full stop
                pieces[-1] = (pieces[-1][0], True)
            continue
        cut = _words(sentence, limit) if len(sentence) > limit else [sentence]
        pieces += [(part, ends_line and i == len(cut) - 1) for i, part in enumerate(cut)]
    return pieces


def _words(sentence: str, limit: int) -> list[str]:
    """A sentence too long for a passage, cut at the last space before each limit (at the
    limit itself where a word is longer)."""
    cut: list[str] = []
    while len(sentence) > limit:
        at = sentence.rfind(" ", 0, limit + 1)
        at = limit if at <= 0 else at
        cut.append(sentence[:at].rstrip())
        sentence = sentence[at:].lstrip()
    return [*cut, sentence] if sentence else cut


def most_relevant(text: str, query: str, limit: int = PASSAGE_CHARS) -> tuple[str, bool]:
    """The passage of `text` that shares most of the query's words (rarer words among its
    passages weigh more; the first passage when none shares any), and whether it is only a
    part of the text."""
    found = passages(text, limit)
    if len(found) <= 1:
        return text.strip(), False
    wanted = set(terms(query))
    held = [set(terms(passage)) & wanted for passage in found]
    spread = Counter(term for words in held for term in words)
    scores = [sum(1.0 / spread[term] for term in words) for words in held]
    best = max(range(len(found)), key=lambda i: (scores[i], -i))
    return found[best], True
