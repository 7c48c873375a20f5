"""Reliability of a real `mem8 serve` (issue 17): a crash, a burst, long streams, the memory
writing rate and one tenant's wait beside another's large input.

Each part starts its own `mem8 serve` process (own process group, a free port, a temporary
storage file and journal) whose personas answer through an instant OpenAI-compatible upstream
(`bench/_upstream.py`), so what is measured is mem8: its HTTP edge, actors, encoder and store.
The persona `bench-writer` imprints every exchange (interest_threshold 0), `bench-reader` none
(threshold 1: its scope stays empty, so its chats recall nothing either). The encoder dominates
the memory-writing rate; the output names it. Figures are printed one per line (`--json`: to
stderr, and one JSON document to stdout). Exits 1 if a part could not run (e.g. the server did
not start), else 0, targets met or not: failures of mem8 are figures, not crashes."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import trio

from bench._load import Target, burst
from bench._upstream import MODEL, instant_upstream
from mem8.config import Settings
from tests.support.processes import free_port, kill_group, mem8_serve, wait_healthy

PARTS = ("crash", "burst", "streams", "rate", "wait")
WRITER, READER = "bench-writer", "bench-reader"
PERSONAS = {"writer": WRITER, "reader": READER}
# API keys: the crash part's and the load's tenants; A sends large input, B small chats, C uploads.
KEYS = dict(crash="bench-crash", load="bench-load", a="tenant-a", b="tenant-b", c="tenant-c")
RATE_TARGET = 100.0  # memory-writing chats per second (issue 17)
WAIT_TARGET = 1.0  # seconds another tenant's chat may wait (issue 17)
# Both personas' context holds the largest allowed message (500,000 characters, estimated at a
# token per 3 bytes): with the upstream's default 4096 tokens it would be context_length_exceeded.
CONFIG = """\
[personas.bench-writer]
name = "Bench Writer"
traits = {{ openness = 0.5, conscientiousness = 0.5, extraversion = 0.5, agreeableness = 0.5, \
neuroticism = 0.5 }}
model = "{model}"
temperature = 0.0
context = 262144
interest_threshold = 0.0

[personas.bench-reader]
name = "Bench Reader"
traits = {{ openness = 0.5, conscientiousness = 0.5, extraversion = 0.5, agreeableness = 0.5, \
neuroticism = 0.5 }}
model = "{model}"
temperature = 0.0
context = 262144
interest_threshold = 1.0
"""


# --- figures --------------------------------------------------------------------------------


@dataclass
class Report:
    """Every figure, printed as it is measured and kept for --json."""

    stream: Any = sys.stdout
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, part: str, name: str, value: Any) -> None:
        self.parts.setdefault(part, {})[name] = value
        print(f"{part:<8} {name:<40} {_shown(value)}", file=self.stream, flush=True)


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {count}" for key, count in value.items()) or "none"
    return str(value)


def quantile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank quantile, or None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def add_latencies(report: Report, part: str, name: str, seconds: Sequence[float]) -> None:
    report.add(part, f"{name}_p50_s", quantile(seconds, 0.5))
    report.add(part, f"{name}_p99_s", quantile(seconds, 0.99))


def progress(text: str) -> None:
    print(f"  ... {text}", file=sys.stderr, flush=True)


# --- the server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Where a part's server keeps its files, and how it is configured."""

    part: str
    folder: Path
    env: dict[str, str]
    start_timeout: float

    @property
    def log(self) -> Path:
        return self.folder / "mem8.log"

    @property
    def journal(self) -> Path:
        return self.folder / "mem8.db.journal"

    @property
    def storage(self) -> Path:
        return self.folder / "mem8.db"


