"""Exact word matching: a memory's dates as terms, and the dates a query names."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from mem8.grid import lexical


@pytest.mark.parametrize(
    ("query", "dates"),
    [
        ("What did Melanie paint on October 13, 2023?", {"2023", "2023-10", "2023-10-13"}),
        ("and on 13th of Oct 2023?", {"2023", "2023-10", "2023-10-13"}),
        ("the week before August 3rd, 2023", {"2023", "2023-08", "2023-08-03"}),
        ("What did John do in May 2023?", {"2023", "2023-05"}),
        ("Sept. 2022 and 2021", {"2022", "2022-09", "2021"}),
        ("on 2024-02-29", {"2024", "2024-02", "2024-02-29"}),
        ("on 2023-02-30", {"2023"}),  # no such day: the year alone
        ("May I ask what happened on May 2nd?", set()),  # no year: not resolved
        ("in the 1800s, at 2300 hours", set()),
    ],
)
def test_a_query_names_days_months_and_years(query: str, dates: set[str]) -> None:
    assert lexical.query_dates(query) == {lexical.DATE + d for d in dates}


def test_a_memory_has_the_day_month_and_year_it_was_perceived_in_utc() -> None:
    created = datetime(2023, 10, 13, 23, 59, tzinfo=UTC).timestamp()
    found = lexical.memory_terms("Painted the sunset", "Show me", created)
    assert {t for t in found if t.startswith(lexical.DATE)} == {
        "@2023",
        "@2023-10",
        "@2023-10-13",
    }
    assert lexical.length(found) == 2 + lexical.CONTEXT_WEIGHT  # dates are not words


def test_a_named_date_weighs_like_a_rare_word() -> None:
    """In a corpus of two days, the day a query names is as rare as a word on one of them."""
    corpus = lexical.Frequencies()
    for day in (13, 14, 14, 14):
        created = datetime(2023, 10, day, 12, tzinfo=UTC).timestamp()
        corpus.add(lexical.memory_terms("painted the sunset", "", created))
    weights = lexical.weigh("What was painted on October 13, 2023?", [corpus]).weights
    assert weights["@2023-10-13"] > weights["paint"] > 0
    assert "@2023-10-14" not in weights


def test_postings_kept_in_step_equal_postings_built_afresh() -> None:
    """Appends grow a term's arrays in place; removes and moves rebuild them: either way a
    term's arrays hold exactly its postings."""
    kept = lexical.Postings()
    documents: list[lexical.Terms] = []
    for n in range(300):
        found = {"@2023": 1.0, f"w{n % 7}": float(1 + n % 3)}
        kept.add(len(documents), found)  # a new memory takes the next position
        documents.append(found)
        if n % 50 == 0:
            kept.refresh()
        if n % 40 == 39:  # forget the memory at n // 2: the last one moves into its place
            gone, last = n // 2, len(documents) - 1
            kept.remove(gone, documents[gone])
            kept.move(last, gone, documents[last])
            documents[gone] = documents.pop()
        kept.arrays("@2023")  # read between changes, as recalls do
    fresh = lexical.Postings()
    for n, found in enumerate(documents):
        fresh.add(n, found)
    for term in ["@2023", *(f"w{i}" for i in range(7))]:
        got, expected = kept.arrays(term), fresh.arrays(term)
        assert got is not None and expected is not None
        assert dict(zip(*got, strict=True)) == dict(zip(*expected, strict=True))
        assert len(got[0]) == len(set(got[0].tolist()))


def test_a_query_counts_its_words_no_memory_holds_but_not_its_dates_words() -> None:
    corpus = lexical.Frequencies()
    corpus.add(lexical.memory_terms("a new restaurant opened", "", 1.7e9))
    query = lexical.weigh("the new menu of the restaurant on 13 October 2023", [corpus])
    assert set(query.weights) == {"new", "restaur", "@2023"}  # the memory's year is held
    assert query.spoken == 4  # and "menu": not "13", "octob" or "2023", which are the date
    assert lexical.LexicalQuery.from_wire(query.to_wire()) == query


def test_a_memory_scores_its_share_of_the_query_terms_it_holds() -> None:
    """BM25 normalised, times the share of the query's terms the memory holds to the power
    COVERAGE_EXPONENT: one word of a four-word query counts far less than it would alone."""
    postings = lexical.Postings()
    documents = [{"cat": 1.0}, {"cat": 1.0, "miso": 1.0}, {"dog": 1.0}]
    for position, found in enumerate(documents):
        postings.add(position, found)
    lengths = np.array([1.0, 2.0, 1.0], np.float32)
    words = {"cat": 0.25, "miso": 0.25}
    alone = lexical.scores(lexical.LexicalQuery({"cat": 0.25}, 1.0), postings, lengths, 3)
    plain = lexical.scores(lexical.LexicalQuery(words, 1.0), postings, lengths, 3)
    spoken = lexical.scores(lexical.LexicalQuery(words, 1.0, spoken=4), postings, lengths, 3)
    power = lexical.COVERAGE_EXPONENT
    assert plain[2] == spoken[2] == 0.0
    assert plain[0] == pytest.approx(alone[0] * 0.5**power)  # 1 of 2 terms
    assert spoken[0] == pytest.approx(alone[0] * 0.25**power)  # 1 of 4
    assert spoken[1] == pytest.approx(plain[1] * 0.5**power)  # 2 of 4 against 2 of 2
