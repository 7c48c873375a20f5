"""API keys in the store's SQLite file: a name (the tenant its memories belong to), the SHA-256
of its secret (the secret itself is never kept), whether it administers the server, when it
was revoked, and its own limits (None: the server's)."""

from __future__ import annotations

import builtins
import sqlite3
from dataclasses import dataclass

from mem8.errors import ConfigError, NotFound
from mem8.storage.shelf import Shelf

_FIELDS = (
    "name",
    "hash",
    "admin",
    "created",
    "revoked",
    "requests_per_minute",
    "tokens_per_minute",
    "streams",
)
# The tables whose rows belong to a tenant: what claiming an old tenant moves.
_TENANTED = ("memories", "files", "idempotency", "stored")


@dataclass(frozen=True)
class KeyRecord:
    name: str
    hash: str
    admin: bool
    created: float
    revoked: float | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    streams: int | None


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(**{**dict(row), "admin": bool(row["admin"])})


class KeyShelf(Shelf):
    """Reads and durable writes (one transaction each) of the `keys` table."""

    def add(self, record: KeyRecord) -> None:
        try:
            with self._write() as db:
                db.execute(
                    f"INSERT INTO keys ({', '.join(_FIELDS)}) "
                    f"VALUES ({', '.join(':' + f for f in _FIELDS)})",
                    {**record.__dict__, "admin": int(record.admin)},
                )
        except sqlite3.IntegrityError as error:
            raise ConfigError(f"a key named {record.name!r} exists already") from error

    def rotate(self, name: str, new_hash: str) -> None:
        """A new secret for the key (the old one stops working at once); revoked no more."""
        self._update(name, "UPDATE keys SET hash = ?, revoked = NULL WHERE name = ?", new_hash)

    def revoke(self, name: str, at: float) -> None:
        self._update(name, "UPDATE keys SET revoked = ? WHERE name = ?", at)

    def limit(
        self, name: str, requests: int | None, tokens: int | None, streams: int | None
    ) -> None:
        """The key's own limits (None: the server's)."""
        with self._write() as db:
            found = db.execute(
                "UPDATE keys SET requests_per_minute = ?, tokens_per_minute = ?, streams = ? "
                "WHERE name = ?",
                (requests, tokens, streams, name),
            ).rowcount
        if not found:
            raise NotFound(f"no key named {name!r}")

    def _update(self, name: str, statement: str, value: object) -> None:
        with self._write() as db:
            if not db.execute(statement, (value, name)).rowcount:
                raise NotFound(f"no key named {name!r}")

    def claim(self, old_tenant: str, name: str) -> dict[str, int]:
        """Moves everything of an old tenant (a hashed key's, from before keys) to the key
        `name`: rows moved by table."""
        moved = {}
        with self._write() as db:
            for table in _TENANTED:
                moved[table] = db.execute(
                    f"UPDATE {table} SET tenant = ? WHERE tenant = ?", (name, old_tenant)
                ).rowcount
        return moved

    def list(self) -> builtins.list[KeyRecord]:
        rows = self._db.execute(f"SELECT {', '.join(_FIELDS)} FROM keys ORDER BY name")
        return [_record(row) for row in rows]

    def by_hash(self, key_hash: str) -> KeyRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM keys WHERE hash = ?", (key_hash,)
        ).fetchone()
        return None if row is None else _record(row)