@dataclass(frozen=True)
class Served:
    process: subprocess.Popen[str]
    root: str  # http://127.0.0.1:PORT
    start_seconds: float  # from starting the process to /health answering OK

    @property
    def base_url(self) -> str:
        return self.root + "/v1"

    @property
    def target(self) -> Target:
        """Where bench._load's raw sockets connect."""
        host, port = self.root.removeprefix("http://").rsplit(":", 1)
        return Target(host, int(port))

    def rss_mb(self) -> float:
        """The server process's resident memory (VmRSS), in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) / 1024 if found else float("nan")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user and system, every thread)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        kill_group(self.process)


class ServerDown(Exception):
    """mem8 serve did not come up (the message holds the tail of its log)."""


def make_setup(root: Path, part: str, upstream: str, options: argparse.Namespace) -> Setup:
    folder = root / part
    folder.mkdir()
    config = folder / "mem8.toml"
    config.write_text(CONFIG.format(model=MODEL))
    env = {
        "MEM8_LLM_BACKEND": "openai",
        "OPENAI_API_BASE": upstream,
        "MEM8_CONFIG": str(config),
        "MEM8_ENCODER": options.encoder,
        "MEM8_BACKLOG": str(options.backlog),
        "MEM8_JOURNAL": str(folder / "mem8.db.journal"),
    }
    return Setup(part, folder, env, options.start_timeout)


@contextmanager
def serving(setup: Setup, report: Report | None = None, grace: float = 15.0) -> Iterator[Served]:
    """A `mem8 serve` on setup's storage; at the end SIGTERM (the report gets how long it took
    to stop), then SIGKILL to its group."""
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    flags = ("--port", str(port))
    with mem8_serve(setup.folder, *flags, env=setup.env, log=setup.log) as process:
        started = time.perf_counter()
        try:
            wait_healthy(root, process, setup.start_timeout, log=setup.log)
        except AssertionError as error:
            raise ServerDown(str(error)) from None
        try:
            yield Served(process, root, time.perf_counter() - started)
        except BaseException:
            kill_group(process)  # an error or Ctrl-C: nothing to drain for
            raise
        stopped = _stop(process, grace)
        if report is not None:
            shown = f"{stopped:.1f}" if stopped is not None else f"killed after {grace:g} s"
            report.add(setup.part, "stop_on_sigterm_s", shown)


def _stop(process: subprocess.Popen[str], grace: float) -> float | None:
    """SIGTERM, then up to `grace` seconds: how long the server took to stop, or None."""
    began = time.perf_counter()
    with suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        return None
    return time.perf_counter() - began


# --- chats ----------------------------------------------------------------------------------


@asynccontextmanager
async def client(
    served: Served, key: str, timeout: float = 600
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of one tenant (its API key), without a connection limit."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=1000)
    async with httpx.AsyncClient(
        base_url=served.base_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=httpx.Timeout(timeout, connect=60),
        limits=limits,
    ) as http:
        yield http


def chat_body(persona: str, text: str, user: str, *, stream: bool = False) -> dict[str, Any]:
    body = {"model": persona, "user": user, "messages": [{"role": "user", "content": text}]}
    return {**body, "stream": True} if stream else body


async def chat(http: httpx.AsyncClient, persona: str, text: str, user: str) -> httpx.Response:
    return await http.post("/chat/completions", json=chat_body(persona, text, user))


def prose(chars: int, tag: str) -> str:
    """Varied sentences, cut to `chars` characters."""
    pieces: list[str] = []
    total = 0
    for number in count():
        if total >= chars:
            break
        sentence = (
            f"{tag} log {number}: pump {number % 97} held {number % 13 + 1} bar "
            f"at minute {number % 60} while valve {number % 31} stayed open. "
        )
        pieces.append(sentence)
        total += len(sentence)
    return "".join(pieces)[:chars]


def failure(error: Exception) -> str:
    return type(error).__name__


# --- part 1: crash --------------------------------------------------------------------------


@dataclass
class Crash:
    """The chats of the crash part, by number: which were sent and which answered 200."""

    facts: dict[int, str] = field(default_factory=dict)
    acknowledged: set[int] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    killed_after: float = 0.0  # seconds from the first chat to the kill


def fact(number: int) -> str:
    return f"fact {number:04d}: the locker code of courier {number} is {number * 7919 % 100003}"


async def crash_load(served: Served, chats: int, concurrency: int, crash: Crash) -> None:
    """Sends the chats, `concurrency` at a time, and SIGKILLs the server's group once half
    are answered; chats not yet sent then are not sent."""
    numbers = iter(range(chats))
    killed = trio.Event()
    began = time.perf_counter()

    async def worker(http: httpx.AsyncClient) -> None:
        for number in numbers:
            if killed.is_set():
                return
            crash.facts[number] = fact(number)
            await _crash_chat(http, number, crash)
            if len(crash.acknowledged) >= chats // 2 and not killed.is_set():
                served.kill()
                crash.killed_after = time.perf_counter() - began
                killed.set()

    async with client(served, KEYS["crash"], timeout=120) as http, trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker, http)


async def _crash_chat(http: httpx.AsyncClient, number: int, crash: Crash) -> None:
    try:
        response = await chat(http, WRITER, crash.facts[number], f"crash-{number}")
    except httpx.HTTPError as error:
        crash.failures[failure(error)] += 1
        return
    if response.status_code == 200:
        crash.acknowledged.add(number)
    else:
        crash.failures[f"HTTP {response.status_code}"] += 1


async def all_memories(served: Served, key: str) -> list[dict[str, Any]]:
    """Every memory of the tenant, through GET /v1/memories, page by page."""
    memories: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    async with client(served, key) as http:
        while True:
            page = (await http.get("/memories", params=params)).raise_for_status().json()
            memories += page["data"]
            if not page["has_more"]:
                return memories
            params["after"] = page["last_id"]


def count_kept(crash: Crash, memories: list[dict[str, Any]]) -> dict[str, int]:
    """Which exchanges are stored whole: the fact and its reply, in the chat's own scope."""
    facts = {f"crash-{number}": fact for number, fact in crash.facts.items()}
    said: Counter[str] = Counter()
    replied: Counter[str] = Counter()
    for memory in memories:
        side = memory["source"].rsplit(":", 1)[-1]
        if side == "user" and facts.get(memory["user"]) == memory["text"]:
            said[memory["user"]] += 1
        elif side == "assistant" and memory["user"] in facts:
            replied[memory["user"]] += 1
    whole = {n for n in crash.facts if said[f"crash-{n}"] and replied[f"crash-{n}"]}
    halves = {n for n in crash.facts if bool(said[f"crash-{n}"]) != bool(replied[f"crash-{n}"])}
    extra = sum(max(0, said[user] - 1) + max(0, replied[user] - 1) for user in facts)
    return {
        "present": len(whole),
        "acknowledged_but_missing": len(crash.acknowledged - whole),
        "present_not_acknowledged": len(whole - crash.acknowledged),
        "half_exchanges": len(halves),
        "duplicates": extra,
        "memories_listed": len(memories),
    }


