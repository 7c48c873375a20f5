"""GET /metrics: the system's metrics in Prometheus' text format, with the actors' mailbox
depths and the journal's size read at the scrape. Once API keys exist, for an admin key only."""

from __future__ import annotations

import trio
from prometheus_client import CONTENT_TYPE_LATEST
from quart import Response

from mem8.http.gate import Gate
from mem8.system import System


class Exposition:
    def __init__(self, system: System, gate: Gate) -> None:
        self.system = system
        self.gate = gate

    async def read(self) -> Response:
        self.gate.admit_admin("Reading /metrics")
        system = self.system
        journal_bytes = await trio.to_thread.run_sync(system.journal_bytes)
        text = system.metrics.exposition(system.supervisor.mailboxes(), journal_bytes)
        return Response(text, content_type=CONTENT_TYPE_LATEST)
