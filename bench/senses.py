"""Senses benchmark: transcription through the HTTP route against faster-whisper called
directly, and document reading speed in pages per second.

Transcription: the same file, the same options, one CPU thread each, alternating runs in one
process pair (the real server in a child process, faster-whisper here); the real-time factor is
seconds of work per second of audio. Target: the route within 10% of direct. The route's time
includes the upload, decoding, and keeping the transcript as memories (encoder and SQLite).

Documents: the fixture PDFs and a generated 100-page text PDF, read in this process, through the
child process the server uses (memory limit, timeout), and uploaded through POST /v1/files
(reading plus a memory per chunk)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faster_whisper
import httpx
import trio

from bench.http import running_server
from mem8.senses import audio, documents
from tests.senses.hostile import text_pdf

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
AUDIO = SHARED / "fixtures" / "audio" / "jfk.wav"
PDFS = [SHARED / "fixtures" / "pdf" / "crazyones.pdf", SHARED / "fixtures" / "pdf" / "toy.pdf"]
PERSONA = "mem8-technical-v1"
TARGET_RATIO = 1.10  # route RTF / direct RTF, at most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        storage = Path(scratch) / "bench.db"
        with running_server(storage) as server:
            base = f"http://{server.target.host}:{server.target.port}/v1"
            hearing = _hearing(base, options.runs)
            reading = _reading(base, options.runs)
    report = {"transcription": hearing, "documents": reading}
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)


# --- transcription --------------------------------------------------------------------------


def _hearing(base: str, runs: int) -> dict[str, Any]:
    data = AUDIO.read_bytes()
    seconds = len(audio.decode(data, 3600)) / audio.SAMPLE_RATE
    whisper = _direct_model()
    with httpx.Client(timeout=300) as client:
        _route(client, base, data)  # the server loads its model on first use: warm both
        _direct(whisper)
        route, direct = [], []
        for _ in range(runs):
            route.append(_timed(lambda: _route(client, base, data)))
            direct.append(_timed(lambda: _direct(whisper)))
    route_rtf = statistics.median(route) / seconds
    direct_rtf = statistics.median(direct) / seconds
    return {
        "file": AUDIO.name,
        "audio_seconds": round(seconds, 2),
        "runs": runs,
        "route_rtf": round(route_rtf, 4),
        "direct_rtf": round(direct_rtf, 4),
        "ratio": round(route_rtf / direct_rtf, 3),
        "target_ratio": TARGET_RATIO,
        "met": route_rtf / direct_rtf <= TARGET_RATIO,
    }


def _direct_model() -> Any:
    directory = audio.model_directory()
    return faster_whisper.WhisperModel(
        str(directory), device="cpu", compute_type="int8", cpu_threads=1, num_workers=1
    )


def _direct(whisper: Any) -> str:
    """faster-whisper on the same file with the options the server uses."""
    segments, _ = whisper.transcribe(
        str(AUDIO),
        language="en",
        temperature=[0.0, 0.2, 0.4],
        vad_filter=True,
        beam_size=5,
    )
    return " ".join(s.text.strip() for s in segments)


def _route(client: httpx.Client, base: str, data: bytes) -> str:
    response = client.post(
        base + "/audio/transcriptions",
        files={"file": (AUDIO.name, data, "audio/wav")},
        data={"model": PERSONA},
    )
    response.raise_for_status()
    return str(response.json()["text"])


# --- documents ------------------------------------------------------------------------------


def _reading(base: str, runs: int) -> list[dict[str, Any]]:
    files = [(p.name, p.read_bytes()) for p in PDFS] + [("generated-100.pdf", _generated(100))]
    rows = []
    with httpx.Client(timeout=300) as client:
        for name, data in files:
            pages = documents.extract_in_process(data, name).pages
            ways: dict[str, Callable[[], object]] = {
                "in_process": lambda d=data, n=name: documents.extract_in_process(d, n),
                "child_process": lambda d=data, n=name: trio.run(documents.extract, d, n),
                "upload": lambda d=data, n=name: _upload(client, base, n, d),
            }
            row: dict[str, Any] = {"file": name, "pages": pages, "bytes": len(data)}
            for way, work in ways.items():
                seconds = statistics.median(_timed(work) for _ in range(runs))
                row[f"{way}_pages_per_s"] = round(pages / seconds, 1)
            rows.append(row)
    return rows


def _generated(pages: int) -> bytes:
    """A PDF of `pages` pages of 40 lines of plain text each."""
    line = "Page {page}, line {n}: the wave memory keeps what the persona found interesting."
    return text_pdf([[line.format(page=p, n=n) for n in range(40)] for p in range(1, pages + 1)])


def _upload(client: httpx.Client, base: str, name: str, data: bytes) -> None:
    response = client.post(
        base + "/files",
        files={"file": (name, data, "application/pdf")},
        data={"purpose": "user_data"},
    )
    if response.status_code != 200:
        raise RuntimeError(f"uploading {name}: {response.status_code} {response.text}")
    if response.json()["status"] != "processed":
        raise RuntimeError(f"{name} was not processed: {response.text}")


# --- output ---------------------------------------------------------------------------------


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _print(report: dict[str, Any]) -> None:
    hearing = report["transcription"]
    print(
        f"transcription of {hearing['file']} ({hearing['audio_seconds']} s), median of "
        f"{hearing['runs']} alternating runs, 1 thread each"
    )
    print(f"  faster-whisper direct   RTF {hearing['direct_rtf']:.4f}")
    print(f"  POST /v1/audio/...      RTF {hearing['route_rtf']:.4f}")
    verdict = "MET" if hearing["met"] else "MISSED"
    print(f"  route / direct = {hearing['ratio']:.3f}  (target <= {TARGET_RATIO}: {verdict})")
    print()
    print("document reading, pages per second (median):")
    print(f"  {'file':<20} {'pages':>5} {'in process':>11} {'child':>8} {'upload':>8}")
    for row in report["documents"]:
        print(
            f"  {row['file']:<20} {row['pages']:>5} {row['in_process_pages_per_s']:>11} "
            f"{row['child_process_pages_per_s']:>8} {row['upload_pages_per_s']:>8}"
        )


if __name__ == "__main__":
    sys.exit(main())
