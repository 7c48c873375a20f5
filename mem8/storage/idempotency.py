"""Answered requests by their `Idempotency-Key` (per tenant), in the store's SQLite file, so
that a retry, even after a restart, gets the first answer instead of a second one. A key is
remembered for a while (the memory actor's setting), then forgotten."""

from __future__ import annotations

from typing import NamedTuple

from mem8.storage.shelf import Shelf


class KeptAnswer(NamedTuple):
    request_sha256: str  # the body the key first came with
    answer: bytes  # what it was answered (msgpack)


class IdempotencyShelf(Shelf):
    """Reads and durable writes (one transaction each) of the `idempotency` table."""

    def find(self, tenant: str, key: str, since: float) -> KeptAnswer | None:
        """The answer kept for this key at or after `since`, if any."""
        row = self._db.execute(
            "SELECT request_sha256, answer FROM idempotency "
            "WHERE tenant = ? AND key = ? AND created >= ?",
            (tenant, key, since),
        ).fetchone()
        return None if row is None else KeptAnswer(row["request_sha256"], bytes(row["answer"]))

    def keep(
        self, tenant: str, key: str, request_sha256: str, at: float, answer: bytes, expired: float
    ) -> None:
        """Keeps an answer for its key (replacing an expired one), forgetting those kept
        before `expired`."""
        with self._write() as db:
            db.execute("DELETE FROM idempotency WHERE created < ?", (expired,))
            db.execute(
                "INSERT OR REPLACE INTO idempotency (tenant, key, request_sha256, created, answer) "
                "VALUES (?, ?, ?, ?, ?)",
                (tenant, key, request_sha256, at, answer),
            )
