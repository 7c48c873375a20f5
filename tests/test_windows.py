"""The rolling windows' bounds: messages per conversation, conversations, characters, idle."""

from __future__ import annotations

from mem8.actors.messages import Turn
from mem8.windows import MESSAGES, WindowLimits, Windows


def said(text: str) -> list[Turn]:
    return [Turn("user", text), Turn("assistant", "ok")]


def test_a_window_keeps_the_last_messages_of_its_conversation() -> None:
    windows = Windows(WindowLimits())
    for i in range(MESSAGES):
        windows.extend("a", said(f"message {i}"), float(i))
    kept = windows.get("a")
    assert len(kept) == MESSAGES and kept[0].content == f"message {MESSAGES // 2}"


def test_the_least_recently_answered_conversation_goes_first() -> None:
    windows = Windows(WindowLimits(conversations=2))
    windows.extend("a", said("a"), 1.0)
    windows.extend("b", said("b"), 2.0)
    windows.extend("a", said("a again"), 3.0)
    windows.extend("c", said("c"), 4.0)
    assert (windows.get("b"), len(windows)) == ([], 2)


def test_characters_in_all_windows_are_bounded() -> None:
    windows = Windows(WindowLimits(chars=100))
    windows.extend("a", said("x" * 60), 1.0)
    windows.extend("b", said("y" * 30), 2.0)
    assert windows.get("a") and windows.chars == 60 + 30 + 4
    windows.extend("c", said("z" * 30), 3.0)
    assert windows.get("a") == [] and windows.chars == 2 * (30 + 2)


def test_an_idle_window_expires_by_the_requests_own_time() -> None:
    windows = Windows(WindowLimits(idle_seconds=10.0))
    windows.extend("a", said("a"), 1.0)
    windows.extend("b", said("b"), 5.0)
    windows.extend("b", said("b"), 12.0)
    assert windows.get("a") == [] and windows.get("b")


def test_restored_windows_drop_in_the_same_order() -> None:
    windows = Windows(WindowLimits(conversations=2))
    windows.extend("b", said("b"), 1.0)
    windows.extend("a", said("a"), 2.0)
    again = Windows.restored(windows.limits, windows.contents(), windows.order())
    again.extend("c", said("c"), 3.0)
    assert again.get("b") == [] and again.get("a")


def test_windows_saved_without_times_count_as_used_at_the_next_answer() -> None:
    old = Windows.restored(
        WindowLimits(idle_seconds=10.0), {"a": [t.to_map() for t in said("a")]}, None
    )
    old.extend("b", said("b"), 1e9)
    assert old.get("a") and old.order() == [["a", 1e9], ["b", 1e9]]