def run_replay(journal: Path, timeout: float) -> tuple[int, float, list[str]]:
    """`mem8 replay` on the journal: exit code, seconds and its summary lines."""
    began = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mem8", "replay", str(journal)],
            cwd=journal.parent,  # not wherever this runs: `-m` looks there first
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return -1, time.perf_counter() - began, [f"did not finish within {timeout:g} s"]
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, time.perf_counter() - began, lines


def crash_part(setup: Setup, options: argparse.Namespace, report: Report) -> None:
    crash = Crash()
    with serving(setup) as first:
        progress(f"crash: {options.crash_chats} chats, {options.crash_concurrency} at a time")
        trio.run(crash_load, first, options.crash_chats, options.crash_concurrency, crash)
    report_crash_load(crash, options, report)
    with serving(setup, report) as second:
        report.add("crash", "restart_to_healthy_s", second.start_seconds)
        kept = count_kept(crash, trio.run(all_memories, second, KEYS["crash"]))
    for name, value in kept.items():
        report.add("crash", name, value)
    progress("crash: mem8 replay")
    code, seconds, lines = run_replay(setup.journal, options.replay_timeout)
    report.add("crash", "replay_exit_code", code)
    report.add("crash", "replay_s", seconds)
    report.add("crash", "replay_summary", lines)


