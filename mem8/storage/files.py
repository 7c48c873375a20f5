"""Uploaded files in the store's SQLite file: their OpenAI metadata, their bytes, and which
memories were read from them. A tenant (API key) sees only its own files."""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass
from typing import Any, Literal

from mem8.errors import NotFound
from mem8.storage.shelf import Shelf

Status = Literal["uploaded", "processed", "error"]
STATUSES: tuple[Status, ...] = ("uploaded", "processed", "error")
_FIELDS = (
    "id",
    "tenant",
    "user",
    "persona",
    "filename",
    "purpose",
    "bytes",
    "created_at",
    "status",
    "status_details",
)


def file_status(name: str) -> Status:
    """The status a name says, checked."""
    for status in STATUSES:
        if name == status:
            return status
    raise ValueError(f"a file's status is one of {', '.join(STATUSES)}, not {name!r}")


@dataclass(frozen=True)
class StoredFile:
    id: str
    tenant: str
    user: str  # the end user whose memories its contents became
    persona: str  # the persona they belong to; "" for every persona of the scope
    filename: str
    purpose: str
    bytes: int
    created_at: int
    status: Status
    status_details: str | None

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_wire(wire: dict[str, Any]) -> StoredFile:
        return StoredFile(**{name: wire[name] for name in _FIELDS})


@dataclass(frozen=True)
class MemoryTrace:
    """What forgetting one of a file's memories needs to know."""

    id: str
    tenant: str
    user: str
    persona: str
    text: str
    context: str
    created: float


class FileShelf(Shelf):
    """Reads and durable writes (one transaction each) of the `files` table."""

    def add(self, stored: StoredFile, content: bytes) -> None:
        row = {**stored.to_wire(), "content": content}
        with self._write() as db:
            db.execute(
                f"INSERT INTO files ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})",
                row,
            )

    def set_status(self, file_id: str, status: Status, details: str | None) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE files SET status = ?, status_details = ? WHERE id = ?",
                (status, details, file_id),
            )

    def get(self, file_id: str, tenant: str) -> StoredFile:
        row = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM files WHERE id = ? AND tenant = ?",
            (file_id, tenant),
        ).fetchone()
        if row is None:
            raise NotFound(f"No such File object: {file_id}", param="file_id")
        return StoredFile(**dict(row))

    def content(self, file_id: str, tenant: str) -> bytes:
        row = self._db.execute(
            "SELECT content FROM files WHERE id = ? AND tenant = ?", (file_id, tenant)
        ).fetchone()
        if row is None:
            raise NotFound(f"No such File object: {file_id}", param="file_id")
        return bytes(row["content"] or b"")

    def list(
        self,
        tenant: str,
        *,
        purpose: str | None,
        limit: int,
        after: str | None,
        descending: bool,
    ) -> tuple[list[StoredFile], bool]:
        """A page of the tenant's files by creation (upload order within a second), and
        whether more follow."""
        clauses, params = ["tenant = :tenant"], {"tenant": tenant, "limit": limit + 1}
        if purpose is not None:
            clauses.append("purpose = :purpose")
            params["purpose"] = purpose
        if after is not None:
            clauses.append(f"(created_at, rowid) {'<' if descending else '>'} (:at, :seq)")
            params.update(zip(("at", "seq"), self._position(after, tenant), strict=True))
        order = "DESC" if descending else "ASC"
        rows = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM files WHERE {' AND '.join(clauses)} "
            f"ORDER BY created_at {order}, rowid {order} LIMIT :limit",
            params,
        ).fetchall()
        found = [StoredFile(**dict(row)) for row in rows]
        return found[:limit], len(found) > limit

    def _position(self, file_id: str, tenant: str) -> tuple[int, int]:
        """Where a file sorts: its creation second, then upload order within it."""
        row = self._db.execute(
            "SELECT created_at, rowid FROM files WHERE id = ? AND tenant = ?", (file_id, tenant)
        ).fetchone()
        if row is None:
            raise NotFound(f"No such File object: {file_id}", param="after")
        return int(row[0]), int(row[1])

    def memories(self, file_id: str) -> builtins.list[MemoryTrace]:
        rows = self._db.execute(
            "SELECT id, tenant, user, persona, text, context, created FROM memories "
            "WHERE file_id = ? ORDER BY seq",
            (file_id,),
        )
        return [MemoryTrace(**dict(row)) for row in rows]

    def unread(self) -> builtins.list[StoredFile]:
        """Every tenant's files still being read into memory, oldest first."""
        rows = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM files WHERE status = 'uploaded' "
            "ORDER BY created_at, id"
        )
        return [StoredFile(**dict(row)) for row in rows]

    def forget_memories(self, file_id: str) -> None:
        """Deletes the memories read from the file (and their associations), not the file."""
        with self._write() as db:
            db.execute("DELETE FROM memories WHERE file_id = ?", (file_id,))

    def delete(self, file_id: str, tenant: str) -> bool:
        """Deletes the file and, by the schema's cascade, its memories and their associations."""
        with self._write() as db:
            cursor = db.execute("DELETE FROM files WHERE id = ? AND tenant = ?", (file_id, tenant))
        return cursor.rowcount > 0
