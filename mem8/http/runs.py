"""The simulation runs under the `sim_runs` folder, as the dashboard lists them, and their files,
served read-only: a run's report, its field pictures, transcript and records; a sweep's page."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mem8.errors import NotFound

LISTED = 50  # the newest runs shown
RUN = "run.json"  # what `mem8 sim run` writes last: a folder with it is a finished run
SWEEP = "sweep.json"
SERVED = re.compile(
    r"report\.html|sweep\.html|field-\d+\.png|transcript\.(md|jsonl)|expectations\.json|"
    r"run\.json|sweep\.json"
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".md": "text/markdown; charset=utf-8",
    ".jsonl": "application/jsonl",
    ".json": "application/json",
}
PICTURE = re.compile(r'src="(field-\d+\.png)"')


@dataclass(frozen=True)
class Served:
    body: bytes
    content_type: str


def listed(folder: Path) -> list[dict[str, Any]]:
    """The newest runs and sweeps in the folder, newest first: what ran and how it ended."""
    if not folder.is_dir():
        return []
    found = [d for d in folder.iterdir() if d.is_dir() and _kind(d) is not None]
    found.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    return [_summary(d) for d in found[:LISTED]]


def _kind(directory: Path) -> str | None:
    if (directory / RUN).is_file():
        return "run"
    if (directory / SWEEP).is_file():
        return "sweep"
    return None


def _summary(directory: Path) -> dict[str, Any]:
    kind = _kind(directory)
    record = _record(directory / (RUN if kind == "run" else SWEEP))
    summary: dict[str, Any] = {
        "run": directory.name,
        "kind": kind,
        "modified": directory.stat().st_mtime,
        "page": "report.html" if kind == "run" else "sweep.html",
    }
    if kind == "run":
        summary.update(
            name=record.get("name"),
            seed=record.get("seed"),
            backend=record.get("backend"),
            lines=record.get("lines"),
            expectations=record.get("expectations"),
            memories=record.get("memories"),
        )
    else:
        summary["name"] = record.get("name")
    return summary


def _record(path: Path) -> dict[str, Any]:
    """A run's record; an unreadable one (written as we read it) says nothing."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def served(folder: Path, run: str, name: str) -> Served:
    """One of a run's files; a report with its field pictures inlined, so that it reads whole
    wherever the browser opens it (the dashboard opens it from memory, with the admin key)."""
    path = _path(folder, run, name)
    if name == "report.html":
        page = path.read_text(encoding="utf-8")
        inlined = PICTURE.sub(lambda m: f'src="{_data_url(path.parent / m[1])}"', page)
        return Served(inlined.encode(), TYPES[".html"])
    return Served(path.read_bytes(), TYPES[path.suffix])


def _path(folder: Path, run: str, name: str) -> Path:
    if not SERVED.fullmatch(name) or run.startswith(".") or "/" in run or "\\" in run:
        raise NotFound(f"No file '{name}' in a run '{run}'")
    directory = folder / run
    path = directory / name
    if _kind(directory) is None or not path.is_file():
        raise NotFound(f"No file '{name}' in a run '{run}'")
    return path


def _data_url(picture: Path) -> str:
    if not picture.is_file():
        return picture.name
    return "data:image/png;base64," + base64.b64encode(picture.read_bytes()).decode()