def report_crash_load(crash: Crash, options: argparse.Namespace, report: Report) -> None:
    report.add("crash", "chats_planned", options.crash_chats)
    report.add("crash", "concurrency", options.crash_concurrency)
    report.add("crash", "killed_after_s", crash.killed_after)
    report.add("crash", "tried", len(crash.facts))
    report.add("crash", "acknowledged", len(crash.acknowledged))
    report.add("crash", "failed", dict(crash.failures))


# --- part 2: burst --------------------------------------------------------------------------


def burst_part(setup: Setup, options: argparse.Namespace, report: Report) -> None:
    persona = PERSONAS[options.burst_persona]
    with serving(setup, report) as served:
        target = served.target
        _warm_up(served, persona)
        body = json.dumps(chat_body(persona, "A burst chat about the pump station.", "burst"))
        progress(f"burst: {options.burst_connections} connections at once")
        result = burst(
            target,
            target.post("/v1/chat/completions", body.encode()),
            options.burst_connections,
            options.burst_timeout,
        )
    report.add("burst", "persona", f"{persona} (memory-writing: {persona == WRITER})")
    report.add("burst", "server_backlog", options.backlog)
    report.add("burst", "somaxconn", _somaxconn())
    report.add("burst", "connections", options.burst_connections)
    report.add("burst", "opened", result.opened)
    report.add("burst", "open_all_s", result.open_seconds)
    report.add("burst", "statuses", dict(result.statuses))
    report.add("burst", "non_200", sum(n for s, n in result.statuses.items() if s != 200))
    report.add("burst", "resets_and_connection_errors", dict(result.failures))
    add_latencies(report, "burst", "latency", [ns / 1e9 for ns in result.latencies_ns])


def _warm_up(served: Served, persona: str) -> None:
    """One chat first, so that the burst does not time the encoder's first run."""
    body = chat_body(persona, "A first chat to warm up.", "warm-up")
    httpx.post(served.base_url + "/chat/completions", json=body, timeout=120).raise_for_status()


def _somaxconn() -> int | None:
    with suppress(OSError, ValueError):
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    return None


# --- part 3: streams ------------------------------------------------------------------------


@dataclass
class Streams:
    first_token: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    hung: Counter[str] = field(default_factory=Counter)  # by where the longest silence fell
    longest_silence: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.total)


@dataclass
class Silence:
    """A stream's longest wait for its next event, and what came before that wait."""

    seconds: float = 0.0
    where: str = ""

    def note(self, seconds: float, where: str) -> None:
        if seconds > self.seconds:
            self.seconds, self.where = seconds, where


async def streams_load(served: Served, options: argparse.Namespace, streams: Streams) -> None:
    persona = PERSONAS[options.streams_persona]
    deadline = trio.current_time() + options.streams_seconds

    async def streamer(http: httpx.AsyncClient, number: int) -> None:
        for turn in count():
            if trio.current_time() >= deadline:
                return
            text = f"Stream {number}, turn {turn}: how is pump {turn % 97} doing?"
            body = chat_body(persona, text, f"stream-{number}", stream=True)
            await _one_stream(http, body, options, streams)

    async with client(served, KEYS["load"]) as http, trio.open_nursery() as nursery:
        for number in range(options.streams):
            nursery.start_soon(streamer, http, number)


