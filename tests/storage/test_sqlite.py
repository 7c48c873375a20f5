"""The SQLite store: exact round trips, scoped reads, migrations, durability across a crash."""

from __future__ import annotations

import math
import re
import sqlite3
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mem8.errors import InvalidRequest, NotFound
from mem8.memory import NEVER, Emotion, Memory, Modality
from mem8.scope import Scope
from mem8.storage.sqlite import SCHEMA_VERSION, MemoryStore, StorageError

FLOAT_FIELDS = ("created", "importance", "phase", "tau", "x", "y", "amplitude", "last_recalled")


def make_memory(
    memory_id: str,
    *,
    created: float = 1_700_000_000.0,
    tenant: str = "tenant-a",
    user: str = "alice",
    persona: str = "ada",
    modality: Modality = "text",
    tau: float = 3600.0,
    dim: int = 8,
) -> Memory:
    rng = np.random.default_rng(zlib.crc32(memory_id.encode()))
    return Memory(
        id=memory_id,
        text=f"text of {memory_id}",
        source=f"chat:req-{memory_id}:user",
        modality=modality,
        scope=Scope(tenant=tenant, user=user, persona=persona),
        created=created,
        emotion=Emotion(valence=0.25, arousal=0.5, dominance=0.75),
        importance=0.5,
        band=2,
        phase=1.0,
        tau=tau,
        x=10.5,
        y=20.25,
        amplitude=0.8,
        vector=rng.standard_normal(dim).astype(np.float32),
    )


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


def assert_identical(loaded: Memory, expected: Memory) -> None:
    for name in FLOAT_FIELDS:
        assert bits(getattr(loaded, name)) == bits(getattr(expected, name)), name
    for name in ("valence", "arousal", "dominance"):
        assert bits(getattr(loaded.emotion, name)) == bits(getattr(expected.emotion, name)), name
    for name in ("id", "text", "source", "modality", "scope", "band", "recalls"):
        assert getattr(loaded, name) == getattr(expected, name), name
    assert loaded.vector.dtype == np.float32
    assert loaded.vector.tobytes() == expected.vector.tobytes()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "mem8.db"


@pytest.fixture
def store(path: Path) -> Iterator[MemoryStore]:
    with MemoryStore.open(path) as opened:
        yield opened


def awkward_memory() -> Memory:
    """Values that a lossy store would change: -0.0, subnormals, non-round floats, NaN bytes."""
    vector = np.array([0.1, -0.0, np.nan, np.inf, 1e-45, -3.4e38, 1 / 3], dtype=np.float32)
    return Memory(
        id="mem-awkward",
        text="héllo \x00 wörld ✓",
        source="file:file-1:page:3",
        modality="document",
        scope=Scope(tenant="tenant-a", user="", persona="ada"),
        created=1_700_000_000.123456789,
        emotion=Emotion(valence=-0.0, arousal=0.1 + 0.2, dominance=5e-324),
        importance=1 / 3,
        band=7,
        phase=-math.pi,
        tau=NEVER,
        x=-0.0,
        y=255.99999999999997,
        amplitude=1e-300,
        vector=vector,
        recalls=3,
        last_recalled=-0.0,
    )


# --- round trips --------------------------------------------------------------------------------


def test_every_field_round_trips_exactly_across_a_reopen(path: Path) -> None:
    memories = [awkward_memory(), make_memory("mem-finite", created=1.8e9, tau=86_400.5)]
    with MemoryStore.open(path) as store:
        store.add(memories)
        loaded = store.get("mem-awkward", "tenant-a")
        assert loaded is not None
        assert_identical(loaded, memories[0])
    with MemoryStore.open(path) as store:
        for loaded, expected in zip(store.iter_all(), memories, strict=True):
            assert_identical(loaded, expected)
        for loaded, expected in zip(store.list("tenant-a"), memories, strict=True):
            assert_identical(loaded, expected)


def test_loaded_vectors_are_writable_copies(store: MemoryStore) -> None:
    store.add([make_memory("m1")])
    loaded = store.get("m1", "tenant-a")
    assert loaded is not None
    loaded.vector[0] = 42.0
    assert loaded.vector.flags.writeable


