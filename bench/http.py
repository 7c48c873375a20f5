"""HTTP benchmark: chat completions through the full actor path vs a bare Quart-Trio route.

One server process (the real system: actors, journal on, ScriptedLLM as an instant backend)
serves both /v1/chat/completions and a bare route on the same app and hypercorn; this process
is the load generator. Targets: mem8 throughput at least 50% of the bare route's, p50 added
latency under 1 ms. Exits 1 if any response was not the expected 200, else 0 (met or not)."""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from urllib.parse import urlsplit

import trio
from hypercorn.trio import serve as hypercorn_serve
from quart import Response, request
from quart_trio import QuartTrio

from bench._load import Problems, Run, Target, closed_loop, sequential
from mem8.backends.fake import ScriptedLLM
from mem8.config import Settings
from mem8.grid.threads import configure_threads
from mem8.http.app import create_app
from mem8.server import hypercorn_config
from mem8.system import open_system

PERSONA = "mem8-technical-v1"
PROMPT = "Name three prime numbers."
REPLY = f"echo: {PROMPT}"  # what ScriptedLLM answers with nothing queued: fixed length
REQUEST_BODY = json.dumps(
    {"model": PERSONA, "messages": [{"role": "user", "content": PROMPT}]}
).encode()
ROUTES = {"bare": "/bare/chat/completions", "mem8": "/v1/chat/completions"}
TARGET_RATIO = 0.5  # mem8 throughput / bare throughput, at least
TARGET_ADDED_P50_MS = 1.0  # mem8 p50 - bare p50, under


# --- the server (child process) -------------------------------------------------------------


def _serve_child(pipe: Connection, storage: str) -> None:
    trio.run(_serve, pipe, storage)


async def _serve(pipe: Connection, storage: str) -> None:
    """The real system and app plus the bare route, until the parent says stop."""
    settings = Settings(storage=storage, port=0)
    backends = {pid: ScriptedLLM() for pid in settings.personas}
    async with open_system(settings, backends=backends) as system:
        app = create_app(system)
        _add_bare_route(app)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            config = hypercorn_config(settings)
            binds = await nursery.start(
                partial(hypercorn_serve, app, config, shutdown_trigger=stop.wait)
            )
            pipe.send(binds[0])
            with suppress(EOFError):
                await trio.to_thread.run_sync(pipe.recv)
            stop.set()


def _add_bare_route(app: QuartTrio) -> None:
    app.add_url_rule(
        "/bare/chat/completions", "bare_chat_completions", _bare_completion, methods=["POST"]
    )


async def _bare_completion() -> Response:
    """Parses the body and answers a chat.completion shaped like mem8's, with no actors."""
    body = json.loads(await request.get_data())
    payload = {
        "id": "chatcmpl-" + "0" * 24,
        "object": "chat.completion",
        "created": math.floor(time.time()),
        "model": body["model"],
        "system_fingerprint": "mem8-scripted",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": REPLY, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
    }
    return Response(json.dumps(payload), content_type="application/json")


@dataclass
class ServerProcess:
    process: BaseProcess
    pipe: Connection
    target: Target

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_server(storage: Path) -> Iterator[ServerProcess]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_child, args=(child, str(storage)), name="mem8-bench")
    process.start()
    try:
        url = urlsplit(_bound_url(process, parent))
        yield ServerProcess(process, parent, Target(url.hostname or "", url.port or 0))
    finally:
        _stop(process, parent)


def _bound_url(process: BaseProcess, pipe: Connection) -> str:
    """Waits for the server to report where it listens; fails fast if it died instead."""
    deadline = time.monotonic() + 60
    while not pipe.poll(0.2):
        if not process.is_alive():
            raise RuntimeError(f"the benchmark server exited with code {process.exitcode}")
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark server did not start within 60 s")
    return str(pipe.recv())


