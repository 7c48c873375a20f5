"""A real mem8 server on a loopback port, in a background thread, for tests and benchmarks."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from mem8.backends.base import LLMBackend
from mem8.config import Settings
from mem8.encoders.base import Encoder
from mem8.server import serve


@dataclass
class RunningServer:
    root: str  # http://127.0.0.1:PORT
    settings: Settings
    stop: trio.Event
    token: trio.lowlevel.TrioToken

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    def shutdown(self) -> None:
        trio.from_thread.run_sync(self.stop.set, trio_token=self.token)


@contextmanager
def running_server(
    settings: Settings,
    backends: Mapping[str, LLMBackend] | None = None,
    timeout: float = 60,
    encoder: Encoder | None = None,
) -> Iterator[RunningServer]:
    """Serves until the block ends, then shuts down gracefully (drain, journal close)."""
    started: queue.Queue[Any] = queue.Queue()

    async def main() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(serve, settings, backends=backends, encoder=encoder, shutdown=stop)
            )
            started.put(RunningServer(binds[0], settings, stop, trio.lowlevel.current_trio_token()))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as error:  # reported to the test instead of dying silently
            started.put(error)

    thread = threading.Thread(target=run, name="mem8-test-server", daemon=True)
    thread.start()
    server = started.get(timeout=timeout)
    if isinstance(server, BaseException):
        raise server
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("the test server did not stop")
        leftover = None if started.empty() else started.get()
        if isinstance(leftover, BaseException):
            raise leftover