def test_recorded_recalls_persist(path: Path) -> None:
    with MemoryStore.open(path) as store:
        store.add([make_memory("m1"), make_memory("m2"), awkward_memory()])
        store.record_recalls([("m1", 4, 1_700_000_100.5, 3600.0), ("gone", 1, 1.0, 1.0)])
        store.record_recalls([("mem-awkward", 5, 2.0, -0.0), ("m2", 6, 3.0, NEVER)])
    with MemoryStore.open(path) as store:
        m1, m2, awkward = (store.get(i, "tenant-a") for i in ("m1", "m2", "mem-awkward"))
        assert m1 is not None and m2 is not None and awkward is not None
        assert (m1.recalls, m1.last_recalled, m1.tau) == (4, 1_700_000_100.5, 3600.0)
        assert m2.tau == NEVER
        assert bits(awkward.tau) == bits(-0.0)
        assert bits(awkward.last_recalled) == bits(2.0)
        assert bits(awkward.x) == bits(-0.0)  # the other signed zeros are untouched


def test_unstorable_values_are_refused(store: MemoryStore) -> None:
    with pytest.raises(StorageError, match="NaN"):
        store.add([replace(make_memory("m1"), importance=math.nan)])
    with pytest.raises(StorageError, match="float32"):
        store.add([replace(make_memory("m2"), vector=np.zeros(4))])  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="NaN"):
        store.record_recalls([("m1", 1, 1.0, math.nan)])
    store.add([make_memory("m3")])
    with pytest.raises(StorageError, match="UNIQUE"):
        store.add([make_memory("m4"), make_memory("m3")])
    assert [memory.id for memory in store.iter_all()] == ["m3"]  # the failed batch left nothing


def test_a_vector_whose_size_does_not_match_its_dimension_is_reported(
    store: MemoryStore, path: Path
) -> None:
    store.add([make_memory("m1")])
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        raw.execute("UPDATE memories SET dim = 9")
    with pytest.raises(StorageError, match=r"'m1'.*32 bytes.*dimension 9"):
        store.get("m1", "tenant-a")


def test_iter_all_follows_insertion_order_across_batches(store: MemoryStore) -> None:
    ids = [f"m{index:04d}" for index in range(2500)]
    store.add([make_memory(i, created=2e9 - index, dim=2) for index, i in enumerate(ids)])
    store.forget("m0003", "tenant-a")
    store.add([make_memory("late", created=0.0, dim=2)])
    expected = [i for i in ids if i != "m0003"] + ["late"]
    assert [memory.id for memory in store.iter_all()] == expected


# --- scoped reads -------------------------------------------------------------------------------


def test_list_filters_by_user_persona_and_modality(store: MemoryStore) -> None:
    store.add(
        [
            make_memory("m1", created=1.0),
            make_memory("m2", created=2.0, user="bob"),
            make_memory("m3", created=3.0, persona="turing"),
            make_memory("m4", created=4.0, modality="audio"),
            make_memory("m5", created=5.0, tenant="tenant-b"),
        ]
    )

    def ids(
        user: str | None = None, persona: str | None = None, modality: str | None = None
    ) -> list[str]:
        found = store.list("tenant-a", user=user, persona=persona, modality=modality)
        return [memory.id for memory in found]

    assert ids() == ["m1", "m2", "m3", "m4"]
    assert ids(user="alice") == ["m1", "m3", "m4"]
    assert ids(persona="turing") == ["m3"]
    assert ids(modality="audio") == ["m4"]
    assert ids(user="alice", persona="ada", modality="text") == ["m1"]
    assert ids(user="nobody") == []


def test_list_pages_by_created_then_id_after_a_cursor(store: MemoryStore) -> None:
    # created ties are broken by id; insertion order does not matter
    store.add([make_memory(i, created=c) for i, c in [("c", 2.0), ("b", 2.0), ("a", 3.0)]])
    store.add([make_memory("z", created=1.0), make_memory("other", tenant="tenant-b")])
    pages: list[list[str]] = []
    after: str | None = None
    while page := store.list("tenant-a", limit=2, after=after):
        pages.append([memory.id for memory in page])
        after = page[-1].id
    assert pages == [["z", "b"], ["c", "a"]]
    assert store.list("tenant-a", limit=20, after="a") == []


