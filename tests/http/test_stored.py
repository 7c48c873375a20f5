"""Stored chat completions (`store: true`) through the official openai client: list, filter,
page, update, delete and the request's messages, per API key, across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
from openai import OpenAI

from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.errors import BackendUnavailable
from tests.http.test_contract import assert_matches
from tests.support.openapi import violations
from tests.support.server import RunningServer, running_server

MODEL = "mem8-creative-v1"
OTHER = "mem8-technical-v1"


def ask(client: OpenAI, text: str, **extra: object) -> str:
    completion = client.chat.completions.create(
        model=extra.pop("model", MODEL),  # type: ignore[arg-type]
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        **extra,  # type: ignore[arg-type]
    )
    return completion.id


@pytest.fixture
def other(server: RunningServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.base_url, api_key="another-key", max_retries=0) as openai_:
        yield openai_


def test_only_stored_completions_are_listed_with_their_answer_and_metadata(
    client: OpenAI, llm: ScriptedLLM
) -> None:
    llm.enqueue(["Waves upon the shore", "Not kept"])
    kept = ask(client, "Tell me of the sea", store=True, metadata={"topic": "sea"})
    ask(client, "Forget this one")
    listed = client.chat.completions.list()
    assert [c.id for c in listed.data] == [kept]
    stored = client.chat.completions.retrieve(kept)
    assert stored.choices[0].message.content == "Waves upon the shore"
    assert stored.metadata == {"topic": "sea"}
    assert stored.model == MODEL
    assert stored.usage is not None and stored.usage.completion_tokens == 4


def test_a_failed_completion_is_not_stored(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue([BackendUnavailable("the test backend is down")])
    with pytest.raises(openai.InternalServerError):
        ask(client, "Hello?", store=True)
    assert client.chat.completions.list().data == []


def test_a_streamed_completion_is_stored_whole(client: OpenAI, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore"])
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Sing"}],
        stream=True,
        store=True,
    )
    ids = {chunk.id for chunk in stream}
    (completion_id,) = ids
    stored = client.chat.completions.retrieve(completion_id)
    assert stored.choices[0].message.content == "Waves upon the shore"
    assert stored.choices[0].finish_reason == "stop"


def test_filters_by_model_and_metadata_and_pages_in_order(client: OpenAI, llm: ScriptedLLM) -> None:
    first = ask(client, "one", store=True, metadata={"run": "a"})
    second = ask(client, "two", store=True, metadata={"run": "b", "k": "v"})
    third = ask(client, "three", store=True, metadata={"run": "a"}, model=OTHER)
    assert [c.id for c in client.chat.completions.list(model=OTHER)] == [third]
    assert [c.id for c in client.chat.completions.list(metadata={"run": "a"})] == [first, third]
    both = {"run": "b", "k": "v"}
    assert [c.id for c in client.chat.completions.list(metadata=both)] == [second]
    assert [c.id for c in client.chat.completions.list(metadata={"run": "c"})] == []
    page = client.chat.completions.list(limit=2)
    assert [c.id for c in page.data] == [first, second] and page.has_more
    assert [c.id for c in client.chat.completions.list(limit=2, after=second).data] == [third]
    assert [c.id for c in client.chat.completions.list(order="desc")] == [third, second, first]
    assert [c.id for c in client.chat.completions.list(limit=1)] == [first, second, third]


def test_metadata_is_updated_and_a_deleted_completion_is_gone(client: OpenAI) -> None:
    kept = ask(client, "hello", store=True, metadata={"a": "1"})
    updated = client.chat.completions.update(kept, metadata={"b": "2"})
    assert updated.metadata == {"b": "2"}
    assert client.chat.completions.retrieve(kept).metadata == {"b": "2"}
    deleted = client.chat.completions.delete(kept)
    assert (deleted.id, deleted.deleted, deleted.object) == (kept, True, "chat.completion.deleted")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(kept)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.delete(kept)
    assert client.chat.completions.list().data == []


def test_the_messages_of_a_stored_completion_are_paged(client: OpenAI) -> None:
    kept = ask(client, "What is the tide?", store=True)
    messages = client.chat.completions.messages.list(kept)
    assert [(m.role, m.content) for m in messages.data] == [  # type: ignore[comparison-overlap]
        ("system", "Be brief."),
        ("user", "What is the tide?"),
    ]
    page = client.chat.completions.messages.list(kept, limit=1)
    assert [m.content for m in page.data] == ["Be brief."] and page.has_more
    after = client.chat.completions.messages.list(kept, after=page.data[0].id)
    assert [m.content for m in after.data] == ["What is the tide?"]
    newest = client.chat.completions.messages.list(kept, order="desc", limit=1)
    assert [m.content for m in newest.data] == ["What is the tide?"]


def test_one_key_never_sees_anothers_stored_completions(client: OpenAI, other: OpenAI) -> None:
    mine = ask(client, "mine", store=True)
    theirs = ask(other, "theirs", store=True)
    assert [c.id for c in client.chat.completions.list()] == [mine]
    assert [c.id for c in other.chat.completions.list()] == [theirs]
    for attempt in (
        lambda: other.chat.completions.retrieve(mine),
        lambda: other.chat.completions.update(mine, metadata={"x": "y"}),
        lambda: other.chat.completions.delete(mine),
        lambda: other.chat.completions.messages.list(mine),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert client.chat.completions.retrieve(mine).metadata == {}


@contextmanager
def serving(settings: Settings, llm: ScriptedLLM) -> Iterator[OpenAI]:
    """A client of a server on the settings' store, until the block ends."""
    with (
        running_server(settings, dict.fromkeys(settings.personas, llm)) as server,
        OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
    ):
        yield client


