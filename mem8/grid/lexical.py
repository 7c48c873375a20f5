"""Exact word matching for recall: what dense vectors miss (names, numbers, rare words, dates).

A memory's terms are the stemmed words of its text and of the turn it followed (its context),
and the day, month and year it was perceived (UTC), as terms no word can be ("@2023-10-13",
"@2023-10", "@2023"); a query's terms are its stemmed words and the same terms for each date
it names ("on 13 October 2023", "in May 2023", "in 2022"). They are weighed by BM25 against the
scope's document frequencies, so a date shared by a few sessions counts like a rare word. The
score is normalised by the query's best possible score, so it lies in [0, 1] like a cosine and
the two can be mixed with fixed weights whatever the query. It is then scaled by the memory's
coverage of the query, the share of the query's terms it holds (counting the words no memory
of the scope holds), to the power COVERAGE_EXPONENT. One word shared by chance with a long
query, or with a query about things the memories never name, adds little; a memory saying
most of what the query says keeps most of its score."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import snowballstemmer

from mem8.grid.dynamics import DAY
from mem8.text import words

K1 = 1.2  # term-frequency saturation
B = 0.5  # length normalisation: memories are short, so only half of it
# Coverage counts to this power (computed as c x sqrt(c)). Fitted with index.DENSE_SHARE (0.3)
# on LoCoMo with the implicit cues inserted, four conversations at a time, scored on the fifth:
# from 1.5 up implicit recall beat plain cosine on every fold, @10 and @50 (at 1 it fell below
# on two), and each step up from 1 cost LoCoMo recall@10 0.6 to 0.9 points over the five.
COVERAGE_EXPONENT = 1.5
_stemmer = snowballstemmer.stemmer("english")

Terms = dict[str, float]  # term -> occurrences (a context's count as a fraction)


CONTEXT_WEIGHT = 0.5  # a word of the turn before counts half as much as the memory's own
DATE = "@"  # what starts a date term; words never do


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """Stemming costs ~10 us a word; conversations reuse a small vocabulary."""
    stem: str = _stemmer.stemWord(word)
    return stem


def terms(text: str) -> Terms:
    """Stemmed words without stopwords, counted."""
    return {term: float(n) for term, n in Counter(map(_stem, words(text))).items()}


def memory_terms(text: str, context: str, created: float) -> Terms:
    """A memory's words, at half weight those of the turn it followed, and its dates."""
    found = terms(text)
    for term, count in terms(context).items():
        found[term] = found.get(term, 0.0) + CONTEXT_WEIGHT * count
    found.update(dict.fromkeys(_day_terms(math.floor(created / DAY)), 1.0))
    return found


@functools.lru_cache(maxsize=1024)
def _day_terms(day: int) -> tuple[str, ...]:
    """The date terms of the UTC day `day` days after 1970-01-01 (memories come in days)."""
    when = datetime.fromtimestamp(day * DAY, UTC)
    return tuple(_date_terms(when.year, when.month, when.day))


def length(found: Terms) -> float:
    """A memory's length for BM25: its words (dates are not words: every memory has three)."""
    return sum(count for term, count in found.items() if term[0] != DATE)


_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        1,
    )
    for name in names
}
_MONTH = r"([a-z]+)\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"((?:19|20)\d\d)"
_DAY_FIRST = re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b")
_MONTH_FIRST = re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b")
_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+{_YEAR}\b")
_ISO_DAY = re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b")
_BARE_YEAR = re.compile(rf"\b{_YEAR}\b")


def _undated(query: str) -> str:
    """The query without the dates it names, whose words are matched as date terms."""
    text = query.lower()
    for pattern, month in ((_DAY_FIRST, 2), (_MONTH_FIRST, 1), (_MONTH_YEAR, 1)):
        text = pattern.sub(functools.partial(_unless_no_month, month), text)
    return _BARE_YEAR.sub(" ", _ISO_DAY.sub(" ", text))


