"""The child process that reads one document: `python -m mem8.senses._worker`.

It reads its order on stdin (a 4-byte length, {"filename", "limits"} as msgpack, then the
file's bytes), caps its own memory and processor time, and writes the Extraction (or the
error's message) as msgpack on the stdout it was given; anything a library prints goes to
stderr instead, so the reply cannot be garbled."""

from __future__ import annotations

import logging
import math
import os
import resource
import sys

import msgpack

from mem8.senses.documents import (
    ExtractionError,
    Limits,
    error_reply,
    extract_in_process,
    reply,
)


def confine(limits: Limits) -> None:
    """Cap this process (and tesseract, which inherits the caps) to the limits."""
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory, limits.memory))
    seconds = math.ceil(limits.seconds) + 1  # the parent's wall clock normally ends it first
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    os.environ["OMP_THREAD_LIMIT"] = "1"


def main() -> None:
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.disable(logging.CRITICAL)  # pypdf logs every oddity of a hostile file
    length = int.from_bytes(sys.stdin.buffer.read(4), "big")
    request = msgpack.unpackb(sys.stdin.buffer.read(length))
    data = sys.stdin.buffer.read()
    limits = Limits(**request["limits"])
    confine(limits)
    try:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = limits.pixels
    except ImportError:
        pass  # reading an image will say what is missing
    try:
        packed = reply(extract_in_process(data, request["filename"], limits))
    except ExtractionError as error:
        packed = error_reply(error)
    answer.write(packed)
    answer.close()


if __name__ == "__main__":
    main()
