"""Long texts become passages of bounded length, cut at sentence boundaries, in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mem8.passages import PASSAGE_CHARS, most_relevant, passages

LEAK = (
    "A goroutine leak happens when a goroutine starts but never returns. "
    "It usually blocks forever on a channel that nobody writes to. "
    "Each leaked goroutine keeps its stack, so memory grows until the service falls over. "
)


def test_a_short_text_is_one_passage_and_nothing_is_none() -> None:
    assert passages("  Hello there.  ") == ["Hello there."]
    assert passages("") == [] and passages(" \n ") == []


def test_a_long_text_is_cut_at_sentences_into_passages_of_about_equal_length() -> None:
    text = LEAK * 12
    found = passages(text)
    assert len(found) >= len(text) // PASSAGE_CHARS
    assert all(len(p) <= PASSAGE_CHARS for p in found)
    assert all(p.endswith(".") for p in found)  # every cut is at a sentence's end
    assert min(len(p) for p in found) > PASSAGE_CHARS / 3  # no stub at the end
    assert " ".join(found) == text.strip()


def test_line_breaks_survive_inside_a_passage() -> None:
    text = "Steps:\n- build it\n- run it\n" + LEAK * 6
    assert passages(text)[0].startswith("Steps:\n- build it\n- run it\n")


def test_a_sentence_longer_than_a_passage_is_cut_at_words() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    found = passages(words, 100)
    assert all(len(p) <= 100 for p in found)
    assert " ".join(found).split() == words.split()


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=3000), st.integers(20, 700))
def test_passages_keep_every_word_in_order_within_the_limit(text: str, limit: int) -> None:
    found = passages(text, limit)
    assert all(0 < len(p) <= limit for p in found)
    assert "".join("".join(found).split()) == "".join(text.split())


def test_the_most_relevant_passage_shares_the_query_s_rarest_words() -> None:
    text = LEAK * 4 + "My name is Priya and I maintain the billing service in Go. " + LEAK * 4
    passage, excerpt = most_relevant(text, "Who maintains the billing service?")
    assert excerpt and "billing service" in passage and len(passage) <= PASSAGE_CHARS
    first, _ = most_relevant(text, "tell me a joke about cats")  # no shared word: the first
    assert first == passages(text)[0]
    assert most_relevant("Short.", "anything") == ("Short.", False)