async def _one_stream(
    http: httpx.AsyncClient, body: dict[str, Any], options: argparse.Namespace, streams: Streams
) -> None:
    """One streamed chat: a silence over hang_seconds marks it hung (it is read on), one over
    stuck_seconds ends it."""
    began, silence = trio.current_time(), Silence()
    try:
        async with http.stream("POST", "/chat/completions", json=body) as response:
            if response.status_code != 200:
                streams.errors[f"HTTP {response.status_code}"] += 1
                return
            await _read_events(response, began, options.stuck_seconds, silence, streams)
    except httpx.HTTPError as error:
        streams.errors[failure(error)] += 1
    finally:
        streams.longest_silence = max(streams.longest_silence, silence.seconds)
        if silence.seconds > options.hang_seconds:
            streams.hung[silence.where] += 1


async def _read_events(
    response: httpx.Response, began: float, stuck: float, silence: Silence, streams: Streams
) -> None:
    """Times the first event and the whole stream, and the silences before each event."""
    lines = response.aiter_lines()
    first: float | None = None
    last = began
    while True:
        with trio.move_on_after(stuck) as waited:
            line = await anext(lines, None)
        if waited.cancelled_caught or line is None:
            silence.note(trio.current_time() - last, "before an event that never came")
            streams.errors["ended without [DONE]" if line is None else "stuck: abandoned"] += 1
            return
        if not line.startswith("data:"):
            continue
        silence.note(trio.current_time() - last, _awaited(line, first is None))
        last = trio.current_time()
        first = first if first is not None else last - began
        if line.startswith('data: {"error"'):
            streams.errors["error event"] += 1
            return
        if line == "data: [DONE]":
            streams.first_token.append(first)
            streams.total.append(last - began)
            return


def _awaited(line: str, first: bool) -> str:
    """What a silence waited for, named by the event that ended it."""
    if first:
        return "before the first event"
    if '"finish_reason": "' in line:
        return "before the finish chunk (sent after the commit)"
    return "between other events"


def streams_part(setup: Setup, options: argparse.Namespace, report: Report) -> None:
    streams = Streams()
    with serving(setup, report) as served:
        _warm_up(served, WRITER)
        before = served.rss_mb()
        progress(f"streams: {options.streams} clients for {options.streams_seconds:g} s")
        trio.run(streams_load, served, options, streams)
        after = served.rss_mb()
    persona = PERSONAS[options.streams_persona]
    report.add("streams", "persona", f"{persona} (memory-writing: {persona == WRITER})")
    report.add("streams", "clients", options.streams)
    report.add("streams", "seconds", options.streams_seconds)
    report.add("streams", "chats_completed", streams.completed)
    report.add("streams", "errors", dict(streams.errors))
    report.add("streams", f"hung_over_{options.hang_seconds:g}s", sum(streams.hung.values()))
    report.add("streams", "hung_by_where_the_silence_fell", dict(streams.hung))
    report.add("streams", "longest_silence_s", streams.longest_silence)
    add_latencies(report, "streams", "first_token", streams.first_token)
    add_latencies(report, "streams", "total", streams.total)
    report.add("streams", "server_rss_before_mb", before)
    report.add("streams", "server_rss_after_mb", after)


# --- part 4: rate ---------------------------------------------------------------------------


@dataclass
class Rate:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0  # seconds of the server's CPU while the clients chatted
    written: int = 0  # answers whose x-mem8-conscious said the exchange was imprinted
    problems: Counter[str] = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds


async def closed_loop(served: Served, persona: str, concurrency: int, seconds: float) -> Rate:
    """`concurrency` clients chatting back to back; only answers within `seconds` count."""
    rate = Rate(seconds)
    deadline = trio.current_time() + seconds
    numbers = count()

    async def worker(http: httpx.AsyncClient) -> None:
        while trio.current_time() < deadline:
            number = next(numbers)
            text = f"Rate chat {number}: the pump station logged {number % 13 + 1} bar."
            await _timed_chat(http, persona, text, deadline, rate)

    cpu = served.cpu_seconds()
    async with client(served, KEYS["load"]) as http, trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker, http)
    rate.server_cpu = served.cpu_seconds() - cpu
    return rate


