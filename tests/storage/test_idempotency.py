"""Answers kept by Idempotency-Key in the store: found within their time, per tenant, expiring."""

from __future__ import annotations

from pathlib import Path

from mem8.storage.idempotency import KeptAnswer
from mem8.storage.sqlite import MemoryStore


def test_an_answer_is_found_by_tenant_and_key_until_it_expires(tmp_path: Path) -> None:
    with MemoryStore.open(tmp_path / "mem8.db") as store:
        shelf = store.idempotency
        shelf.keep("t", "k1", "sha-a", 100.0, b"first", expired=0.0)
        assert shelf.find("t", "k1", since=50.0) == KeptAnswer("sha-a", b"first")
        assert shelf.find("other", "k1", since=50.0) is None
        assert shelf.find("t", "k1", since=150.0) is None  # older than the caller keeps
        shelf.keep("t", "k2", "sha-b", 300.0, b"second", expired=200.0)
        assert shelf.find("t", "k1", since=0.0) is None  # forgotten once expired
    with MemoryStore.open(tmp_path / "mem8.db") as store:  # and kept across a restart
        assert store.idempotency.find("t", "k2", since=0.0) == KeptAnswer("sha-b", b"second")
