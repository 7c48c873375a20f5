"""What a prompt holds when the context is short, so that nothing mem8 adds breaks a chat.

In this order of claim: the client's messages (only they can exceed the context: a 400 with
OpenAI's `context_length_exceeded`), the persona's own prompt and tone, the reply's
reservation (the client's max_tokens or the persona's), recalled memories best first within
the memory budget (a share of the context), then the conversation's window newest first.
What does not fit is left out, never cut mid-text: a long memory is already shown by its most
relevant passage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mem8.backends.base import ChatMessage, TokenCounter
from mem8.errors import ContextLengthExceeded
from mem8.prompt import MEMORY_HEADER, with_memories


@dataclass(frozen=True, slots=True)
class Ask:
    """Everything a prompt could hold, and the limits it must keep."""

    persona: str  # the persona's prompt and tone: the system message mem8 adds
    memories: Sequence[tuple[str, str]]  # (memory id, its prompt line), best first
    window: Sequence[ChatMessage]  # the conversation's messages the client did not resend
    messages: Sequence[ChatMessage]  # the client's own, as sent
    context: int  # tokens the backend's context holds, prompt and reply together
    reply: int  # tokens the reply may take at most
    memory_share: float  # share of the context the memories may fill


@dataclass(frozen=True, slots=True)
class Fitted:
    messages: tuple[ChatMessage, ...]
    max_tokens: int  # the reply's room
    shown: tuple[str, ...]  # ids of the memories in the prompt
    prompt_tokens: int  # as the counter counts the whole prompt


def fit(ask: Ask, counter: TokenCounter) -> Fitted:
    client = counter.prompt(ask.messages)
    if client >= ask.context:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {ask.context} tokens, including the reply; "
            f"your messages take {client}. Shorten the conversation.",
            param="messages",
        )
    system = ask.persona
    base = counter.prompt(_assembled(system, (), (), ask.messages))
    if base >= ask.context:  # the client's messages leave no room for the persona's prompt
        system, base = "", client
    reply = min(ask.reply, ask.context - base)
    free = ask.context - base - reply
    shown, used = _memories(ask, counter, min(free, int(ask.memory_share * ask.context)))
    window = _window(ask.window, counter, free - used)
    while True:
        messages = _assembled(system, [line for _, line in shown], window, ask.messages)
        total = counter.prompt(messages)
        # The parts were counted apart; where joining them costs more, shed the least wanted.
        if total + reply <= ask.context or not (window or shown):
            break
        window, shown = (window[1:], shown) if window else (window, shown[:-1])
    room = max(1, min(reply, ask.context - total))
    return Fitted(tuple(messages), room, tuple(i for i, _ in shown), total)


def _assembled(
    system: str,
    lines: Sequence[str],
    window: Sequence[ChatMessage],
    messages: Sequence[ChatMessage],
) -> list[ChatMessage]:
    text = with_memories(system, list(lines))
    head = [ChatMessage("system", text)] if text else []
    return [*head, *window, *messages]


def _memories(ask: Ask, counter: TokenCounter, room: int) -> tuple[list[tuple[str, str]], int]:
    """The best memories whose lines fit the room, in rank order (a long line that does not
    fit leaves room for shorter ones after it), and the tokens they take with their header."""
    shown: list[tuple[str, str]] = []
    used = counter.text("\n\n" + MEMORY_HEADER)
    for memory_id, line in ask.memories:
        cost = counter.text(line) + 1
        if used + cost <= room:
            shown.append((memory_id, line))
            used += cost
    return shown, used if shown else 0


def _window(window: Sequence[ChatMessage], counter: TokenCounter, room: int) -> list[ChatMessage]:
    """The newest messages of the window that fit the room, oldest first (each costs what it
    adds to a prompt: a template may treat a prompt without a system message specially)."""
    kept: list[ChatMessage] = []
    probe = [ChatMessage("system", ".")]
    alone = counter.prompt(probe)
    for message in reversed(window):
        cost = counter.prompt([*probe, message]) - alone
        if cost > room:
            break
        kept.insert(0, message)
        room -= cost
    return kept
