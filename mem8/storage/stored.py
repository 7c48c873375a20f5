"""Stored chat completions and responses (`store: true`), in the store's SQLite file: what was
asked (as the routes show it back), what was answered, and the caller's metadata. A tenant (API
key) sees only its own."""

from __future__ import annotations

import builtins
import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from mem8.errors import NotFound
from mem8.storage.shelf import Shelf

KINDS = ("chat.completion", "response")
_FIELDS = ("id", "tenant", "kind", "model", "user", "created", "metadata", "request", "answer")


@dataclass(frozen=True)
class StoredExchange:
    """One stored request and its answer; `request` and `answer` are JSON texts."""

    id: str
    tenant: str
    kind: str  # one of KINDS
    model: str
    user: str
    created: float
    metadata: dict[str, str]
    request: str
    answer: str

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


def _exchange(row: sqlite3.Row) -> StoredExchange:
    return StoredExchange(**{**dict(row), "metadata": json.loads(row["metadata"])})


class StoredShelf(Shelf):
    """Reads and durable writes (one transaction each) of the `stored` table."""

    def add(self, exchange: StoredExchange) -> None:
        row = {**exchange.to_wire(), "metadata": json.dumps(exchange.metadata)}
        with self._write() as db:
            db.execute(
                f"INSERT INTO stored ({', '.join(_FIELDS)}) "
                f"VALUES ({', '.join(':' + c for c in _FIELDS)})",
                row,
            )

    def get(self, exchange_id: str, tenant: str, kind: str) -> StoredExchange:
        row = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM stored WHERE id = ? AND tenant = ? AND kind = ?",
            (exchange_id, tenant, kind),
        ).fetchone()
        if row is None:
            raise NotFound(f"No stored {kind} found with id '{exchange_id}'", param="id")
        return _exchange(row)

    def set_metadata(
        self, exchange_id: str, tenant: str, kind: str, metadata: dict[str, str]
    ) -> StoredExchange:
        with self._write() as db:
            db.execute(
                "UPDATE stored SET metadata = ? WHERE id = ? AND tenant = ? AND kind = ?",
                (json.dumps(metadata), exchange_id, tenant, kind),
            )
        return self.get(exchange_id, tenant, kind)

    def delete(self, exchange_id: str, tenant: str, kind: str) -> None:
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM stored WHERE id = ? AND tenant = ? AND kind = ?",
                (exchange_id, tenant, kind),
            )
        if cursor.rowcount == 0:
            raise NotFound(f"No stored {kind} found with id '{exchange_id}'", param="id")

    def list(
        self,
        tenant: str,
        kind: str,
        *,
        model: str | None,
        metadata: dict[str, str],
        limit: int,
        after: str | None,
        descending: bool,
    ) -> tuple[builtins.list[StoredExchange], bool]:
        """A page of the tenant's stored exchanges of a kind by creation (then storing order),
        matching the model and every metadata pair given, and whether more follow."""
        clauses = ["tenant = ?", "kind = ?"]
        params: list[Any] = [tenant, kind]
        if model is not None:
            clauses.append("model = ?")
            params.append(model)
        for key, value in sorted(metadata.items()):
            clauses.append(
                "EXISTS (SELECT 1 FROM json_each(stored.metadata) WHERE key = ? AND value = ?)"
            )
            params.extend([key, value])
        if after is not None:
            clauses.append(f"(created, rowid) {'<' if descending else '>'} (?, ?)")
            params.extend(self._position(after, tenant, kind))
        order = "DESC" if descending else "ASC"
        rows = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM stored WHERE {' AND '.join(clauses)} "
            f"ORDER BY created {order}, rowid {order} LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        found = [_exchange(row) for row in rows]
        return found[:limit], len(found) > limit

    def _position(self, exchange_id: str, tenant: str, kind: str) -> tuple[float, int]:
        row = self._db.execute(
            "SELECT created, rowid FROM stored WHERE id = ? AND tenant = ? AND kind = ?",
            (exchange_id, tenant, kind),
        ).fetchone()
        if row is None:
            raise NotFound(f"No stored {kind} found with id '{exchange_id}'", param="after")
        return float(row[0]), int(row[1])
