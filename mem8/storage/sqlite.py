"""The SQLite store: memories, associations, files and actor state in one WAL-mode file.

A plain synchronous class; the Store actor calls it from worker threads one call at a time, so the
connection is opened with ``check_same_thread=False`` and must never be used concurrently. Every
write is one transaction and is durable (fsynced, ``synchronous=FULL``) when its method returns.
"""

from __future__ import annotations

import builtins
import math
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from mem8.errors import InvalidRequest, Mem8Error, NotFound
from mem8.memory import MODALITIES, NEVER, Emotion, Memory, Modality
from mem8.scope import Scope
from mem8.storage.files import FileShelf
from mem8.storage.idempotency import IdempotencyShelf
from mem8.storage.keys import KeyShelf
from mem8.storage.stored import StoredShelf

BUSY_TIMEOUT_MS = 5000
GRID_STATE = "grid"  # the state row holding the field saved at the last clean stop
ENCODER_STATE = "encoder"  # the state row naming the encoder that made the memories' vectors
_BATCH = 1000  # rows per query when streaming every memory back at start


class StorageError(Mem8Error):
    """The storage file cannot be opened, is not mem8's, is too new, or refused a write."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What `mem8 status` reports about the store."""

    memories: int
    by_modality: dict[str, int]  # every modality, zero when absent
    by_persona: dict[str, int]
    consolidated: int  # memories whose tau is NEVER
    average_tau: float | None  # over finite taus; None when there is none
    size_bytes: int  # the database file plus its -wal


# --- schema -------------------------------------------------------------------------------------

_SCHEMA_1 = (
    # Files API uploads; deleting a file forgets every memory made from it (ON DELETE CASCADE).
    """CREATE TABLE files (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        filename TEXT NOT NULL,
        purpose TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        status_details TEXT,
        content BLOB,
        path TEXT
    )""",
    "CREATE INDEX files_by_tenant ON files (tenant, created_at, id)",
    # seq is the insertion order the grid is rebuilt in; tau NULL means NEVER (consolidated);
    # negative_zeros has bit i set when _FLOAT_FIELDS[i] is -0.0, a sign SQLite's REAL drops.
    """CREATE TABLE memories (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        user TEXT NOT NULL,
        persona TEXT NOT NULL,
        file_id TEXT REFERENCES files (id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        source TEXT NOT NULL,
        modality TEXT NOT NULL,
        created REAL NOT NULL,
        valence REAL NOT NULL,
        arousal REAL NOT NULL,
        dominance REAL NOT NULL,
        importance REAL NOT NULL,
        band INTEGER NOT NULL,
        phase REAL NOT NULL,
        tau REAL,
        x REAL NOT NULL,
        y REAL NOT NULL,
        amplitude REAL NOT NULL,
        recalls INTEGER NOT NULL,
        last_recalled REAL NOT NULL,
        negative_zeros INTEGER NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL
    )""",
    "CREATE INDEX memories_by_tenant ON memories (tenant, created, id)",
    "CREATE INDEX memories_by_user ON memories (tenant, user, created, id)",
    "CREATE INDEX memories_by_persona ON memories (tenant, persona, created, id)",
    "CREATE INDEX memories_by_file ON memories (file_id)",
    # An unordered pair is stored once, smaller id first.
    """CREATE TABLE associations (
        a TEXT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
        b TEXT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
        strength REAL NOT NULL,
        PRIMARY KEY (a, b),
        CHECK (a < b)
    ) WITHOUT ROWID""",
    "CREATE INDEX associations_by_b ON associations (b)",
    "CREATE TABLE states (owner TEXT PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID",
)