def test_list_rejects_an_unknown_cursor_and_a_bad_limit(store: MemoryStore) -> None:
    store.add([make_memory("m1"), make_memory("theirs", tenant="tenant-b")])
    with pytest.raises(NotFound, match="nope"):
        store.list("tenant-a", after="nope")
    with pytest.raises(NotFound):
        store.list("tenant-a", after="theirs")  # another tenant's id is no cursor
    with pytest.raises(InvalidRequest):
        store.list("tenant-a", limit=0)


def test_tenants_cannot_see_or_forget_each_others_memories(store: MemoryStore) -> None:
    store.add([make_memory("mine", tenant="tenant-a"), make_memory("theirs", tenant="tenant-b")])
    assert store.get("theirs", "tenant-a") is None
    assert [memory.id for memory in store.list("tenant-a")] == ["mine"]
    assert store.forget("theirs", "tenant-a") is False
    assert store.get("theirs", "tenant-b") is not None
    assert store.forget("theirs", "tenant-b") is True
    assert store.get("theirs", "tenant-b") is None
    assert store.forget("theirs", "tenant-b") is False


# --- files, state --------------------------------------------------------------------------------


def test_deleting_a_file_forgets_the_memories_made_from_it(store: MemoryStore, path: Path) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA foreign_keys = ON")
    raw.execute(
        "INSERT INTO files (id, tenant, filename, purpose, bytes, created_at, status) "
        "VALUES ('file-1', 'tenant-a', 'notes.pdf', 'assistants', 1234, 1700000000, 'processed')"
    )
    store.add([make_memory("page-1"), make_memory("page-2")], file_id="file-1")
    store.add([make_memory("chat")])
    raw.execute("DELETE FROM files WHERE id = 'file-1'")
    raw.close()
    assert [memory.id for memory in store.iter_all()] == ["chat"]


def test_a_memory_cannot_reference_a_missing_file(store: MemoryStore) -> None:
    with pytest.raises(StorageError, match="FOREIGN KEY"):
        store.add([make_memory("m1")], file_id="no-such-file")


def test_state_is_stored_replaced_and_read_back(path: Path) -> None:
    with MemoryStore.open(path) as store:
        assert store.get_state("grid") is None
        store.put_state("grid", b"\x00first")
        store.put_state("grid", b"\x00second")
        store.put_state("persona:ada", b"")
    with MemoryStore.open(path) as store:
        assert store.get_state("grid") == b"\x00second"
        assert store.get_state("persona:ada") == b""


def test_the_store_can_be_used_from_another_thread(store: MemoryStore) -> None:
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(store.add, [make_memory("m1")]).result()
        assert worker.submit(store.get, "m1", "tenant-a").result() is not None
    assert store.get("m1", "tenant-a") is not None


def test_stats_count_memories_and_measure_the_file(store: MemoryStore, path: Path) -> None:
    empty = store.stats()
    assert (empty.memories, empty.consolidated, empty.average_tau) == (0, 0, None)
    assert empty.by_modality == {"text": 0, "audio": 0, "document": 0, "image": 0}
    store.add(
        [
            make_memory("m1", tau=100.0),
            make_memory("m2", tau=300.0, persona="turing", modality="audio"),
            make_memory("m3", tau=NEVER, modality="image"),
            make_memory("m4", tau=NEVER, tenant="tenant-b", persona="turing"),
        ]
    )
    stats = store.stats()
    assert stats.memories == 4
    assert stats.by_modality == {"text": 2, "audio": 1, "document": 0, "image": 1}
    assert stats.by_persona == {"ada": 2, "turing": 2}
    assert stats.consolidated == 2
    assert stats.average_tau == 200.0
    wal = path.with_name(path.name + "-wal")
    assert stats.size_bytes == path.stat().st_size + wal.stat().st_size > 0


# --- opening and migrations ---------------------------------------------------------------------


def user_version(path: Path) -> int:
    raw = sqlite3.connect(path)
    version = int(raw.execute("PRAGMA user_version").fetchone()[0])
    raw.close()
    return version