def _stop(process: BaseProcess, pipe: Connection) -> None:
    with suppress(OSError):
        pipe.send("stop")
    process.join(30)
    if process.is_alive():
        process.kill()
        process.join()
        print("warning: the server did not stop within 30 s and was killed", file=sys.stderr)
    elif process.exitcode != 0:
        print(f"warning: the server exited with code {process.exitcode}", file=sys.stderr)


# --- the load (this process) ----------------------------------------------------------------


def check_completion(raw: bytes) -> str | None:
    """What is wrong with a 200's body, or None if it is the expected chat.completion."""
    try:
        payload = json.loads(raw)
        content = payload["choices"][0]["message"]["content"]
        kind, model = payload["object"], payload["model"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a chat.completion: {raw[:160]!r}"
    if kind != "chat.completion" or model != PERSONA or content != REPLY:
        return f"unexpected completion: {raw[:160]!r}"
    return None


@dataclass
class Sample:
    """One route in one round: latency quantiles, rate, and the server's CPU per request."""

    p50_ms: float
    p99_ms: float
    rate: float
    server_cpu_us: float
    server_busy: float
    client_busy: float


@dataclass
class Phase:
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {r: [] for r in ROUTES})
    problems: Problems = field(default_factory=Problems)
    responses: int = 0
    reconnects: int = 0

    def median(self, route: str, pick: Callable[[Sample], float]) -> float:
        return statistics.median(pick(s) for s in self.samples[route])

    def per_round(self, pick: Callable[[Sample], float]) -> list[tuple[float, float]]:
        return list(
            zip(map(pick, self.samples["bare"]), map(pick, self.samples["mem8"]), strict=True)
        )


def measure(
    server: ServerProcess, load: Callable[[Target, bytes], Run], path: str
) -> tuple[Run, float]:
    """Runs load against path; also returns the server's CPU seconds while it ran."""
    request = server.target.post(path, REQUEST_BODY)
    gc.collect()
    cpu = server.cpu_seconds()
    run = load(server.target, request)
    return run, server.cpu_seconds() - cpu


def sample(run: Run, server_cpu: float) -> Sample:
    latencies = run.latencies_ns
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Sample(
        p50_ms=cuts[49] / 1e6,
        p99_ms=cuts[98] / 1e6,
        rate=run.rate,
        server_cpu_us=server_cpu / max(run.completed, 1) * 1e6,
        server_busy=server_cpu / run.seconds if run.seconds else 0.0,
        client_busy=run.client_cpu,
    )


def run_phase(
    server: ServerProcess, rounds: int, load: Callable[[Target, bytes], Run], name: str
) -> Phase:
    """Alternates the routes (and which goes first) round by round."""
    phase = Phase()
    for number in range(rounds):
        print(f"  {name} round {number + 1}/{rounds}", file=sys.stderr, flush=True)
        order = list(ROUTES) if number % 2 == 0 else list(reversed(ROUTES))
        for route in order:
            run, server_cpu = measure(server, load, ROUTES[route])
            phase.samples[route].append(sample(run, server_cpu))
            phase.problems.merge(run.problems)
            phase.responses += run.completed
            phase.reconnects += run.reconnects
    return phase


def warm_up(server: ServerProcess, options: argparse.Namespace) -> Problems:
    problems = Problems()
    for path in ROUTES.values():
        request = server.target.post(path, REQUEST_BODY)
        problems.merge(
            sequential(server.target, request, options.warmup, check_completion).problems
        )
        run = closed_loop(server.target, request, options.connections, 0.5, check_completion)
        problems.merge(run.problems)
    return problems


