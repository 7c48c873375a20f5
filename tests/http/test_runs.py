"""The simulation runs the dashboard lists, and their files served read-only: a report whole,
with its field pictures inlined; nothing outside a run's known files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mem8 import heatmap
from mem8.errors import NotFound
from mem8.http import runs

RECORD = {
    "name": "dinner-party",
    "seed": 7,
    "backend": "scripted",
    "lines": 12,
    "expectations": {"held": 3, "failed": 1},
    "memories": {"mem8-host": 4},
}


def fake_run(folder: Path, name: str = "party-seed7") -> Path:
    """A run's directory as `mem8 sim run` leaves it, with one field picture."""
    run = folder / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps(RECORD))
    (run / "transcript.md").write_text("# dinner-party\n")
    picture = heatmap.png(heatmap.heatmap(np.ones((4, 4)), [], 2))
    (run / "field-1.png").write_bytes(picture)
    (run / "report.html").write_text('<h1>dinner-party</h1><img src="field-1.png" alt="field">')
    return run


def test_finished_runs_are_listed_newest_first_with_how_they_ended(tmp_path: Path) -> None:
    os.utime(fake_run(tmp_path, "older"), (1_000, 1_000))
    fake_run(tmp_path, "newer")
    (tmp_path / "unfinished").mkdir()  # no run.json yet
    listed = runs.listed(tmp_path)
    assert [r["run"] for r in listed] == ["newer", "older"]
    assert listed[0]["expectations"] == {"held": 3, "failed": 1}
    assert listed[0]["page"] == "report.html"
    assert runs.listed(tmp_path / "absent") == []


def test_a_report_is_served_whole_with_its_pictures_inlined(tmp_path: Path) -> None:
    fake_run(tmp_path)
    report = runs.served(tmp_path, "party-seed7", "report.html")
    assert report.content_type.startswith("text/html")
    assert b'src="data:image/png;base64,' in report.body
    transcript = runs.served(tmp_path, "party-seed7", "transcript.md")
    assert transcript.body == b"# dinner-party\n"


@pytest.mark.parametrize(
    ("run", "name"),
    [
        ("party-seed7", "sim.db"),  # the store: not a file the dashboard serves
        ("party-seed7", "../party-seed7/run.json"),
        ("..", "run.json"),
        (".hidden", "run.json"),
        ("absent", "report.html"),
        ("party-seed7", "sweep.html"),  # a known name the run does not have
    ],
)
def test_nothing_but_a_runs_own_known_files_is_served(tmp_path: Path, run: str, name: str) -> None:
    fake_run(tmp_path)
    (tmp_path / "party-seed7" / "sim.db").write_bytes(b"SQLite")
    with pytest.raises(NotFound):
        runs.served(tmp_path, run, name)