def test_stored_completions_survive_a_restart(settings: Settings, llm: ScriptedLLM) -> None:
    llm.enqueue(["Waves upon the shore"])
    with serving(settings, llm) as client:
        kept = ask(client, "Remember me", store=True, metadata={"a": "1"})
    with serving(settings, llm) as client:
        stored = client.chat.completions.retrieve(kept)
        assert stored.choices[0].message.content == "Waves upon the shore"
        assert stored.metadata == {"a": "1"}
        messages = client.chat.completions.messages.list(kept)
        assert [m.content for m in messages] == ["Be brief.", "Remember me"]


@pytest.mark.parametrize(
    "metadata",
    [{"k": 1}, {f"k{i}": "v" for i in range(17)}, {"k" * 65: "v"}, {"k": "v" * 513}, ["k"]],
)
def test_metadata_beyond_openais_limits_is_refused(client: OpenAI, metadata: object) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, "hello", store=True, metadata=metadata)
    assert str(refused.value.body["param"]).startswith("metadata")  # type: ignore[index]


def test_what_the_routes_answer_is_what_openais_description_says(
    server: RunningServer, client: OpenAI
) -> None:
    kept = ask(client, "hello", store=True, metadata={"a": "1"})
    auth = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as http:
        empty = http.get("/chat/completions", params={"model": "none"}).json()
        # An empty page names no first or last id: null, as mem8's other lists (/v1/files) say,
        # where the description asks for strings (a deviation, checked to be the only one).
        assert (empty["first_id"], empty["last_id"]) == (None, None)
        assert_matches("ChatCompletionList", {**empty, "first_id": "", "last_id": ""})
        listed = http.get("/chat/completions").json()
        assert_matches("ChatCompletionList", listed)
        assert_matches("CreateChatCompletionResponse", http.get(f"/chat/completions/{kept}").json())
        updated = http.post(f"/chat/completions/{kept}", json={"metadata": {"b": "2"}}).json()
        assert_matches("CreateChatCompletionResponse", updated)
        messages = http.get(f"/chat/completions/{kept}/messages").json()
        # OpenAI's description gives each listed message the role of an answer ("assistant"),
        # while its own example lists the request's "user" message: the roles are the request's.
        assert [m["role"] for m in messages["data"]] == ["system", "user"]
        as_described = [{**m, "role": "assistant"} for m in messages["data"]]
        assert_matches("ChatCompletionMessageList", {**messages, "data": as_described})
        assert violations("ChatCompletionMessageList", messages)  # the deviation is real
        deleted = http.delete(f"/chat/completions/{kept}").json()
        assert_matches("ChatCompletionDeleted", deleted)
