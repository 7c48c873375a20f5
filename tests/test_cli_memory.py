"""`mem8 status`, `memory list|search|forget|export`, `performance` and `grid png` on a real
storage file, run through `mem8.cli.main` and once as a process."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest

from mem8 import heatmap
from mem8.actors.memory import GRID_STATE
from mem8.cli import main
from mem8.cli_memory import unpack_field
from mem8.encoders.hashed import LexicalEncoder
from mem8.grid.dynamics import DAY
from mem8.grid.placement import Placer
from mem8.memory import NEVER, Emotion, Memory, Modality
from mem8.scope import Scope
from mem8.storage.sqlite import MemoryStore

GRID = 64  # a small grid keeps the pictures and the timings quick
TILES = 2
NOW = time.time()
ENCODER = LexicalEncoder()
PLACER = Placer(ENCODER.dimensions, GRID)

# id, tenant, user, persona, modality, age in days, tau in days, text
MEMORIES: list[tuple[str, str, str, str, Modality, float, float, str]] = [
    ("mem-light", "acme", "ann", "nova", "text", 1.0, 7.0,
     "The lighthouse keeper painted the tower red and white every spring"),
    ("mem-sales", "acme", "bob", "echo", "document", 30.0, 7.0,
     "Quarterly revenue figures for the northern sales region"),
    ("mem-birds", "zeta", "ann", "nova", "audio", 60.0, NEVER,
     "Bird song recorded at dawn near the river"),
    ("mem-bread", "acme", "ann", "nova", "text", 2 / 24, 14.0,
     "Recipe for sourdough bread with a long cold fermentation"),
]  # fmt: skip
# retention 0.35 + 0.65 exp(-age / tau): light 0.91, sales 0.36, birds 1 (consolidated), bread 0.996


def make_memory(
    memory_id: str,
    tenant: str,
    user: str,
    persona: str,
    modality: Modality,
    age_days: float,
    tau_days: float,
    text: str,
) -> Memory:
    vector = ENCODER.embed(text)
    place = PLACER.place(vector, text, modality)
    return Memory(
        id=memory_id,
        text=text,
        source=f"chat:req-{memory_id}:user",
        modality=modality,
        scope=Scope(tenant=tenant, user=user, persona=persona),
        created=NOW - age_days * DAY,
        emotion=Emotion(valence=0.2, arousal=0.3, dominance=0.5),
        importance=0.6,
        band=place.band,
        phase=place.phase,
        tau=tau_days * DAY,
        x=place.x,
        y=place.y,
        amplitude=0.9,
        vector=vector,
    )


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No mem8.toml or MEM8_* variable of the machine running the tests leaks in."""
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("MEM8_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MEM8_GRID_TILES", str(TILES))
    monkeypatch.setenv("MEM8_ENCODER", "lexical")  # the encoder these memories were made with


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    path = tmp_path / "memories.db"
    with MemoryStore.open(path) as store:
        store.add([make_memory(*row) for row in MEMORIES])
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def ids(listing: object) -> list[str]:
    assert isinstance(listing, list)
    return [entry["id"] for entry in listing]


def save_field(path: Path, regions: list[np.ndarray]) -> None:
    state = {"grid_size": GRID, "tiles": TILES, "last_step": NOW,
             "current": [region.astype(np.complex64).tobytes() for region in regions],
             "previous": [np.zeros_like(region).tobytes() for region in regions]}  # fmt: skip
    with MemoryStore.open(path) as store:
        store.put_state(GRID_STATE, msgpack.packb(state, use_bin_type=True))


def regions_with(cells: dict[tuple[int, int], complex]) -> list[np.ndarray]:
    """The row-major regions of a GRID x GRID field holding these (row, column) values."""
    field = np.zeros((GRID, GRID), np.complex64)
    for (row, col), value in cells.items():
        field[row, col] = value
    edge = GRID // TILES
    return [
        field[r * edge : (r + 1) * edge, c * edge : (c + 1) * edge]
        for r in range(TILES)
        for c in range(TILES)
    ]


# --- status ---------------------------------------------------------------------------------------


