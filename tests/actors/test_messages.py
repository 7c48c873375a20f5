"""Messages and the typed records they carry: they encode to the msgpack maps the untyped
payloads were (so journals written before them replay), and decoding checks them."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import pytest

from mem8 import errors
from mem8.actors.messages import (
    SCHEMA_VERSION,
    AnswerShape,
    Association,
    Begin,
    Begun,
    Chat,
    Chunk,
    Commit,
    ErrorReport,
    Finished,
    GridForget,
    GridImprinted,
    GridRecalled,
    GridSupersede,
    Hit,
    Message,
    MessageError,
    Outcome,
    Percept,
    ReadOut,
    RecalledMemory,
    Remember,
    Supersession,
    Token,
    ToolCalled,
    Turn,
    decode,
    from_map,
    last_user_text,
)
from mem8.scope import Scope

CHAT = Chat("r1", "p", "t", "u", 1.5, [Turn("user", "hi")], temperature=0.2)
RECALLED = RecalledMemory(
    "mem-1", "Lisbon in June.", False, 10.0, [0.1, 0.2, 0.5], "chat:r0:user", "", 0.7, 0.6
)


def packed(body: dict[str, Any]) -> bytes:
    encoded: bytes = msgpack.packb(body, use_bin_type=True)
    return encoded


def test_messages_round_trip() -> None:
    assert decode(CHAT.encode()) == CHAT


def test_tool_turns_and_an_answer_shape_round_trip() -> None:
    calls = '[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]'
    turns = [
        Turn("user", "hi"),
        Turn("assistant", "", tool_calls=calls),
        Turn("tool", "42", tool_call_id="c1", name="f"),
    ]
    shape = AnswerShape(tools='[{"name": "f"}]', tool_choice="f", logprobs=True, n=2)
    chat = Chat("r1", "p", "t", "u", 1.5, turns, shape=shape)
    assert decode(chat.encode()) == chat
    assert "shape" not in CHAT.to_map()  # a plain chat is journaled as it was before shapes
    assert "tool_calls" not in Turn("user", "hi").to_map()
    for message in (ToolCalled("r1", calls, 1), Token("r1", "a", 1, "[]")):
        assert decode(message.encode()) == message


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xc1", "not a msgpack message"),
        (msgpack.packb([1, 2]), "must be a map"),
        (msgpack.packb({"type": "nope", "v": SCHEMA_VERSION}), "unknown message type"),
        (
            msgpack.packb({"type": "token", "v": 99, "request_id": "r", "text": "t"}),
            "schema version",
        ),
        (
            msgpack.packb({"type": "token", "v": SCHEMA_VERSION, "request_id": "r"}),
            "missing fields",
        ),
        (
            packed(
                {
                    "type": "token",
                    "v": SCHEMA_VERSION,
                    "request_id": "r",
                    "text": 3,
                    "index": 0,
                    "logprobs": None,
                }
            ),
            "token.text",
        ),
    ],
)
def test_invalid_messages_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        decode(body)


def test_a_chat_encodes_its_turns_as_the_maps_it_always_did() -> None:
    old = {
        "request_id": "r1",
        "persona": "p",
        "tenant": "t",
        "user": "u",
        "arrival": 1.5,
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "top_p": None,
        "max_tokens": None,
        "stop": [],
        "seed": None,
        "conversation": "",
        "type": "chat",
        "v": SCHEMA_VERSION,
    }
    assert CHAT.encode() == packed(old)
    assert from_map(old) == CHAT


def test_begin_carries_the_chat_as_its_map() -> None:
    begin = Begin("r1", CHAT, "c")
    old = {"request_id": "r1", "chat": CHAT.to_map(), "conversation": "c"}
    assert begin.encode() == packed({**old, "type": "begin", "v": SCHEMA_VERSION})
    assert decode(begin.encode()) == begin


def test_a_percept_leaves_its_vector_out_until_it_has_one() -> None:
    bare = Percept("It rained.", "audio:1", "audio", 6.0)
    encoded = Percept("It rained.", "audio:1", "audio", 6.0, b"\x00\x00\x80?")
    remember = Remember("r2", "t", "u", "p", [bare, encoded], 0.7)
    old_percepts = [
        {"text": "It rained.", "source": "audio:1", "modality": "audio", "created": 6.0},
        {
            "text": "It rained.",
            "source": "audio:1",
            "modality": "audio",
            "created": 6.0,
            "vector": b"\x00\x00\x80?",
        },
    ]
    old = {
        "request_id": "r2",
        "tenant": "t",
        "user": "u",
        "persona": "p",
        "percepts": old_percepts,
        "importance": 0.7,
        "type": "remember",
        "v": SCHEMA_VERSION,
    }
    assert remember.encode() == packed(old)
    assert decode(packed(old)) == remember


def test_begun_and_commit_encode_their_records_as_before() -> None:
    begun = Begun("r1", [0.1, 0.2, 0.5], 0.3, [RECALLED], [Turn("user", "hi")])
    assert begun.to_map()["recalled"] == [
        {
            "id": "mem-1",
            "text": "Lisbon in June.",
            "excerpt": False,
            "created": 10.0,
            "emotion": [0.1, 0.2, 0.5],
            "source": "chat:r0:user",
            "superseded_by": "",
            "score": 0.7,
            "resonance": 0.6,
        }
    ]
    assert decode(begun.encode()) == begun
    outcome = Outcome(["Hel", "lo"], Finished("stop", 3, 2), None)
    commit = Commit(
        "r1", "p", "t", "u", "c", 1.5, [Turn("user", "hi")], True, 0.8, ["mem-1"], outcome,
        outcome.digest(), "scripted",
    )  # fmt: skip
    wire = msgpack.unpackb(commit.encode(), raw=False)
    assert wire["outcome"] == {"text": ["Hel", "lo"], "finish": ["stop", 3, 2], "error": None}
    assert wire["exchange"] == [{"role": "user", "content": "hi"}]
    assert decode(commit.encode()) == commit


def test_an_outcome_digests_as_the_journal_recorded_it() -> None:
    answered = Outcome(["Hel", "lo"], Finished("stop", 3, 2), None)
    summary = packed_list(["ok", "Hello", "stop", 3, 2])
    assert answered.digest() == summary
    failed = Outcome.of(["Hel"], None, errors.BackendFailed("down"))
    assert failed.error == ErrorReport("BackendFailed", "down")
    assert failed.digest() == packed_list(["error", "BackendFailed", "down"])
    wire = {"text": ["Hel"], "finish": None, "error": ["BackendFailed", "down"]}
    assert packed(failed.to_map()) == packed(wire)  # a row is a tuple, packed as an array
    assert Outcome.from_map(wire) == failed


def packed_list(summary: list[Any]) -> str:
    return hashlib.sha256(msgpack.packb(summary, use_bin_type=True)).hexdigest()


@pytest.mark.parametrize(
    "message",
    [
        GridRecalled("r", [Hit("m1", 0.5), Hit("m2", 0.25)]),
        GridImprinted("r", [Association("m1", "m2", 0.4)]),
        GridSupersede("r", [Supersession("m1", True)]),
    ],
)
def test_rows_travel_as_arrays(message: Message) -> None:
    body = msgpack.unpackb(message.encode(), raw=False)
    rows = next(v for k, v in body.items() if isinstance(v, list))
    assert all(isinstance(row, list) for row in rows)
    assert decode(message.encode()) == message


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"messages": [{"role": "user"}]}, r"chat.messages\[0\]: missing fields \['content'\]"),
        ({"messages": [{"role": "user", "content": 3}]}, r"chat.messages\[0\].content"),
        ({"messages": "hi"}, r"chat.messages: expected a list"),
    ],
)
def test_a_record_that_does_not_fit_is_refused(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        from_map({**CHAT.to_map(), **body})


def test_a_row_of_the_wrong_length_is_refused() -> None:
    body = {"type": "grid_recalled", "v": SCHEMA_VERSION, "request_id": "r", "hits": [["m1"]]}
    with pytest.raises(MessageError, match=r"hits\[0\]: expected an array of 2"):
        from_map(body)


def test_the_last_user_text_is_what_the_user_said_last() -> None:
    turns = [Turn("user", "one"), Turn("assistant", "two"), Turn("user", "three")]
    assert last_user_text(turns) == "three"
    assert last_user_text([Turn("system", "be brief")]) == ""


def test_what_was_read_travels_as_the_chunk_maps_it_always_did() -> None:
    read = ReadOut("r", "pdf", 2, [Chunk("Quarterly numbers.", "page 2", "document")])
    old = {"text": "Quarterly numbers.", "where": "page 2", "modality": "document"}
    assert msgpack.unpackb(read.encode(), raw=False)["chunks"] == [old]
    assert decode(read.encode()) == read


def test_a_scope_travels_as_tenant_user_persona() -> None:
    forget = GridForget("r", "m1", Scope("t", "u", "p"), "text", "", 5.0)
    assert msgpack.unpackb(forget.encode(), raw=False)["scope"] == ["t", "u", "p"]
    assert decode(forget.encode()) == forget
    assert decode(GridForget("r", "m1").encode()) == GridForget("r", "m1")
    body = {**forget.to_map(), "scope": ["t", "u"]}
    with pytest.raises(MessageError, match=r"grid_forget.scope: expected \[tenant"):
        from_map(body)