async def _timed_chat(
    http: httpx.AsyncClient, persona: str, text: str, deadline: float, rate: Rate
) -> None:
    began = trio.current_time()
    try:
        response = await chat(http, persona, text, "rate")
    except httpx.HTTPError as error:
        rate.problems[failure(error)] += 1
        return
    if trio.current_time() > deadline:
        return
    if response.status_code != 200:
        rate.problems[f"HTTP {response.status_code}"] += 1
        return
    rate.latencies.append(trio.current_time() - began)
    rate.written += response.headers.get("x-mem8-conscious") == "true"


def rate_part(setup: Setup, options: argparse.Namespace, report: Report) -> None:
    best = 0.0
    with serving(setup, report) as served:
        _warm_up(served, WRITER)
        for persona in (READER, WRITER):
            for concurrency in options.rate_concurrency:
                progress(f"rate: {persona} at concurrency {concurrency}")
                rate = trio.run(closed_loop, served, persona, concurrency, options.rate_seconds)
                _report_rate(report, persona, concurrency, rate)
                best = max(best, rate.per_second) if persona == WRITER else best
    report.add("rate", "writing_best_chats_per_s", best)
    report.add("rate", f"target_{RATE_TARGET:g}_per_s", "met" if best >= RATE_TARGET else "MISSED")


def _report_rate(report: Report, persona: str, concurrency: int, rate: Rate) -> None:
    name = f"{'writing' if persona == WRITER else 'non_writing'}_c{concurrency}"
    report.add("rate", f"{name}_chats_per_s", rate.per_second)
    report.add("rate", f"{name}_imprinted", f"{rate.written} of {len(rate.latencies)}")
    report.add("rate", f"{name}_p50_s", quantile(rate.latencies, 0.5))
    # The server's CPU per answered chat: steadier than the rate on a machine the clients share.
    report.add(
        "rate", f"{name}_server_cpu_ms", 1000 * rate.server_cpu / max(1, len(rate.latencies))
    )
    report.add("rate", f"{name}_problems", dict(rate.problems))


# --- part 5: wait ---------------------------------------------------------------------------


@dataclass
class Waits:
    seconds: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


@dataclass
class Job:
    """One large request beside the small chats: its answer, or that it had none in time."""

    status: str = "not answered in time"
    seconds: float | None = None
    body: dict[str, Any] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)


async def small_chats(served: Served, until: Callable[[], bool], waits: Waits, limit: int) -> None:
    """Tenant B's small chats, one after another, until `until()` or `limit` chats."""
    async with client(served, KEYS["b"], timeout=120) as http:
        while not until() and len(waits.seconds) < limit:
            began = trio.current_time()
            try:
                response = await chat(http, WRITER, "How is the pump doing today?", "b")
                waits.statuses[str(response.status_code)] += 1
            except httpx.HTTPError as error:
                waits.statuses[failure(error)] += 1
            waits.seconds.append(trio.current_time() - began)


async def timed(job: Job, request: Callable[[], Awaitable[httpx.Response]]) -> None:
    began = trio.current_time()
    try:
        response = await request()
        job.status = str(response.status_code)
        with suppress(ValueError):
            job.body = response.json()
    except httpx.HTTPError as error:
        job.status = failure(error)
    finally:
        job.seconds = trio.current_time() - began
        job.done.set()


async def wait_load(served: Served, options: argparse.Namespace, report: Report) -> None:
    async with client(served, KEYS["b"]) as http:
        await chat(http, WRITER, "Hello, a first chat so that the next ones recall.", "b")
    alone = Waits()
    progress(f"wait: tenant B alone, {options.wait_alone} chats")
    await small_chats(served, lambda: False, alone, options.wait_alone)
    _report_waits(report, "alone", alone)
    refused = Job()
    async with client(served, KEYS["a"]) as http:
        text = prose(options.wait_refused_chars, "A")
        await timed(refused, partial(chat, http, WRITER, text, "a"))
    _report_refused(report, options, refused)
    await _beside_large(served, options, report)