def test_a_new_file_is_in_wal_mode_at_the_current_version(store: MemoryStore, path: Path) -> None:
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()
    assert user_version(path) == SCHEMA_VERSION


@pytest.mark.parametrize("kind", ["zero-byte file", "empty database"])
def test_a_version_0_file_is_migrated(path: Path, kind: str) -> None:
    if kind == "zero-byte file":
        path.write_bytes(b"")
    else:
        raw = sqlite3.connect(path)
        raw.execute("CREATE TABLE unrelated (x)")
        raw.execute("DROP TABLE unrelated")
        raw.close()
        assert user_version(path) == 0
    with MemoryStore.open(path) as store:
        store.add([make_memory("m1")])
    assert user_version(path) == SCHEMA_VERSION
    with MemoryStore.open(path) as store:  # reopening migrates nothing and loses nothing
        assert [memory.id for memory in store.iter_all()] == ["m1"]


def test_a_file_from_a_newer_mem8_is_refused_untouched(path: Path) -> None:
    MemoryStore.open(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(
        StorageError, match=rf"{re.escape(str(path))}.*version {SCHEMA_VERSION + 1}.*newer"
    ):
        MemoryStore.open(path)
    assert user_version(path) == SCHEMA_VERSION + 1


def test_a_file_that_is_not_sqlite_is_refused(path: Path) -> None:
    garbage = b"this is not a database, just some text\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(StorageError, match=rf"{re.escape(str(path))} is not a mem8 storage file"):
        MemoryStore.open(path)
    assert path.read_bytes() == garbage


def test_an_unopenable_path_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "missing-directory" / "mem8.db"
    with pytest.raises(StorageError, match=rf"Cannot open storage file {re.escape(str(path))}"):
        MemoryStore.open(path)


# --- durability ---------------------------------------------------------------------------------

CRASHING_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from tests.storage.test_sqlite import make_memory
    from mem8.storage.sqlite import MemoryStore

    store = MemoryStore.open(Path(sys.argv[1]))
    for batch in range(5):
        ids = [f"m{batch}-{index}" for index in range(20)]
        store.add([make_memory(i, created=float(batch)) for i in ids])
        store.put_state("grid", str(batch).encode())
        print("written", *ids, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_acknowledged_memories_survive_a_crash(path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    acknowledged = [
        line.split()[1:] for line in child.stdout.splitlines() if line.startswith("written")
    ]
    assert len(acknowledged) == 5
    with MemoryStore.open(path) as store:
        stored = {memory.id for memory in store.iter_all()}
        assert stored == {i for batch in acknowledged for i in batch}
        assert store.get_state("grid") == b"4"


def test_a_copy_is_taken_while_a_transaction_is_open(store: MemoryStore, tmp_path: Path) -> None:
    # "cannot VACUUM from within a transaction": the copy takes what is committed, beside it.
    store.add([make_memory("kept")])
    store._db.execute("BEGIN IMMEDIATE")
    store._db.execute("DELETE FROM memories")
    try:
        store.copy_to(tmp_path / "copy.db")
    finally:
        store._db.execute("ROLLBACK")
    with MemoryStore.open(tmp_path / "copy.db") as copy:
        assert [m.id for m in copy.iter_all()] == ["kept"]


def test_a_batch_is_one_transaction_kept_or_rolled_back_whole(path: Path) -> None:
    """An exchange's memories, the facts they supersede, the recalls and its Idempotency-Key
    are written in one batch: a failure anywhere in it keeps none of them."""
    with MemoryStore.open(path) as store:
        store.add([make_memory("old")])
        with pytest.raises(StorageError), store.batch():
            store.add([make_memory("new")])
            store.supersede([("old", "new")])
            store.record_recalls([("old", 1, 2.0, 3600.0), ("old", 2, math.nan, 1.0)])
        assert store.get("new", "tenant-a") is None
        old = store.get("old", "tenant-a")
        assert old is not None and old.superseded_by == "" and old.recalls == 0
        with store.batch():
            store.add([make_memory("new")])
            store.supersede([("old", "new")])
    with MemoryStore.open(path) as store:
        old = store.get("old", "tenant-a")
        assert old is not None and old.superseded_by == "new"
        assert store.get("new", "tenant-a") is not None
