"""An instant OpenAI-compatible upstream in a child process: the LLM a load test leaves out.
Each reply is numbered, as a real model's replies differ: a fixed one would be encoded once and
then come from the encoder's cache, which would flatter every memory-writing figure.

It is the tests' wire server (`tests/backends/wire_servers.py`), answering `/v1/models` and
`/v1/chat/completions` (streamed, or one JSON completion without `stream`) with no delay, in a
process of its own so its work does not share the load generator's interpreter. Run as
`python -m bench._upstream`, it prints its base URL and serves until its stdin closes."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.backends.wire_servers import OpenAIServer, Script, running

ROOT = Path(__file__).resolve().parent.parent
MODEL = "instant"
REPLY = ("Noted", ",", " thank", " you", ".")


class InstantUpstream(OpenAIServer):
    """Keeps no record of requests, and queues as many connections as a burst opens (mem8
    opens one per generation; the standard library's backlog of 5 would drop SYNs)."""

    request_queue_size = 4096
    keeps_records = False
    _numbers = itertools.count(1)

    @property
    def script(self) -> Script:
        """The script, its reply ending with this request's number."""
        return replace(
            self._script, tokens=(*self._script.tokens, f" (reply {next(self._numbers)})")
        )

    @script.setter
    def script(self, script: Script) -> None:
        self._script = script

    def get_request(self) -> tuple[socket.socket, Any]:
        """Each token is its own write: without TCP_NODELAY, Nagle's algorithm and the
        client's delayed ACK hold every reply for 40 ms."""
        connection, address = super().get_request()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address


@contextmanager
def instant_upstream() -> Iterator[str]:
    """The upstream's base URL (ending in /v1) while the block runs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._upstream"],
        cwd=ROOT,  # `-m` looks in the working directory first: this checkout's bench
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url:
            raise RuntimeError(f"the instant upstream exited with code {process.wait(5)}")
        yield url
    finally:
        process.kill()
        process.wait(5)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def main() -> None:
    with running(InstantUpstream(Script(tokens=REPLY), models=(MODEL,))) as upstream:
        print(f"{upstream.url}/v1", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