async def _beside_large(served: Served, options: argparse.Namespace, report: Report) -> None:
    large, upload, beside = Job(), Job(), Waits()
    progress(
        f"wait: a {options.wait_chars}-character message and a "
        f"{options.wait_upload_bytes}-byte upload beside tenant B"
    )
    async with (
        client(served, KEYS["a"]) as tenant_a,
        client(served, KEYS["c"]) as tenant_c,
        trio.open_nursery() as nursery,
    ):
        nursery.cancel_scope.deadline = trio.current_time() + options.wait_timeout
        text = prose(options.wait_chars, "A")
        nursery.start_soon(timed, large, partial(chat, tenant_a, WRITER, text, "a"))
        nursery.start_soon(timed, upload, partial(_upload, tenant_c, options.wait_upload_bytes))

        def answered() -> bool:
            return large.done.is_set() and upload.done.is_set()

        await small_chats(served, answered, beside, sys.maxsize)
    _report_waits(report, "beside", beside)
    _report_job(report, "large_message", large)
    _report_job(report, "upload", upload)
    await _report_processing(served, options, report, upload)


async def _upload(http: httpx.AsyncClient, size: int) -> httpx.Response:
    content = prose(size, "C").encode()
    files = {"file": ("pump-logs.txt", content, "text/plain")}
    return await http.post("/files", files=files, data={"purpose": "assistants"})


async def _report_processing(
    served: Served, options: argparse.Namespace, report: Report, upload: Job
) -> None:
    """Polls the file until it is processed (or failed, or the time is up)."""
    file_id, status = upload.body.get("id"), upload.body.get("status")
    report.add("wait", "upload_status_answered", status)
    if file_id is None or upload.seconds is None:
        await _report_listed(served, report)
        return
    began = trio.current_time() - upload.seconds
    async with client(served, KEYS["c"]) as http:
        with trio.move_on_after(options.wait_timeout):
            while status not in ("processed", "error"):
                await trio.sleep(0.5)
                status = (await http.get(f"/files/{file_id}")).json().get("status")
    report.add("wait", "upload_final_status", status)
    report.add("wait", "upload_processed_after_s", trio.current_time() - began)


async def _report_listed(served: Served, report: Report) -> None:
    """What GET /v1/files says of an upload that had no answer in time."""
    async with client(served, KEYS["c"], timeout=30) as http:
        with suppress(httpx.HTTPError):
            files = (await http.get("/files")).json().get("data", [])
            report.add("wait", "upload_listed_statuses", [f.get("status") for f in files])


def _report_waits(report: Report, name: str, waits: Waits) -> None:
    report.add("wait", f"{name}_chats", len(waits.seconds))
    report.add("wait", f"{name}_statuses", dict(waits.statuses))
    report.add("wait", f"{name}_p50_s", quantile(waits.seconds, 0.5))
    report.add("wait", f"{name}_max_s", max(waits.seconds, default=None))


def _report_refused(report: Report, options: argparse.Namespace, refused: Job) -> None:
    error = refused.body.get("error", {})
    report.add("wait", "refused_message_chars", options.wait_refused_chars)
    report.add("wait", "refused_message_answer", f"{refused.status} {error.get('code')}")
    report.add("wait", "refused_message_s", refused.seconds)


def _report_job(report: Report, name: str, job: Job) -> None:
    code = job.body.get("error", {}).get("code")
    report.add("wait", f"{name}_answer", job.status if code is None else f"{job.status} {code}")
    report.add("wait", f"{name}_s", job.seconds)


def wait_part(setup: Setup, options: argparse.Namespace, report: Report) -> None:
    report.add("wait", "large_message_chars", options.wait_chars)
    report.add("wait", "upload_bytes", options.wait_upload_bytes)
    with serving(setup, report) as served:
        trio.run(wait_load, served, options, report)
    beside = report.parts["wait"].get("beside_max_s")
    verdict = "met" if beside is not None and beside < WAIT_TARGET else "MISSED"
    report.add("wait", f"target_under_{WAIT_TARGET:g}s", verdict)


