"""Stored chat completions and responses in the store: per tenant and kind, filtered by model
and metadata, paged in either order, changed and deleted, kept across a reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from mem8.errors import NotFound
from mem8.storage.sqlite import MemoryStore
from mem8.storage.stored import StoredExchange, StoredShelf

CHAT = "chat.completion"


def exchange(
    exchange_id: str,
    created: float,
    *,
    tenant: str = "t",
    kind: str = CHAT,
    model: str = "m",
    metadata: dict[str, str] | None = None,
) -> StoredExchange:
    return StoredExchange(
        exchange_id, tenant, kind, model, "", created, metadata or {}, "{}", '{"text": "hi"}'
    )


def listed(shelf: StoredShelf, **asked: object) -> tuple[list[str], bool]:
    options: dict[str, object] = {
        "model": None,
        "metadata": {},
        "limit": 10,
        "after": None,
        "descending": False,
        **asked,
    }
    found, more = shelf.list("t", CHAT, **options)  # type: ignore[arg-type]
    return [e.id for e in found], more


def test_a_tenant_sees_only_its_own_of_one_kind(tmp_path: Path) -> None:
    with MemoryStore.open(tmp_path / "mem8.db") as store:
        shelf = store.stored
        shelf.add(exchange("a", 1.0))
        shelf.add(exchange("b", 2.0, tenant="u"))
        shelf.add(exchange("c", 3.0, kind="response"))
        assert shelf.get("a", "t", CHAT).answer == '{"text": "hi"}'
        for exchange_id, tenant, kind in (("a", "u", CHAT), ("c", "t", CHAT)):
            with pytest.raises(NotFound):
                shelf.get(exchange_id, tenant, kind)
            with pytest.raises(NotFound):
                shelf.delete(exchange_id, tenant, kind)
        assert listed(shelf) == (["a"], False)


def test_filters_and_pages_in_either_order(tmp_path: Path) -> None:
    with MemoryStore.open(tmp_path / "mem8.db") as store:
        shelf = store.stored
        shelf.add(exchange("a", 1.0, metadata={"run": "x"}))
        shelf.add(exchange("b", 1.0, model="n", metadata={"run": "y", "k": "v"}))  # same second
        shelf.add(exchange("c", 2.0, metadata={"run": "x", "k": "v"}))
        assert listed(shelf) == (["a", "b", "c"], False)
        assert listed(shelf, descending=True) == (["c", "b", "a"], False)
        assert listed(shelf, limit=2) == (["a", "b"], True)
        assert listed(shelf, after="a") == (["b", "c"], False)
        assert listed(shelf, after="b", descending=True) == (["a"], False)
        assert listed(shelf, model="n") == (["b"], False)
        assert listed(shelf, metadata={"run": "x"}) == (["a", "c"], False)
        assert listed(shelf, metadata={"run": "x", "k": "v"}) == (["c"], False)
        assert listed(shelf, metadata={"k": "x"}) == ([], False)
        with pytest.raises(NotFound):
            listed(shelf, after="nope")


def test_metadata_is_set_anew_and_a_delete_is_kept_across_reopening(tmp_path: Path) -> None:
    with MemoryStore.open(tmp_path / "mem8.db") as store:
        store.stored.add(exchange("a", 1.0, metadata={"run": "x"}))
        store.stored.add(exchange("b", 2.0))
        assert store.stored.set_metadata("a", "t", CHAT, {"k": "v"}).metadata == {"k": "v"}
        store.stored.delete("b", "t", CHAT)
    with MemoryStore.open(tmp_path / "mem8.db") as store:
        assert store.stored.get("a", "t", CHAT).metadata == {"k": "v"}
        assert listed(store.stored) == (["a"], False)