def test_status_reports_counts_activity_decay_and_size(
    storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_json(capsys, "status", "--storage", str(storage))
    assert isinstance(report, dict)
    assert report["memories"] == 4
    assert report["by_modality"] == {"text": 2, "audio": 1, "document": 1, "image": 0}
    assert report["by_persona"] == {"echo": 1, "nova": 3}
    assert report["active_patterns"] == 3  # all but the 30-day-old memory with a 7-day tau
    assert report["consolidated"] == 1
    assert report["average_decay_days"] == pytest.approx((7 + 7 + 14) / 3)
    wal = storage.with_name(storage.name + "-wal")
    size = storage.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    assert report["size_bytes"] == size
    assert report["grid"] is None


def test_status_reads_the_saved_field(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    busy = {(row, col): 1.0 + 0j for row in range(40, 50) for col in range(30, 34)}  # 40 cells
    faint = {(0, 0): 0.005 + 0j}  # below 1% of the peak: not in use
    save_field(storage, regions_with({**busy, **faint, (5, 60): 0 + 3j}))
    report = run_json(capsys, "status", "--storage", str(storage))
    assert isinstance(report, dict)
    assert report["grid"] == {"size": GRID, "tiles": TILES, "utilisation": 41 / GRID**2}
    code, out, _ = run(capsys, "status", "--storage", str(storage))
    assert code == 0
    assert "1.0% of cells in use" in out


def test_status_text_says_when_no_field_is_saved(
    storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "status", "--storage", str(storage))
    assert code == 0
    assert "memories       4 (text 2, audio 1, document 1, image 0)" in out
    assert "echo 1, nova 3" in out
    assert "3 patterns" in out
    assert "9.3 days" in out
    assert "no field saved (the server saves it at a clean stop)" in out


def test_saved_regions_are_reassembled_row_major() -> None:
    regions = regions_with({(0, 40): 1 + 0j, (40, 0): 2 + 0j, (63, 63): 3 + 0j})
    state = {"grid_size": GRID, "tiles": TILES, "current": [r.tobytes() for r in regions]}
    field = unpack_field(msgpack.packb(state, use_bin_type=True))
    assert field.current[0, 40] == 1 and field.current[40, 0] == 2 and field.current[63, 63] == 3
    assert np.count_nonzero(field.current) == 3


def test_storage_comes_from_the_environment(
    storage: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEM8_STORAGE", str(storage))
    report = run_json(capsys, "status")
    assert isinstance(report, dict) and report["memories"] == 4


def test_a_missing_storage_file_is_an_error_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.db"
    code, out, err = run(capsys, "status", "--storage", str(missing))
    assert code == 1
    assert out == ""
    assert err.startswith(f"mem8: No storage file at {missing}")
    assert not missing.exists()


def test_status_as_a_process(storage: Path, tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEM8_")}
    done = subprocess.run(
        [sys.executable, "-m", "mem8", "status", "--storage", str(storage)],
        cwd=tmp_path,
        env={**environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "memories       4" in done.stdout
    assert "consolidated   1" in done.stdout


# --- memory list, search, forget, export ----------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ((), ["mem-birds", "mem-sales", "mem-light", "mem-bread"]),  # newest last
        (("--persona", "nova"), ["mem-birds", "mem-light", "mem-bread"]),
        (("--persona", "nova", "--tenant", "acme"), ["mem-light", "mem-bread"]),
        (("--user", "bob"), ["mem-sales"]),
        (("--modality", "audio"), ["mem-birds"]),
        (("--tenant", "zeta", "--modality", "text"), []),
        (("--limit", "2"), ["mem-light", "mem-bread"]),  # the newest two
    ],
)
def test_list_filters(
    storage: Path, capsys: pytest.CaptureFixture[str], filters: tuple[str, ...], expected: list[str]
) -> None:
    listing = run_json(capsys, "memory", "list", "--storage", str(storage), *filters)
    assert ids(listing) == expected


def test_list_shows_the_api_shape_with_the_tenant(
    storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = run_json(capsys, "memory", "list", "--storage", str(storage), "--user", "bob")
    assert isinstance(listing, list)
    [sales] = listing
    assert sales["object"] == "memory"
    assert sales["tenant"] == "acme" and sales["persona"] == "echo"
    assert sales["modality"] == "document"
    assert sales["decay_tau"] == pytest.approx(7 * DAY)


def test_list_as_text(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "memory", "list", "--storage", str(storage), "--persona", "echo")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == [
        "id",
        "created",
        "persona",
        "user",
        "modality",
        "imp",
        "v/a/d",
        "text",
    ]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 30 * DAY))
    assert row.split()[:7] == ["mem-sales", created, "echo", "bob", "document", "0.60",
                               "+0.20/0.30/0.50"]  # fmt: skip
    assert row.endswith("Quarterly revenue figures for the northern sales region")


def test_search_ranks_the_matching_memory_first(
    storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = run_json(
        capsys, "memory", "search", "who painted the lighthouse tower", "--storage", str(storage)
    )
    assert isinstance(found, list)
    assert found[0]["id"] == "mem-light"
    assert found[0]["score"] > 0.2
    assert all(later["score"] <= found[0]["score"] for later in found[1:])
    assert len(found) == 4


def test_search_honours_filters_and_limit(
    storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = run_json(capsys, "memory", "search", "sourdough bread", "--storage", str(storage),
                     "--tenant", "acme", "--limit", "2")  # fmt: skip
    assert ids(found)[0] == "mem-bread"
    assert len(ids(found)) == 2
    code, out, _ = run(capsys, "memory", "search", "bird song", "--storage", str(storage))
    assert code == 0
    assert out.splitlines()[1].split()[1] == "mem-birds"


def test_forget_removes_and_a_second_forget_fails(
    storage: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "memory", "forget", "mem-sales", "--storage", str(storage))
    assert (code, out) == (0, "forgot mem-sales (tenant acme)\n")
    assert "mem-sales" not in ids(run_json(capsys, "memory", "list", "--storage", str(storage)))
    code, out, err = run(capsys, "memory", "forget", "mem-sales", "--storage", str(storage))
    assert (code, out) == (1, "")
    assert err == "mem8: No memory 'mem-sales'\n"


def test_forget_in_another_tenant_fails(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "memory", "forget", "mem-birds", "--tenant", "acme", "--storage", str(storage)
    )
    assert code == 1
    assert err == "mem8: No memory 'mem-birds' in tenant 'acme'\n"
    assert "mem-birds" in ids(run_json(capsys, "memory", "list", "--storage", str(storage)))


def test_export_writes_every_memory_as_jsonl(
    storage: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "export.jsonl"
    code, out, _ = run(
        capsys, "memory", "export", "--storage", str(storage), "--output", str(target)
    )
    assert (code, out) == (0, f"exported 4 memories to {target}\n")
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in records) == sorted(row[0] for row in MEMORIES)
    by_id = {r["id"]: r for r in records}
    for memory_id, tenant, *_, text in MEMORIES:
        record = by_id[memory_id]
        assert record["tenant"] == tenant and record["text"] == text
        vector = np.array(record["vector"], np.float32)
        assert np.array_equal(vector, ENCODER.embed(text))  # exact: the export can be re-imported


def test_export_to_stdout_with_filters(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "memory", "export", "--storage", str(storage), "--user", "ann")
    assert code == 0
    exported = [json.loads(line)["id"] for line in out.splitlines()]
    assert sorted(exported) == ["mem-birds", "mem-bread", "mem-light"]


# --- performance ----------------------------------------------------------------------------------


def test_performance_prints_its_figures(storage: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "performance", "--storage", str(storage), "--grid-size", str(GRID))
    assert code == 0, err
    assert "texts/s" in out
    assert "p50" in out and "p99" in out
    assert "synthetic vectors (the largest stored scope holds 2)" in out
    assert f"of the {GRID} x {GRID} grid" in out or "grid kernels unavailable" in out


# --- grid png -------------------------------------------------------------------------------------


def decode_png(data: bytes) -> np.ndarray:
    """The RGB pixels of an unfiltered 8-bit RGB PNG, checking its chunks on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = body
        offset += 12 + length
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert not rows[:, 0].any()  # filter type 0 on every row
    return rows[:, 1:].reshape(height, width, 3)


def memory_centres() -> list[tuple[float, float]]:
    return [(m.x, m.y) for m in (make_memory(*row) for row in MEMORIES)]


def far_cells() -> list[tuple[int, int]]:
    """(row, column) of cells well away from every memory's cross."""
    return [
        (r, c) for r in range(0, GRID, 4) for c in range(0, GRID, 4)
        if all(math.hypot(c - x, r - y) > 8 for x, y in memory_centres())
    ]  # fmt: skip


def test_png_of_a_rebuilt_field_marks_every_memory(
    storage: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "grid.png"
    code, out, err = run(
        capsys, "grid", "png", "--storage", str(storage), "--grid-size", str(GRID),
        "--output", str(target),
    )  # fmt: skip
    assert code == 0, err
    assert "|field| rebuilt from the memories' packets (no field saved)" in out
    pixels = decode_png(target.read_bytes())
    scale = heatmap.default_scale(GRID)
    assert pixels.shape == (GRID * scale, GRID * scale, 3)
    for x, y in memory_centres():
        row, col = heatmap.centre_pixel(x, y, scale)
        assert tuple(pixels[row, col]) == heatmap.MARKER
    row, col = far_cells()[0]
    assert tuple(pixels[row * scale, col * scale]) == tuple(heatmap.VIRIDIS[0])  # silent: dark


def test_png_of_the_saved_field(
    storage: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (peak_row, peak_col), *_, (faint_row, faint_col) = far_cells()
    save_field(storage, regions_with({(peak_row, peak_col): 4 + 0j, (faint_row, faint_col): 0.004}))
    target = tmp_path / "saved.png"
    code, out, err = run(
        capsys, "grid", "png", "--storage", str(storage), "--grid-size", str(GRID),
        "--output", str(target), "--scale", "2",
    )  # fmt: skip
    assert code == 0, err
    assert "|field| as saved at the last clean stop" in out
    pixels = decode_png(target.read_bytes())
    assert pixels.shape == (GRID * 2, GRID * 2, 3)
    peak = tuple(pixels[2 * peak_row + 1, 2 * peak_col + 1])
    faint = tuple(pixels[2 * faint_row + 1, 2 * faint_col + 1])
    assert peak == tuple(heatmap.VIRIDIS[-1])  # the peak is the brightest colour
    assert faint != tuple(heatmap.VIRIDIS[0])  # the log scale shows a field 1000 times weaker


def test_png_to_an_unwritable_place_is_a_readable_error(
    storage: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "dir.png"
    code, _, err = run(capsys, "grid", "png", "--storage", str(storage), "--output", str(target))
    assert code == 1
    assert err.startswith(f"mem8: Cannot write {target}")
