"""Serves the app on hypercorn inside the system's trio run; SIGINT/SIGTERM drain and stop."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from mem8.backends.base import LLMBackend
from mem8.clock import Clock
from mem8.config import Settings
from mem8.encoders.base import Encoder
from mem8.errors import ConfigError
from mem8.http.app import create_app
from mem8.http.edge import is_loopback
from mem8.http.gate import Gate
from mem8.http.mcp import Endpoint
from mem8.keys import KeyRing
from mem8.system import open_system

log = logging.getLogger(__name__)
HEADER_BUFFER_BYTES = 1024 * 1024


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.graceful_timeout = settings.shutdown_grace
    config.backlog = settings.backlog
    config.accesslog = None  # mem8.http.observe logs each request, once
    config.errorlog = logging.getLogger("hypercorn.error")  # through mem8's handler and format
    # h11 answers a header block over its limit (16 KiB) with an empty 431 before the app sees
    # it; with room here, mem8.http.edge answers up to this with its own, in the error shape.
    config.h11_max_incomplete_size = HEADER_BUFFER_BYTES
    return config


async def serve(
    settings: Settings,
    *,
    backends: Mapping[str, LLMBackend] | None = None,
    clock: Clock | None = None,
    encoder: Encoder | None = None,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serves until SIGINT/SIGTERM or `shutdown` is set; in-flight requests then get
    settings.shutdown_grace seconds, the journal is closed and the actors stop."""
    _refuse_an_open_network(settings)
    stop = trio.Event() if shutdown is None else shutdown
    async with open_system(settings, backends=backends, clock=clock, encoder=encoder) as system:
        gate = Gate(system)
        mcp = Endpoint(system, gate)  # /mcp beside the routes, sharing their keys and limits
        app = mcp.beside(create_app(system, gate))
        async with mcp.running(), trio.open_nursery() as nursery:
            if threading.current_thread() is threading.main_thread():
                nursery.start_soon(_stop_on_signal, stop)
            run = partial(_run_hypercorn, app, hypercorn_config(settings), stop, nursery)
            binds = await nursery.start(run)
            log.info("mem8 serves %d personas on %s", len(settings.personas), ", ".join(binds))
            task_status.started(binds)
    log.info("mem8 stopped")


def _refuse_an_open_network(settings: Settings) -> None:
    """Without API keys anyone who reaches the server reads every memory: that is served on
    loopback only, unless `insecure` says otherwise (loudly)."""
    if is_loopback(settings.host):
        return
    path = Path(settings.storage)
    keyed = False
    if path.exists():
        ring = KeyRing(path)
        try:
            keyed = ring.required
        finally:
            ring.close()
    if keyed:
        return
    if settings.insecure:
        log.warning(
            "INSECURE: serving %s without API keys: anyone who can reach it can read and "
            "write every memory (create a key: mem8 keys create NAME)",
            settings.host,
        )
        return
    raise ConfigError(
        f"serving on {settings.host} without API keys would let anyone who can reach it read "
        "every memory: create one with `mem8 keys create NAME` (the server then needs it), "
        "or serve on 127.0.0.1, or pass --insecure (MEM8_INSECURE=1) to do it anyway"
    )


async def _run_hypercorn(
    app: object,
    config: Config,
    stop: trio.Event,
    nursery: trio.Nursery,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)  # type: ignore[arg-type]
    nursery.cancel_scope.cancel()  # hypercorn has drained: stop watching for signals


async def _stop_on_signal(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            log.info(
                "%s: draining in-flight requests, then stopping", signal.Signals(received).name
            )
            stop.set()
            return