# --- main -----------------------------------------------------------------------------------


def _parts(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(chosen) - set(PARTS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; got {text!r}")
    return chosen


def _levels(text: str) -> list[int]:
    try:
        levels = [int(level) for level in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"a comma-separated list of positive integers: {text!r}")
    return levels


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--only", type=_parts, default=list(PARTS), help="parts to run, comma-separated")
    add(
        "--encoder",
        default=os.environ.get("MEM8_ENCODER", defaults.encoder),
        help="the server's MEM8_ENCODER (default: MEM8_ENCODER, else the setting's default)",
    )
    add(
        "--backlog",
        type=int,
        default=int(os.environ.get("MEM8_BACKLOG", defaults.backlog)),
        help="the server's MEM8_BACKLOG",
    )
    add("--json", action="store_true", help="figures to stderr, one JSON document to stdout")
    add("--start-timeout", type=float, default=180.0, help="seconds for the server to start")
    add("--crash-chats", type=int, default=300)
    add("--crash-concurrency", type=int, default=32)
    add("--replay-timeout", type=float, default=600.0)
    add("--burst-connections", type=int, default=300)
    add("--burst-persona", choices=tuple(PERSONAS), default="writer")
    add("--burst-timeout", type=float, default=300.0, help="seconds to wait for every answer")
    add("--streams", type=int, default=200, help="concurrent streaming clients")
    add("--streams-seconds", type=float, default=30.0)
    add("--streams-persona", choices=tuple(PERSONAS), default="writer")
    add("--hang-seconds", type=float, default=10.0, help="a stream silent this long is hung")
    add("--stuck-seconds", type=float, default=120.0, help="a stream silent this long is ended")
    add("--rate-concurrency", type=_levels, default=[1, 8, 32])
    add("--rate-seconds", type=float, default=10.0, help="seconds per persona and concurrency")
    add("--wait-alone", type=int, default=20, help="tenant B's chats before the large ones")
    add("--wait-refused-chars", type=int, default=2_000_000, help="a message over the limit")
    add(
        "--wait-chars",
        type=int,
        default=int(os.environ.get("MEM8_MAX_MESSAGE_CHARS", defaults.max_message_chars)),
        help="the large message (default: the largest allowed, MEM8_MAX_MESSAGE_CHARS)",
    )
    add("--wait-upload-bytes", type=int, default=5_000_000)
    add(
        "--wait-timeout",
        type=float,
        default=240.0,
        help="seconds for the large message and the upload, and again for processing",
    )
    return parser.parse_args(argv)


PART_RUNNERS: dict[str, Callable[[Setup, argparse.Namespace, Report], None]] = {
    "crash": crash_part,
    "burst": burst_part,
    "streams": streams_part,
    "rate": rate_part,
    "wait": wait_part,
}


def run_parts(options: argparse.Namespace, report: Report) -> list[str]:
    """Runs the chosen parts in order; returns the parts that could not run."""
    failed: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="mem8-reliability-") as scratch,
        instant_upstream() as upstream,
    ):
        for part in options.only:
            setup = make_setup(Path(scratch), part, upstream, options)
            began = time.perf_counter()
            try:
                PART_RUNNERS[part](setup, options, report)
            except ServerDown as error:
                print(f"{part}: the server did not come up: {error}", file=sys.stderr)
                failed.append(part)
            report.add(part, "part_s", time.perf_counter() - began)
    return failed


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    report = Report(sys.stderr if options.json else sys.stdout)
    report.add("setup", "encoder", options.encoder)
    report.add("setup", "parts", ",".join(options.only))
    report.add("setup", "load_average_before", load_average())
    try:
        failed = run_parts(options, report)
    except KeyboardInterrupt:  # every process is killed and the files removed by now
        print("interrupted", file=sys.stderr)
        return 130
    report.add("setup", "load_average_after", load_average())
    if options.json:
        print(json.dumps(report.parts, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
