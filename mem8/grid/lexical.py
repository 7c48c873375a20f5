"""Exact word matching for recall: what dense vectors miss (names, numbers, rare words).

A memory's terms are the stemmed words of its text and of the turn it followed (its context);
a query's terms are weighed by BM25 against the scope's document frequencies. The score is
normalised by the query's best possible score, so it lies in [0, 1] like a cosine and the two
can be mixed with fixed weights whatever the query."""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import snowballstemmer

from mem8.encoders.lexical import words

K1 = 1.2  # term-frequency saturation
B = 0.5  # length normalisation: memories are short, so only half of it
_stemmer = snowballstemmer.stemmer("english")

Terms = dict[str, float]  # term -> occurrences (a context's count as a fraction)


CONTEXT_WEIGHT = 0.5  # a word of the turn before counts half as much as the memory's own


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    """Stemming costs ~10 us a word; conversations reuse a small vocabulary."""
    stem: str = _stemmer.stemWord(word)
    return stem


def terms(text: str) -> Terms:
    """Stemmed words without stopwords, counted."""
    return {term: float(n) for term, n in Counter(map(_stem, words(text))).items()}


def memory_terms(text: str, context: str) -> Terms:
    """A memory's words and, at half weight, those of the turn it followed."""
    found = terms(text)
    for term, count in terms(context).items():
        found[term] = found.get(term, 0.0) + CONTEXT_WEIGHT * count
    return found


@dataclass
class Frequencies:
    """How many memories of one scope hold each term, and their total length: BM25's corpus."""

    documents: int = 0
    length: float = 0.0
    holding: Counter[str] = field(default_factory=Counter)

    def add(self, found: Terms) -> None:
        self.documents += 1
        self.length += sum(found.values())
        self.holding.update(found.keys())

    def remove(self, found: Terms) -> None:
        self.documents -= 1
        self.length -= sum(found.values())
        self.holding.subtract(found.keys())
        for term in [t for t in found if self.holding[t] <= 0]:
            del self.holding[term]


@dataclass(frozen=True)
class LexicalQuery:
    """A query's terms with their BM25 weights (idf / best possible score) and the average
    memory length of the scopes searched."""

    weights: dict[str, float]
    average_length: float

    def to_wire(self) -> dict[str, Any]:
        return {"weights": sorted(self.weights.items()), "average_length": self.average_length}

    @staticmethod
    def from_wire(wire: dict[str, Any]) -> LexicalQuery:
        weights = {str(t): float(w) for t, w in wire["weights"]}
        return LexicalQuery(weights, float(wire["average_length"]))


def weigh(query: str, corpora: Iterable[Frequencies]) -> LexicalQuery:
    """The query's terms found in the scopes searched, weighed by their rarity there."""
    documents, length = 0, 0.0
    holding: Counter[str] = Counter()
    wanted = set(terms(query))
    for corpus in corpora:
        documents += corpus.documents
        length += corpus.length
        holding.update({t: corpus.holding[t] for t in wanted if t in corpus.holding})
    idf = {t: math.log(1.0 + (documents - n + 0.5) / (n + 0.5)) for t, n in sorted(holding.items())}
    best = sum(idf.values()) * (K1 + 1.0)
    weights = {t: w / best for t, w in idf.items()} if best > 0 else {}
    return LexicalQuery(weights, length / documents if documents else 1.0)


def scores(
    query: LexicalQuery, postings: Postings, lengths: npt.NDArray[np.float32], count: int
) -> npt.NDArray[np.float32]:
    """Each of `count` memories' normalised BM25 score, from the postings of the query's terms;
    terms in one fixed order, so any tiling sums alike."""
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
    return np.bincount(at, each, count).astype(np.float32)


class Postings:
    """term -> {position: occurrences} of one bucket, with each term's arrays built once
    between changes (recall reads them far more often than memories arrive)."""

    def __init__(self) -> None:
        self._by_term: dict[str, dict[int, float]] = {}
        self._arrays: dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]] = {}
        self._stale: set[str] = set()  # terms added to since the last refresh

    def add(self, position: int, found: Terms) -> None:
        for term, count in found.items():
            self._by_term.setdefault(term, {})[position] = count
            self._arrays.pop(term, None)
        self._stale.update(found)

    def refresh(self) -> None:
        """Builds the arrays of the terms added to, so that the next recall does not."""
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
        cached = self._arrays.get(term)
        if cached is None:
            posting = self._by_term.get(term)
            if not posting:
                return None
            cached = self._arrays[term] = (
                np.fromiter(posting.keys(), np.intp, len(posting)),
                np.fromiter(posting.values(), np.float64, len(posting)),
            )
        return cached
