"""The context budget: what mem8 adds never pushes a prompt over the backend's context."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mem8.backends.base import ChatMessage
from mem8.backends.fake import WordTokens
from mem8.budget import Ask, fit
from mem8.errors import ContextLengthExceeded

WORDS = WordTokens()
PERSONA = "You are the Technical Analyst."


def ask(
    *,
    messages: list[str],
    memories: Sequence[str] = (),
    window: Sequence[str] = (),
    context: int = 1000,
    reply: int = 100,
    share: float = 0.25,
) -> Ask:
    return Ask(
        persona=PERSONA,
        memories=[(f"m{i}", line) for i, line in enumerate(memories)],
        window=[ChatMessage(("user", "assistant")[i % 2], t) for i, t in enumerate(window)],
        messages=[ChatMessage("user", text) for text in messages],
        context=context,
        reply=reply,
        memory_share=share,
    )


def words(n: int, word: str = "w") -> str:
    return " ".join([word] * n)


def test_everything_fits_a_roomy_context() -> None:
    fitted = fit(ask(messages=["hi"], memories=["- a memory"], window=["q", "a"]), WORDS)
    system, *rest = fitted.messages
    assert PERSONA in system.content and "- a memory" in system.content
    assert [m.content for m in rest] == ["q", "a", "hi"]
    assert fitted.shown == ("m0",) and fitted.max_tokens == 100


def test_memories_fill_their_share_best_first_and_a_long_one_leaves_room_for_others() -> None:
    memories = [words(100, "best"), words(400, "huge"), words(100, "third"), words(100, "fourth")]
    fitted = fit(ask(messages=["hi"], memories=memories, context=1000, share=0.25), WORDS)
    assert fitted.shown == ("m0", "m2")  # 250 words: two of 100 (and the header), not the huge one
    assert fitted.prompt_tokens + fitted.max_tokens <= 1000


def test_the_window_is_trimmed_oldest_first() -> None:
    window = [words(200, "old"), words(200, "middle"), words(200, "new")]
    fitted = fit(ask(messages=[words(300)], window=window, context=1000, reply=100), WORDS)
    kept = [m.content.split()[0] for m in fitted.messages[1:-1]]
    assert kept == ["middle", "new"]


def test_the_reply_shrinks_to_the_room_the_client_leaves_and_memories_go_first() -> None:
    fitted = fit(ask(messages=[words(950)], memories=["- remembered"], reply=100), WORDS)
    assert fitted.shown == () and fitted.max_tokens == 1000 - fitted.prompt_tokens
    assert PERSONA in fitted.messages[0].content  # the persona's prompt stays


def test_only_the_client_s_own_messages_exceeding_the_context_are_an_error() -> None:
    with pytest.raises(ContextLengthExceeded) as raised:
        fit(ask(messages=[words(1000)]), WORDS)
    assert raised.value.code == "context_length_exceeded" and raised.value.param == "messages"
    assert "1000" in raised.value.message
    nearly = fit(ask(messages=[words(998)]), WORDS)  # no room for the persona: it gives way
    assert nearly.messages[0].role == "user" and nearly.max_tokens >= 1


@settings(max_examples=300, deadline=None)
@given(
    client=st.integers(1, 1500),
    memories=st.lists(st.integers(1, 600), max_size=8),
    window=st.lists(st.integers(1, 400), max_size=10),
    context=st.integers(256, 2048),
    reply=st.integers(1, 1024),
)
def test_what_mem8_adds_never_exceeds_the_context(
    client: int, memories: list[int], window: list[int], context: int, reply: int
) -> None:
    request = ask(
        messages=[words(client)],
        memories=[words(n) for n in memories],
        window=[words(n) for n in window],
        context=context,
        reply=reply,
    )
    if client >= context:
        with pytest.raises(ContextLengthExceeded):
            fit(request, WORDS)
        return
    fitted = fit(request, WORDS)
    assert WORDS.prompt(fitted.messages) == fitted.prompt_tokens
    assert fitted.prompt_tokens + fitted.max_tokens <= context
    assert 1 <= fitted.max_tokens <= reply
    assert fitted.messages[-1].content == words(client)  # the client's messages, whole