def _unless_no_month(month: int, found: re.Match[str]) -> str:
    """A blank for a date (its group `month` names a month), else the text as it was."""
    return " " if found.group(month) in _MONTHS else found.group()


def query_dates(query: str) -> set[str]:
    """The date terms of the days, months and years a query names with their year (a date
    without one, or a relative one like "last week", is not resolved)."""
    text = query.lower()
    found: set[str] = set()
    for day, month, year in _DAY_FIRST.findall(text):
        found.update(_named(year, month, day))
    for month, day, year in _MONTH_FIRST.findall(text):
        found.update(_named(year, month, day))
    for month, year in _MONTH_YEAR.findall(text):
        found.update(_named(year, month))
    for year, month, day in _ISO_DAY.findall(text):
        found.update(_date_terms(int(year), int(month), int(day)))
    for year in _BARE_YEAR.findall(text):
        found.update(_date_terms(int(year)))
    return found


def _named(year: str, month: str, day: str | None = None) -> list[str]:
    number = _MONTHS.get(month)
    if number is None:
        return []
    return _date_terms(int(year), number, None if day is None else int(day))


def _date_terms(year: int, month: int | None = None, day: int | None = None) -> list[str]:
    """ "@YYYY", and "@YYYY-MM" and "@YYYY-MM-DD" as far as given; none for an impossible date."""
    try:
        date(year, month or 1, day or 1)
    except ValueError:
        return []
    found = [f"{DATE}{year:04d}"]
    if month is not None:
        found.append(f"{DATE}{year:04d}-{month:02d}")
        if day is not None:
            found.append(f"{DATE}{year:04d}-{month:02d}-{day:02d}")
    return found


@dataclass
class Frequencies:
    """How many memories of one scope hold each term, and their total length: BM25's corpus."""

    documents: int = 0
    length: float = 0.0
    holding: Counter[str] = field(default_factory=Counter)

    def add(self, found: Terms) -> None:
        self.documents += 1
        self.length += length(found)
        self.holding.update(found.keys())

    def remove(self, found: Terms) -> None:
        self.documents -= 1
        self.length -= length(found)
        self.holding.subtract(found.keys())
        for term in [t for t in found if self.holding[t] <= 0]:
            del self.holding[term]


@dataclass(frozen=True)
class LexicalQuery:
    """A query's terms with their BM25 weights (idf / best possible score), the average
    memory length of the scopes searched, and how many terms the query has in all (`spoken`:
    those weighed and the words the scopes do not hold; 0: as many as are weighed)."""

    weights: dict[str, float]
    average_length: float
    spoken: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "weights": sorted(self.weights.items()),
            "average_length": self.average_length,
            "spoken": self.spoken,
        }

    @staticmethod
    def from_wire(wire: dict[str, Any]) -> LexicalQuery:
        weights = {str(t): float(w) for t, w in wire["weights"]}
        return LexicalQuery(weights, float(wire["average_length"]), int(wire.get("spoken", 0)))


def weigh(query: str, corpora: Iterable[Frequencies]) -> LexicalQuery:
    """The query's terms found in the scopes searched, weighed by their rarity there, and
    how many it has in all: those and its words (not those of its dates) found nowhere."""
    documents, length = 0, 0.0
    holding: Counter[str] = Counter()
    wanted = set(terms(query)) | query_dates(query)
    for corpus in corpora:
        documents += corpus.documents
        length += corpus.length
        holding.update({t: corpus.holding[t] for t in wanted if t in corpus.holding})
    idf = {t: math.log(1.0 + (documents - n + 0.5) / (n + 0.5)) for t, n in sorted(holding.items())}
    best = sum(idf.values()) * (K1 + 1.0)
    weights = {t: w / best for t, w in idf.items()} if best > 0 else {}
    unheld = set(terms(_undated(query))) - holding.keys()
    return LexicalQuery(
        weights, length / documents if documents else 1.0, len(weights) + len(unheld)
    )