def _migrate_1(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA_1:
        db.execute(statement)


# MIGRATIONS[v] upgrades a file at user_version v to v + 1, in its own transaction. Append only;
# a migration that rebuilds a table must turn foreign_keys off around it (outside the transaction).
def _migrate_2(db: sqlite3.Connection) -> None:
    """Each memory remembers the turn it followed (its context) for recall."""
    db.execute("ALTER TABLE memories ADD COLUMN context TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE memories ADD COLUMN follows TEXT NOT NULL DEFAULT ''")


def _migrate_3(db: sqlite3.Connection) -> None:
    """A file's memories belong to the uploader's end user and to one persona ('' for all)."""
    db.execute("ALTER TABLE files ADD COLUMN user TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE files ADD COLUMN persona TEXT NOT NULL DEFAULT ''")


def _migrate_4(db: sqlite3.Connection) -> None:
    """A memory may be superseded by a later one (a knowledge update): its id, or ''."""
    db.execute("ALTER TABLE memories ADD COLUMN superseded_by TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE INDEX memories_by_superseder ON memories (superseded_by)")


def _migrate_5(db: sqlite3.Connection) -> None:
    """Answered chats by their Idempotency-Key, so a retry gets the first answer (issue 17)."""
    db.execute(
        """CREATE TABLE idempotency (
            tenant TEXT NOT NULL,
            key TEXT NOT NULL,
            request_sha256 TEXT NOT NULL,
            created REAL NOT NULL,
            answer BLOB NOT NULL,
            PRIMARY KEY (tenant, key)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX idempotency_by_created ON idempotency (created)")


def _migrate_6(db: sqlite3.Connection) -> None:
    """API keys by the hash of their secret (the secret is never kept); a key's name is its
    tenant, so a rotated key keeps the memories (issue 14)."""
    db.execute(
        """CREATE TABLE keys (
            name TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            admin INTEGER NOT NULL,
            created REAL NOT NULL,
            revoked REAL,
            requests_per_minute INTEGER,
            tokens_per_minute INTEGER,
            streams INTEGER
        ) WITHOUT ROWID"""
    )


def _migrate_7(db: sqlite3.Connection) -> None:
    """Chat completions and responses kept with `store: true`, per tenant (issue 15)."""
    db.execute(
        """CREATE TABLE stored (
            id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL,
            model TEXT NOT NULL,
            user TEXT NOT NULL,
            created REAL NOT NULL,
            metadata TEXT NOT NULL,
            request TEXT NOT NULL,
            answer TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX stored_by_tenant ON stored (tenant, kind, created)")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
    _migrate_7,
)
SCHEMA_VERSION = len(MIGRATIONS)


# --- rows <-> memories --------------------------------------------------------------------------

_FLOAT_FIELDS = (
    "created",
    "valence",
    "arousal",
    "dominance",
    "importance",
    "phase",
    "tau",
    "x",
    "y",
    "amplitude",
    "last_recalled",
)
_BIT = {name: 1 << index for index, name in enumerate(_FLOAT_FIELDS)}
_COLUMNS = (
    "id",
    "tenant",
    "user",
    "persona",
    "file_id",
    "text",
    "source",
    "modality",
    *_FLOAT_FIELDS,
    "band",
    "recalls",
    "negative_zeros",
    "dim",
    "vector",
    "context",
    "follows",
    "superseded_by",
)
_SELECT = f"SELECT seq, {', '.join(_COLUMNS)} FROM memories"
_INSERT = (
    f"INSERT INTO memories ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(':' + column for column in _COLUMNS)})"
)


def _is_negative_zero(value: float) -> bool:
    return value == 0.0 and math.copysign(1.0, value) < 0


def _zero_bit(name: str, value: float) -> int:
    return _BIT[name] if _is_negative_zero(value) else 0


def _checked_float(memory_id: str, name: str, value: float) -> float:
    number = float(value)
    if math.isnan(number):
        raise StorageError(f"Memory '{memory_id}': {name} is NaN, which cannot be stored")
    return number


def _tau_column(tau: float) -> float | None:
    return None if tau == NEVER else float(tau)


def _vector_blob(memory: Memory) -> tuple[int, bytes]:
    vector = np.asarray(memory.vector)
    if vector.ndim != 1 or vector.dtype != np.float32:
        raise StorageError(
            f"Memory '{memory.id}': the vector must be 1-D float32, not "
            f"{vector.ndim}-D {vector.dtype}"
        )
    return vector.size, vector.astype("<f4").tobytes()


def _floats(memory: Memory) -> dict[str, float]:
    emotion = memory.emotion
    values = {
        "created": memory.created,
        "valence": emotion.valence,
        "arousal": emotion.arousal,
        "dominance": emotion.dominance,
        "importance": memory.importance,
        "phase": memory.phase,
        "tau": memory.tau,
        "x": memory.x,
        "y": memory.y,
        "amplitude": memory.amplitude,
        "last_recalled": memory.last_recalled,
    }
    return {name: _checked_float(memory.id, name, value) for name, value in values.items()}


def _memory_row(memory: Memory, file_id: str | None) -> dict[str, Any]:
    if memory.modality not in MODALITIES:
        raise StorageError(f"Memory '{memory.id}': unknown modality '{memory.modality}'")
    floats = _floats(memory)
    dim, blob = _vector_blob(memory)
    scope = memory.scope
    return {
        "id": memory.id,
        "tenant": scope.tenant,
        "user": scope.user,
        "persona": scope.persona,
        "file_id": file_id,
        "text": memory.text,
        "source": memory.source,
        "modality": memory.modality,
        **floats,
        "tau": _tau_column(floats["tau"]),
        "band": int(memory.band),
        "recalls": int(memory.recalls),
        "negative_zeros": sum(_zero_bit(name, value) for name, value in floats.items()),
        "dim": dim,
        "vector": blob,
        "context": memory.context,
        "follows": memory.follows,
        "superseded_by": memory.superseded_by,
    }


def _load_floats(row: sqlite3.Row) -> dict[str, float]:
    floats = {name: float(NEVER if row[name] is None else row[name]) for name in _FLOAT_FIELDS}
    for name in _FLOAT_FIELDS:
        if row["negative_zeros"] & _BIT[name]:
            floats[name] = -0.0
    return floats


def _load_vector(row: sqlite3.Row) -> np.ndarray[Any, np.dtype[np.float32]]:
    blob: bytes = row["vector"]
    if len(blob) != 4 * row["dim"]:
        raise StorageError(
            f"Memory '{row['id']}': its vector has {len(blob)} bytes, "
            f"not the {4 * row['dim']} its dimension {row['dim']} needs"
        )
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _load_modality(row: sqlite3.Row) -> Modality:
    for modality in MODALITIES:
        if row["modality"] == modality:
            return modality
    raise StorageError(f"Memory '{row['id']}': unknown modality '{row['modality']}'")


def _load_memory(row: sqlite3.Row) -> Memory:
    floats = _load_floats(row)
    return Memory(
        id=row["id"],
        text=row["text"],
        source=row["source"],
        modality=_load_modality(row),
        scope=Scope(tenant=row["tenant"], user=row["user"], persona=row["persona"]),
        created=floats["created"],
        emotion=Emotion(floats["valence"], floats["arousal"], floats["dominance"]),
        importance=floats["importance"],
        band=int(row["band"]),
        phase=floats["phase"],
        tau=floats["tau"],
        x=floats["x"],
        y=floats["y"],
        amplitude=floats["amplitude"],
        vector=_load_vector(row),
        recalls=int(row["recalls"]),
        last_recalled=floats["last_recalled"],
        context=row["context"],
        follows=row["follows"],
        superseded_by=row["superseded_by"],
    )


# --- opening ------------------------------------------------------------------------------------


@contextmanager
def _transaction(db: sqlite3.Connection, path: Path) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE .. COMMIT; rolls back on any error and reports SQLite's as StorageError."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as error:
        raise StorageError(f"Storage file {path}: {error}") from error
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as error:
        if db.in_transaction:  # some errors (disk full, I/O) have rolled back already
            db.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise StorageError(f"Storage file {path}: {error}") from error
        raise


def _configure(db: sqlite3.Connection, path: Path) -> None:
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.OperationalError as error:  # a missing directory, no permission
        raise StorageError(f"Cannot open storage file {path}: {error}") from error
    except sqlite3.DatabaseError as error:  # garbage where the SQLite header should be
        raise StorageError(f"{path} is not a mem8 storage file (SQLite): {error}") from error
    if mode != "wal":
        raise StorageError(f"Storage file {path}: cannot use WAL mode (journal_mode is {mode})")
    # FULL in WAL mode fsyncs the WAL at every commit: a committed write survives power loss.
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA foreign_keys = ON")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    while True:
        with _transaction(db, path):
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"Storage file {path} has schema version {version}, newer than the "
                    f"{SCHEMA_VERSION} this mem8 knows: upgrade mem8 or use another file"
                )
            if version == SCHEMA_VERSION:
                return
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")


# --- the store ----------------------------------------------------------------------------------


class MemoryStore:
    """Memories, their associations and actor state in one SQLite file; see the module doc."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._batched = False  # inside batch(): writes join its one transaction

    @classmethod
    def open(cls, path: Path) -> MemoryStore:
        """Create or open the file, switch it to WAL and bring its schema up to date."""
        path = Path(path)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise StorageError(f"Cannot open storage file {path}: {error}") from error
        try:
            _configure(db, path)
            _migrate(db, path)
        except BaseException:
            db.close()
            raise
        return cls(db, path)

    def close(self) -> None:
        self._db.close()

    def copy_to(self, target: Path) -> None:
        """Writes a consistent copy of the whole file as last committed (a journal snapshot's
        store). On a connection of its own: VACUUM refuses to run inside a transaction, and
        this connection may be in one (WAL lets the copy read beside it)."""
        if target.exists():
            target.unlink()
        try:
            copier = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                copier.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                copier.execute("VACUUM INTO ?", (str(target),))
            finally:
                copier.close()
        except sqlite3.Error as error:
            raise StorageError(f"Storage file {self.path}: cannot copy it: {error}") from error

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        if self._batched:
            return nullcontext(self._db)
        return _transaction(self._db, self.path)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside is one transaction, durable (or rolled back whole) when it ends."""
        if self._batched:
            raise StorageError("batches do not nest")
        with _transaction(self._db, self.path):
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    @property
    def files(self) -> FileShelf:
        """Uploaded files, in the same file and connection (the same one-caller-at-a-time rule)."""
        return FileShelf(self._db, self._write)

    @property
    def keys(self) -> KeyShelf:
        """API keys, in the same file and connection (the same rule)."""
        return KeyShelf(self._db, self._write)

    @property
    def idempotency(self) -> IdempotencyShelf:
        """Answers by Idempotency-Key, in the same file and connection (the same rule)."""
        return IdempotencyShelf(self._db, self._write)

    @property
    def stored(self) -> StoredShelf:
        """Stored chat completions and responses, in the same file and connection."""
        return StoredShelf(self._db, self._write)

    # --- writes: one transaction each, durable on return ---

    def add(self, memories: Sequence[Memory], *, file_id: str | None = None) -> None:
        """Insert new memories; `file_id` ties them to an uploaded file that forgets them."""
        rows = [_memory_row(memory, file_id) for memory in memories]
        with self._write() as db:
            db.executemany(_INSERT, rows)

    def record_recalls(self, updates: Sequence[tuple[str, int, float, float]]) -> None:
        """Set (id, recalls, last_recalled, tau) in one transaction: a recall both counts and
        stretches the decay constant. Memories forgotten meanwhile are skipped."""
        if any(math.isnan(tau) for *_, tau in updates):
            raise StorageError("Cannot record a NaN decay constant")
        rows = [
            (
                int(recalls),
                float(last),
                _tau_column(tau),
                _zero_bit("last_recalled", last) | _zero_bit("tau", tau),
                memory_id,
            )
            for memory_id, recalls, last, tau in updates
        ]
        mask = _BIT["last_recalled"] | _BIT["tau"]
        with self._write() as db:
            db.executemany(
                "UPDATE memories SET recalls = ?, last_recalled = ?, tau = ?, "
                f"negative_zeros = (negative_zeros & ~{mask}) | ? WHERE id = ?",
                rows,
            )

    def supersede(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Marks each (old, new): the old memory is superseded by the new one."""
        with self._write() as db:
            db.executemany(
                "UPDATE memories SET superseded_by = ? WHERE id = ?",
                [(new, old) for old, new in pairs],
            )

    def reinstate(self, memory_id: str) -> builtins.list[str]:
        """The memories `memory_id` superseded, current again (it is being forgotten)."""
        with self._write() as db:
            rows = db.execute(
                "UPDATE memories SET superseded_by = '' WHERE superseded_by = ? RETURNING id",
                (memory_id,),
            ).fetchall()
        return sorted(row["id"] for row in rows)

    def superseded(self, memory_id: str) -> builtins.list[str]:
        """The memories this one superseded, oldest first."""
        rows = self._db.execute(
            "SELECT id FROM memories WHERE superseded_by = ? ORDER BY created, id", (memory_id,)
        )
        return [row["id"] for row in rows]

    def forget(self, memory_id: str, tenant: str) -> bool:
        """Delete one of the tenant's memories and its associations; False if it had none."""
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM memories WHERE id = ? AND tenant = ?", (memory_id, tenant)
            )
        return cursor.rowcount > 0

    def put_state(self, owner: str, state: bytes) -> None:
        """Replace the serialized state of one owner (a persona, the grid)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO states (owner, state) VALUES (?, ?) "
                "ON CONFLICT (owner) DO UPDATE SET state = excluded.state",
                (owner, bytes(state)),
            )

    # --- reads ---

    def get(self, memory_id: str, tenant: str) -> Memory | None:
        row = self._db.execute(
            f"{_SELECT} WHERE id = ? AND tenant = ?", (memory_id, tenant)
        ).fetchone()
        return None if row is None else _load_memory(row)

    def list(
        self,
        tenant: str,
        *,
        user: str | None = None,
        persona: str | None = None,
        modality: str | None = None,
        limit: int = 20,
        after: str | None = None,
    ) -> builtins.list[Memory]:
        """The tenant's memories by (created, id), the first `limit` after the memory `after`."""
        if limit < 1:
            raise InvalidRequest(f"limit must be at least 1, not {limit}", param="limit")
        filters = {"tenant": tenant, "user": user, "persona": persona, "modality": modality}
        clauses = [
            f"{column} = :{column}" for column, value in filters.items() if value is not None
        ]
        params: dict[str, Any] = {**filters, "limit": limit}
        if after is not None:
            clauses.append("(created, id) > (:after_created, :after_id)")
            params.update(after_created=self._cursor(after, tenant), after_id=after)
        rows = self._db.execute(
            f"{_SELECT} WHERE {' AND '.join(clauses)} ORDER BY created, id LIMIT :limit", params
        )
        return [_load_memory(row) for row in rows]

    def _cursor(self, after: str, tenant: str) -> float:
        row = self._db.execute(
            "SELECT created FROM memories WHERE id = ? AND tenant = ?", (after, tenant)
        ).fetchone()
        if row is None:
            raise NotFound(f"No memory '{after}' to list after", param="after")
        return float(row["created"])

    def iter_all(self) -> Iterator[Memory]:
        """Every memory in insertion order, for rebuilding the grid; fetched in batches."""
        seq = 0
        while True:
            rows = self._db.execute(
                f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, _BATCH),
            ).fetchall()
            if not rows:
                return
            seq = rows[-1]["seq"]
            yield from (_load_memory(row) for row in rows)

    def vector_sizes(self) -> set[int]:
        """The lengths of the memories' vectors (one per encoder that made some)."""
        return {int(row[0]) for row in self._db.execute("SELECT DISTINCT dim FROM memories")}

    def texts_after(self, seq: int, limit: int) -> builtins.list[tuple[int, str]]:
        """(seq, text) of the next `limit` memories after `seq`, in insertion order."""
        rows = self._db.execute(
            "SELECT seq, text FROM memories WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        )
        return [(int(row["seq"]), str(row["text"])) for row in rows]

    def replace_vectors(
        self, rows: Sequence[tuple[int, npt.NDArray[np.float32], float, float]]
    ) -> None:
        """New (vector, x, y) for memories by seq: another encoder's vectors and their centres."""
        with self._write() as db:
            db.executemany(
                "UPDATE memories SET dim = ?, vector = ?, x = ?, y = ? WHERE seq = ?",
                [
                    (int(v.size), np.asarray(v, "<f4").tobytes(), float(x), float(y), seq)
                    for seq, v, x, y in rows
                ],
            )

    def delete_states(self, owners: Sequence[str]) -> None:
        with self._write() as db:
            db.executemany("DELETE FROM states WHERE owner = ?", [(owner,) for owner in owners])

    def get_state(self, owner: str) -> bytes | None:
        row = self._db.execute("SELECT state FROM states WHERE owner = ?", (owner,)).fetchone()
        return None if row is None else bytes(row["state"])

    def stats(self) -> StoreStats:
        totals = self._db.execute(
            "SELECT COUNT(*) AS memories, COUNT(*) - COUNT(tau) AS consolidated, "
            "AVG(tau) AS average_tau FROM memories"
        ).fetchone()
        return StoreStats(
            memories=int(totals["memories"]),
            by_modality={**dict.fromkeys(MODALITIES, 0), **self._counts("modality")},
            by_persona=self._counts("persona"),
            consolidated=int(totals["consolidated"]),
            average_tau=totals["average_tau"],
            size_bytes=self._size_bytes(),
        )

    def _counts(self, column: str) -> dict[str, int]:
        rows = self._db.execute(
            f"SELECT {column} AS key, COUNT(*) AS n FROM memories GROUP BY {column} ORDER BY key"
        )
        return {row["key"]: int(row["n"]) for row in rows}

    def _size_bytes(self) -> int:
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(file.stat().st_size for file in (self.path, wal) if file.exists())
