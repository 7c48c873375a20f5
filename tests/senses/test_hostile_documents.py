"""Hostile files, each read by the child process: every one ends in a clear ExtractionError
within bounded time, and the server's own process is unharmed (its peak memory barely moves,
no reader process outlives its request)."""

from __future__ import annotations

import os
import random
import re
import resource
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from mem8.senses.documents import Extraction, ExtractionError, Limits, _answer, extract
from tests.senses import hostile

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
SLACK = 5.0  # seconds for the child to start and the machine to be busy with other work
LIMITS = Limits(seconds=20)


def refused(data: bytes, filename: str, limits: Limits = LIMITS) -> str:
    """The message `extract` fails with, after checking it failed in time and without growing
    this process."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ExtractionError) as caught:
        trio.run(extract, data, filename, limits)
    assert time.monotonic() - started < limits.seconds + SLACK
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert growth < (16 << 10) + len(data) // 1024  # KiB: the one copy sent to the child
    message = str(caught.value)
    assert "Traceback" not in message
    assert not caught.value.missing
    return message


BOMBS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "docx zip bomb": (
        lambda: hostile.office_bomb("docx", 2047),
        "bomb.docx",
        "the Word document unpacks to 2 GiB, more than the 200 MiB allowed",
    ),
    "xlsx zip bomb": (
        lambda: hostile.office_bomb("xlsx", 2047),
        "bomb.xlsx",
        "the Excel workbook unpacks to 2 GiB",
    ),
    "xlsx within size, compressed 1000 to 1": (
        lambda: hostile.office_bomb("xlsx", 50),
        "dense.xlsx",
        "part xl/workbook.xml is compressed 1,0[0-9][0-9] to 1, more than the 100 to 1 allowed",
    ),
    "docx lying about its size": (
        lambda: hostile.office_bomb("docx", 1024, declared=2000),
        "liar.docx",
        "could not read the Word document",
    ),
    "xlsx lying about its size": (
        lambda: hostile.office_bomb("xlsx", 1024, declared=2000),
        "liar.xlsx",
        "could not read the Excel workbook",
    ),
    "pdf stream bomb": (
        hostile.pdf_bomb,
        "bomb.pdf",
        "the PDF has a part that unpacks to more than 64 MiB",
    ),
    "billion laughs": (hostile.billion_laughs, "laughs.xml", "the XML was refused"),
    "png of 30000 x 30000": (
        lambda: hostile.png_declaring(30000, 30000),
        "huge.png",
        "more than the 50,000,000 pixels allowed",
    ),
    "png just over the pixel limit": (
        lambda: hostile.png_declaring(8000, 8000),
        "large.png",
        "more than the 50,000,000 pixels allowed",
    ),
    "json 200k deep": (
        lambda: hostile.nested_json(200_000),
        "deep.json",
        "the JSON nests 200,000 levels deep, more than 1,000",
    ),
    "xml 200k deep": (
        lambda: hostile.nested_xml(200_000),
        "deep.xml",
        "the XML nests deeper than 1,000 levels",
    ),
    "html 200k deep": (
        lambda: hostile.nested_html(200_000),
        "deep.html",
        "the HTML nests 200,00[0-9] levels deep",
    ),
    "empty file": (lambda: b"", "empty.pdf", "the file is empty"),
    "binary named .txt": (lambda: bytes(range(256)) * 4, "notes.txt", "content is binary"),
    "text named .pdf": (lambda: b"plain words", "paper.pdf", "is not a PDF"),
}


@pytest.mark.parametrize("case", BOMBS)
def test_hostile_file_is_refused(case: str) -> None:
    build, filename, expected = BOMBS[case]
    message = refused(build(), filename)
    assert re.search(expected, message), message


def test_external_entities_are_never_resolved() -> None:
    message = refused(hostile.external_entity("/etc/passwd"), "xxe.xml")
    assert "the XML was refused" in message
    assert "root:" not in message


# --- Damaged files of every kind ---------------------------------------------------------------

SAMPLES: dict[str, Callable[[], bytes]] = {
    "crazyones.pdf": lambda: (FIXTURES / "pdf" / "crazyones.pdf").read_bytes(),
    "test.docx": lambda: (FIXTURES / "docx" / "test.docx").read_bytes(),
    "utf8.xlsx": lambda: (FIXTURES / "xlsx" / "utf8.xlsx").read_bytes(),
    "data.json": lambda: b'{"people": [{"name": "Ann", "city": "Lisbon"}]}',
    "data.xml": lambda: b"<people><person><name>Ann</name></person></people>",
    "page.html": lambda: b"<html><body><p>Hello there, reader.</p></body></html>",
    "notes.txt": lambda: "Caf\u00e9 notes.\n\nSecond paragraph.".encode(),
    "notes.md": lambda: b"# Notes\n\n- one\n- two\n",
    "picture.png": lambda: hostile.png_declaring(64, 64),
}


@pytest.mark.parametrize("filename", SAMPLES)
def test_truncated_files_fail_cleanly_or_read(filename: str) -> None:
    """Cut in half, a file is refused with a message, or (text, HTML) read as far as it goes."""
    data = SAMPLES[filename]()
    try:
        extraction = trio.run(extract, data[: len(data) // 2], filename, LIMITS)
    except ExtractionError as error:
        assert "Traceback" not in str(error)
        assert str(error)
    else:
        assert isinstance(extraction, Extraction)
        assert filename.endswith((".html", ".txt", ".md"))


@pytest.mark.parametrize("filename", SAMPLES)
def test_random_bytes_are_refused(filename: str) -> None:
    noise = random.Random(filename).randbytes(4096)
    message = refused(noise, filename)
    assert "content is" in message or "could not read" in message


# --- Limits -------------------------------------------------------------------------------------


def test_the_memory_limit_stops_a_legitimate_but_big_document() -> None:
    paragraph = "All work and no play makes Jack a dull boy. " * 20 + "\n\n"
    book = paragraph.encode() * 40_000  # 35 MB of text: copies of it need more than 96 MiB
    limits = Limits(seconds=20, memory=96 << 20, characters=10**9)
    message = refused(book, "book.txt", limits)
    assert message == "extraction stopped: the document needs more than 96 MiB of memory"


def long_pdf() -> bytes:
    """A PDF that takes seconds to read: 3000 pages of 40 lines."""
    lines = [f"Line {line}: nothing much to see here." for line in range(40)]
    return hostile.text_pdf([lines] * 3000)


def test_the_time_limit_stops_a_slow_document() -> None:
    message = refused(long_pdf(), "long.pdf", Limits(seconds=0.5))
    assert message == "extraction stopped after 0.5 s"


def test_cancelling_kills_the_reader() -> None:
    data = long_pdf()

    async def cancel_midway() -> None:
        with trio.move_on_after(0.5):
            await extract(data, "long.pdf")
            pytest.fail("the extraction was not cancelled")

    started = time.monotonic()
    trio.run(cancel_midway)
    assert time.monotonic() - started < 0.5 + SLACK
    assert not readers()


def readers() -> list[int]:
    """Processes of ours still running the reader."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # not a process, or one that ended meanwhile
        parent = int(stat.rpartition(")")[2].split()[1])
        if parent == os.getpid() and b"mem8.senses._worker" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("returncode", "stderr", "message"),
    [
        (-9, b"", "extraction failed: the reader process was killed by Killed"),
        (-24, b"", "extraction stopped after 60 s"),  # SIGXCPU: its processor time ran out
        (1, b"Traceback ...\nMemoryError\n", "the document needs more than 1 GiB of memory"),
        (1, b"Traceback ...\nKeyError: 'x'\n", "the reader process ended with exit code 1"),
        (0, b"", "the reader process gave no answer"),
    ],
)
def test_a_reader_that_dies_is_explained_without_its_trace(
    returncode: int, stderr: bytes, message: str
) -> None:
    with pytest.raises(ExtractionError) as caught:
        _answer(returncode, b"", stderr, Limits())
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value)