def scores(
    query: LexicalQuery, postings: Postings, lengths: npt.NDArray[np.float32], count: int
) -> npt.NDArray[np.float32]:
    """Each of `count` memories' normalised BM25 score, from the postings of the query's terms,
    times its coverage (the share of the query's terms it holds) ** COVERAGE_EXPONENT; terms in
    one fixed order, so any tiling sums alike."""
    ats, occurring, weights, holding = [], [], [], []
    for term, weight in query.weights.items():
        found = postings.arrays(term)
        if found is not None:
            ats.append(found[0])
            occurring.append(found[1])
            weights.append(weight)
            holding.append(len(found[0]))
    if not ats:
        return np.zeros(count, np.float32)
    at, occurrences = np.concatenate(ats), np.concatenate(occurring)
    norm = K1 * (1.0 - B + B * lengths[at] / query.average_length)
    each = np.repeat(np.array(weights), holding) * occurrences * (K1 + 1.0) / (occurrences + norm)
    # bincount adds in input order: term by term, as the weights are ordered
    matched = np.bincount(at, each, count)
    coverage = np.bincount(at, None, count) / max(query.spoken, len(query.weights))
    return (matched * (coverage * np.sqrt(coverage))).astype(np.float32)  # COVERAGE_EXPONENT


class Postings:
    """term -> {position: occurrences} of one bucket, with each term's arrays kept beside it:
    recall reads them far more often than memories arrive. A new memory (the next position)
    is appended to its terms' arrays, amortised O(1): a term every memory has (a year, a
    frequent word) must not cost a rebuild of its whole posting list per imprint. Removing or
    moving a memory, which is rare, drops the arrays of its terms, rebuilt when next read."""

    def __init__(self) -> None:
        self._by_term: dict[str, dict[int, float]] = {}
        self._arrays: dict[str, _Growing] = {}
        self._stale: set[str] = set()  # terms without arrays since the last refresh

    def add(self, position: int, found: Terms) -> None:
        for term, count in found.items():
            posting = self._by_term.setdefault(term, {})
            grown = self._arrays.get(term)
            if grown is not None and position not in posting:
                grown.append(position, count)
            else:
                self._arrays.pop(term, None)
                self._stale.add(term)
            posting[position] = count

    def refresh(self) -> None:
        """Builds the arrays of the terms that have none, so that the next recall does not."""
        for term in self._stale:
            self.arrays(term)
        self._stale.clear()

    def remove(self, position: int, found: Terms) -> None:
        for term in found:
            posting = self._by_term[term]
            del posting[position]
            if not posting:
                del self._by_term[term]
            self._arrays.pop(term, None)

    def move(self, source: int, target: int, found: Terms) -> None:
        for term, count in found.items():
            posting = self._by_term[term]
            del posting[source]
            posting[target] = count
            self._arrays.pop(term, None)

    def arrays(self, term: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]] | None:
        """The term's positions and occurrences (views: valid until the term next changes)."""
        grown = self._arrays.get(term)
        if grown is None:
            posting = self._by_term.get(term)
            if not posting:
                return None
            grown = self._arrays[term] = _Growing(
                np.fromiter(posting.keys(), np.intp, len(posting)),
                np.fromiter(posting.values(), np.float64, len(posting)),
            )
        return grown.positions[: grown.size], grown.counts[: grown.size]


class _Growing:
    """A posting list's arrays with room to append (capacity doubles when full)."""

    def __init__(self, positions: npt.NDArray[np.intp], counts: npt.NDArray[np.float64]) -> None:
        self.positions, self.counts, self.size = positions, counts, len(positions)

    def append(self, position: int, count: float) -> None:
        if self.size == len(self.positions):
            room = max(8, 2 * self.size)
            self.positions = np.resize(self.positions, room)
            self.counts = np.resize(self.counts, room)
        self.positions[self.size], self.counts[self.size] = position, count
        self.size += 1