# --- the report -----------------------------------------------------------------------------


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def print_latency(phase: Phase, options: argparse.Namespace) -> None:
    print(f"\nlatency: 1 connection, {options.requests} sequential requests per route per round")
    print(
        f"{'round':>5}  {'bare p50':>9} {'mem8 p50':>9} {'added':>8}   "
        f"{'bare p99':>9} {'mem8 p99':>9} {'added':>8}   {'cpu/req bare':>12} {'mem8':>7}"
    )
    rows = zip(
        phase.per_round(lambda s: s.p50_ms),
        phase.per_round(lambda s: s.p99_ms),
        phase.per_round(lambda s: s.server_cpu_us),
        strict=True,
    )
    for number, ((b50, m50), (b99, m99), (bcpu, mcpu)) in enumerate(rows, 1):
        print(
            f"{number:>5}  {b50:>7.3f}ms {m50:>7.3f}ms {m50 - b50:>+6.3f}ms   "
            f"{b99:>7.3f}ms {m99:>7.3f}ms {m99 - b99:>+6.3f}ms   {bcpu:>10.0f}us {mcpu:>5.0f}us"
        )


def print_throughput(phase: Phase, options: argparse.Namespace) -> None:
    print(
        f"\nthroughput: {options.connections} keep-alive connections, "
        f"{options.seconds:g} s per route per round"
    )
    print(
        f"{'round':>5}  {'bare req/s':>10} {'mem8 req/s':>10} {'ratio':>6}   "
        f"{'cpu/req bare':>12} {'mem8':>7}   {'server cpu bare/mem8':>20} "
        f"{'client cpu bare/mem8':>20}"
    )
    rows = zip(
        phase.per_round(lambda s: s.rate),
        phase.per_round(lambda s: s.server_cpu_us),
        phase.per_round(lambda s: s.server_busy),
        phase.per_round(lambda s: s.client_busy),
        strict=True,
    )
    for number, ((bare, mem8), (bcpu, mcpu), (bsrv, msrv), (bcli, mcli)) in enumerate(rows, 1):
        print(
            f"{number:>5}  {bare:>10.0f} {mem8:>10.0f} {mem8 / bare:>6.2f}   "
            f"{bcpu:>10.0f}us {mcpu:>5.0f}us   {bsrv:>14.0%} {msrv:>5.0%} "
            f"{bcli:>14.0%} {mcli:>5.0%}"
        )


def print_summary(latency: Phase, throughput: Phase) -> bool:
    """The medians over rounds against the targets; True if both targets are met."""
    print("\nsummary (medians over rounds)")
    print(f"{'':36} {'bare':>9} {'mem8':>9}   {'mem8 vs bare':>13}   {'target':>9}  result")
    fast = _summarize_latency(latency)
    enough = _summarize_throughput(throughput)
    for name, phase in (("sequential", latency), ("loaded", throughput)):
        print(
            f"{f'server CPU/request, {name} (us)':36} "
            f"{phase.median('bare', lambda s: s.server_cpu_us):>9.0f} "
            f"{phase.median('mem8', lambda s: s.server_cpu_us):>9.0f}"
        )
    return fast and enough


def _summarize_latency(latency: Phase) -> bool:
    added50 = statistics.median(m - b for b, m in latency.per_round(lambda s: s.p50_ms))
    added99 = statistics.median(m - b for b, m in latency.per_round(lambda s: s.p99_ms))
    met = added50 < TARGET_ADDED_P50_MS
    print(
        f"{'latency p50 (ms)':36} {latency.median('bare', lambda s: s.p50_ms):>9.3f} "
        f"{latency.median('mem8', lambda s: s.p50_ms):>9.3f}   {added50:>+10.3f} ms   "
        f"{f'< +{TARGET_ADDED_P50_MS:g} ms':>9}  {verdict(met)}"
    )
    print(
        f"{'latency p99 (ms)':36} {latency.median('bare', lambda s: s.p99_ms):>9.3f} "
        f"{latency.median('mem8', lambda s: s.p99_ms):>9.3f}   {added99:>+10.3f} ms"
    )
    return met


