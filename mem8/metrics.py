"""The server's counters, histograms and gauges, in a Prometheus registry of the system's own
(not the process-wide default: tests run several systems in one process)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: an answer can take minutes on a CPU, a recall takes milliseconds.
ANSWER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
RECALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
MEMORY_EVENTS = ("imprinted", "recalled", "forgotten")


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "mem8_requests",
            "HTTP requests answered, by route (the endpoint's name), status and persona",
            ["route", "status", "persona"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "mem8_request_seconds",
            "Time from a request's arrival to its answer's end (a stream's last chunk)",
            ["route"],
            registry=registry,
            buckets=ANSWER_BUCKETS,
        )
        self.time_to_first_token = Histogram(
            "mem8_time_to_first_token_seconds",
            "Time from a chat's arrival to the first piece of its answer",
            ["persona"],
            registry=registry,
            buckets=ANSWER_BUCKETS,
        )
        self.tokens = Counter(
            "mem8_tokens",
            "Chat tokens: prompts (in) and answers (out)",
            ["direction", "persona"],
            registry=registry,
        )
        self.memories = Counter(
            "mem8_memories",
            "Memories imprinted, recalled (by a chat or a search) and forgotten",
            ["event"],
            registry=registry,
        )
        for event in MEMORY_EVENTS:  # each shown from the start, at 0
            self.memories.labels(event)
        self.recall_seconds = Histogram(
            "mem8_recall_seconds",
            "Time a recall takes: the grid's answer and the memories read",
            registry=registry,
            buckets=RECALL_BUCKETS,
        )
        self.backend_seconds = Histogram(
            "mem8_backend_seconds",
            "Time an LLM backend takes to generate an answer",
            ["backend"],
            registry=registry,
            buckets=ANSWER_BUCKETS,
        )
        self.backend_errors = Counter(
            "mem8_backend_errors",
            "Answers an LLM backend failed to give (unavailable or failed)",
            ["backend"],
            registry=registry,
        )
        self.mailbox_depth = Gauge(
            "mem8_mailbox_depth",
            "Messages waiting in an actor's mailbox, when scraped",
            ["actor"],
            registry=registry,
        )
        self.journal_bytes = Gauge(
            "mem8_journal_bytes",
            "Bytes the journal's files take on disk, when scraped",
            registry=registry,
        )

    def exposition(self, mailboxes: Mapping[str, int], journal_bytes: int) -> bytes:
        """Every metric in Prometheus' text format, with the gauges read just now."""
        for actor, depth in mailboxes.items():
            self.mailbox_depth.labels(actor).set(depth)
        self.journal_bytes.set(journal_bytes)
        return generate_latest(self.registry)