def _summarize_throughput(throughput: Phase) -> bool:
    ratios = [m / b for b, m in throughput.per_round(lambda s: s.rate)]
    ratio = statistics.median(ratios)
    bare_rate = throughput.median("bare", lambda s: s.rate)
    mem8_rate = throughput.median("mem8", lambda s: s.rate)
    bare_cpu = throughput.median("bare", lambda s: s.server_cpu_us)
    mem8_cpu = throughput.median("mem8", lambda s: s.server_cpu_us)
    met = ratio >= TARGET_RATIO
    print(
        f"{'throughput (req/s), ratio':36} {bare_rate:>9.0f} {mem8_rate:>9.0f}   "
        f"{ratio:>13.2f}   {f'>= {TARGET_RATIO:.2f}':>9}  {verdict(met)}"
    )
    print(f"{'  ratio of medians':36} {'':>9} {'':>9}   {mem8_rate / bare_rate:>13.2f}")
    spread = f"{min(ratios):.2f} to {max(ratios):.2f}"
    print(f"{'  per-round ratios':36} {'':>9} {'':>9}   {spread:>13}")
    print(f"{'  ratio from CPU/request':36} {'':>9} {'':>9}   {bare_cpu / mem8_cpu:>13.2f}")
    return met


def print_problems(phases: dict[str, Problems], responses: int) -> int:
    total = sum(p.total for p in phases.values())
    print(f"\nerrors: {total} of {responses} responses were not a 200 with the expected body")
    for name, problems in phases.items():
        for problem, count in problems.counts.most_common(10):
            print(f"  {name}: {count} x {problem}")
    return total


# --- main -----------------------------------------------------------------------------------


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per phase")
    parser.add_argument(
        "--requests", type=int, default=1000, help="sequential requests per route per round"
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="throughput seconds per route per round"
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="concurrent connections for throughput"
    )
    parser.add_argument("--warmup", type=int, default=300, help="warm-up requests per route")
    options = parser.parse_args(argv)
    if min(options.rounds, options.requests, options.connections) < 1 or options.seconds <= 0:
        parser.error("--rounds, --requests, --connections and --seconds must be positive")
    return options


@dataclass
class Results:
    warm_up: Problems
    latency: Phase
    throughput: Phase


def benchmark(server: ServerProcess, options: argparse.Namespace) -> Results:
    print(
        f"mem8 HTTP benchmark: server pid {server.process.pid} on "
        f"{server.target.host}:{server.target.port}, ScriptedLLM backend, journal on, "
        f"{options.rounds} rounds",
        flush=True,
    )
    warm = warm_up(server, options)
    gc.disable()  # no collector pauses in the client's timings
    try:
        seq = partial(sequential, count=options.requests, check=check_completion)
        latency = run_phase(server, options.rounds, seq, "latency")
        load = partial(
            closed_loop,
            connections=options.connections,
            seconds=options.seconds,
            check=check_completion,
        )
        throughput = run_phase(server, options.rounds, load, "throughput")
    finally:
        gc.enable()
    return Results(warm, latency, throughput)


def report(results: Results, options: argparse.Namespace, seconds: float) -> int:
    """Prints the tables; the exit status is 1 if any response was an error."""
    latency, throughput = results.latency, results.throughput
    print_latency(latency, options)
    print_throughput(throughput, options)
    met = print_summary(latency, throughput)
    phases = {"warm-up": results.warm_up, "latency": latency.problems}
    phases["throughput"] = throughput.problems
    errors = print_problems(phases, latency.responses + throughput.responses)
    reconnects = latency.reconnects + throughput.reconnects
    print(f"reconnects (keep_alive_max_requests): {reconnects}; total time {seconds:.0f} s")
    if errors:
        print("RESULT INVALID: some responses were errors", file=sys.stderr)
        return 1
    print("all targets met" if met else "some targets missed")
    return 0


def main(argv: list[str] | None = None) -> int:
    configure_threads()
    options = parse_options(argv)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="mem8-bench-") as scratch,
        running_server(Path(scratch) / "bench.db") as server,
    ):
        results = benchmark(server, options)
    return report(results, options, time.perf_counter() - started)


if __name__ == "__main__":
    sys.exit(main())
