"""Persona turns per second of `mem8 sim`, and what a turn costs mem8 itself as memories grow.

Run: ./scripts/manage.sh bench sim [--sizes 3:1000,10:10000,100:2000] [--encoder-turns 40]
     [--threshold 0.0] [--json]

Each size (personas:turns) is a generated scenario driven through mem8.sim.runner.Run, as
`mem8 sim run` drives one: many conversations (4 turns each) between random pairs of personas,
seeded, with the instant scripted backend and the lexical encoder (no model), so what is
measured is mem8's own work on a turn: perceiving, judging interest, recalling, building the
prompt, passing the reply's tokens through the actors, imprinting into the grid, storing in
SQLite and journaling. The backend is wrapped to time its generate; the rest of a turn is
mem8's. Every persona remembers every turn (--threshold 0: memories grow fastest, the worst
case), two memories a turn. Each size runs in a process of its own, so its peak RSS is its own.

The encoder a server uses by default (all-mpnet-base-v2) costs far more than the rest: its cost
per turn is measured apart, on a small run (--encoder-turns) with it against the same run with
the lexical encoder.

Issue 13's targets: mem8's own cost per turn under 2 ms at 10 personas holding 10k memories;
100 personas without running out of memory. The anchor: Smallville (Park et al. 2023) took 13
hours for 3,665 steps of its 25 agents.

--runtime ray [--scenarios A.toml,B.toml] [--repeat 2] [--rounds 3] [--workers 1,2]: whole
scenarios per minute (the shipped ones in sims/, each `--repeat` times a batch, as a sweep runs
them: `mem8.sim.sweep.run_job`, into directories of their own) on a local Ray cluster of 1 and 2
workers (`mem8.sim.cluster`, the sweep's own), against the same batch run one scenario after
another in this process, in the same round. Every runner is warm (it ran one scenario per
worker first: imports, numba's cache, the encoder); a cluster's start and warm-up is reported
apart. Medians over the rounds; a ratio is the round's Ray rate over its in-process rate."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import random
import resource
import statistics
import tempfile
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import trio

from mem8.backends.base import Generated, GenerationRequest, LLMBackend, TokenCounter
from mem8.backends.fake import ScriptedLLM
from mem8.clock import VirtualClock
from mem8.config import Settings, load_settings
from mem8.grid.threads import configure_threads
from mem8.personas import Persona, Traits
from mem8.sim.commands import sim_settings
from mem8.sim.runner import Outcomes, Run
from mem8.sim.scenario import Event, Scenario, Talk, load
from mem8.sim.sweep import Finished, Job, Place, run_job

START = 1_704_067_200.0  # 2024-01-01 00:00 UTC
STEP = 600.0  # a conversation every 10 virtual minutes
TURNS_PER_TALK = 4
SCRIPT_LINES = 40  # lines each persona's scripted backend says in turn
BUCKETS = (0, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000)
SMALLVILLE_STEPS, SMALLVILLE_HOURS, SMALLVILLE_AGENTS = 3_665, 13.0, 25
SHIPPED = Path(__file__).resolve().parents[1] / "sims"  # the scenarios --runtime ray runs
TARGET_MS, TARGET_PERSONAS, TARGET_MEMORIES = 2.0, 10, 10_000

_PEOPLE = ("Ada", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Juno", "Kai", "Lin")
_PLACES = ("harbour", "library", "market", "station", "garden", "bakery", "museum", "river")
_TOPICS = (
    "the new bridge", "a broken bicycle", "the winter festival", "their sister's wedding",
    "a job offer in Lisbon", "the quarterly budget", "a strange noise at night", "the election",
    "learning the cello", "a lost passport", "the price of bread", "a chess tournament",
)  # fmt: skip
_FEELINGS = ("glad", "worried", "furious", "calm", "excited", "tired", "curious", "sad")


def sentence(draw: random.Random) -> str:
    """A varied line of small talk, so memories differ as a conversation's would."""
    return (
        f"I saw {draw.choice(_PEOPLE)} at the {draw.choice(_PLACES)} on day "
        f"{draw.randint(1, 365)} and we talked about {draw.choice(_TOPICS)}; "
        f"I am {draw.choice(_FEELINGS)} about it."
    )


def scenario(personas: int, turns: int, threshold: float, seed: int, encoder: str) -> Scenario:
    """Conversations of TURNS_PER_TALK turns between random pairs, one every STEP."""
    draw = random.Random(seed)
    cast = {
        f"p{i:03d}": Persona(
            id=f"p{i:03d}",
            name=f"Persona {i}",
            traits=Traits(*(round(draw.random(), 2) for _ in range(5))),
            model="scripted",
            temperature=0.7,
            system_prompt="You are a resident of a small town.",
            interest_threshold=threshold,
        )
        for i in range(personas)
    }
    ids = sorted(cast)
    talks = -(-turns // TURNS_PER_TALK)
    events = []
    for n in range(talks):
        first, second = draw.sample(ids, 2)
        talk = Talk(first, second, sentence(draw), min(TURNS_PER_TALK, turns - n * TURNS_PER_TALK))
        events.append(Event(START + n * STEP, n, talk, f"conversation[{n}]"))
    script = {pid: tuple(sentence(draw) for _ in range(SCRIPT_LINES)) for pid in ids}
    digest = hashlib.sha256(f"bench-sim:{personas}:{turns}:{threshold}:{seed}".encode())
    return Scenario(
        path=Path("bench-sim.toml"),
        name=f"bench-{personas}x{turns}",
        seed=seed,
        start=START,
        step=STEP,
        steps=talks + 1,
        backend="scripted",
        encoder=encoder,
        tiles=Settings().grid_tiles,
        personas=cast,
        events=events,
        script=script,
        digest=digest.hexdigest(),
    )


@dataclass
class Stopwatch:
    """Seconds spent inside the backends' generate, all personas together."""

    seconds: float = 0.0


class TimedLLM(LLMBackend):
    """The scripted backend, its generate timed; the history it keeps is dropped after each
    reply, so a long run's RSS is mem8's, not the test double's."""

    name: ClassVar[str] = "timed-scripted"

    def __init__(self, inner: ScriptedLLM, watch: Stopwatch) -> None:
        self.inner = inner
        self.watch = watch

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        started = time.perf_counter()
        async for item in self.inner.generate(request):
            self.watch.seconds += time.perf_counter() - started
            yield item  # the time the caller spends before asking for more is not the backend's
            started = time.perf_counter()
        self.watch.seconds += time.perf_counter() - started
        self.inner.history.clear()

    def counter(self, model: str) -> TokenCounter:
        return self.inner.counter(model)

    async def context_window(self, model: str, configured: int | None) -> int:
        return await self.inner.context_window(model, configured)


class Span(NamedTuple):
    """One conversation of a run."""

    held: int  # memories held by every persona together when it began
    turns: int
    wall: float  # seconds
    backend: float  # seconds inside the backends' generate
    cpu: float  # CPU seconds of the whole process (every thread): robust to a loaded machine


@dataclass
class Meter:
    """The run's progress, one conversation at a time."""

    watch: Stopwatch
    spans: list[Span] = field(default_factory=list)
    held: dict[str, int] = field(default_factory=dict)
    seen: int = 0
    last: float = field(default_factory=time.perf_counter)
    last_cpu: float = field(default_factory=time.process_time)
    backend: float = 0.0

    def __call__(self, at: float, step: int, outcomes: Outcomes) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        new = outcomes.lines[self.seen :]
        before = sum(self.held.values())
        for line in new:
            if line.memories is not None:
                self.held[line.listener] = line.memories
        turns = sum(line.kind == "chat" for line in new)
        if turns:
            backend = self.watch.seconds - self.backend
            self.spans.append(Span(before, turns, now - self.last, backend, cpu - self.last_cpu))
        self.seen, self.last, self.last_cpu = len(outcomes.lines), now, cpu
        self.backend = self.watch.seconds


def measure(personas: int, turns: int, threshold: float, seed: int, encoder: str) -> dict[str, Any]:
    """One size, in this process: its figures (run it in a fresh process for its own RSS)."""
    configure_threads()
    plan = scenario(personas, turns, threshold, seed, encoder)
    watch = Stopwatch()
    with tempfile.TemporaryDirectory(prefix="mem8-bench-sim-") as scratch:
        out = Path(scratch)
        settings = sim_settings(Settings(), plan, out, "scripted")
        backends: dict[str, LLMBackend] = {
            pid: TimedLLM(ScriptedLLM(cycle=plan.script[pid]), watch) for pid in plan.personas
        }
        meter = Meter(watch)
        run = Run(plan, out, backends, VirtualClock(plan.start), settings, progress=meter)
        run.samples, run.fields = 0, 1  # only the turns: no memory census between them
        started = time.perf_counter()
        outcomes = trio.run(run.__call__)
        total = time.perf_counter() - started
    return _figures(plan, outcomes, meter, total, encoder)


def _figures(
    plan: Scenario, outcomes: Outcomes, meter: Meter, total: float, encoder: str
) -> dict[str, Any]:
    steady = meter.spans[1:] or meter.spans  # the first conversation also starts the system
    turns, wall, backend, cpu = _sums(steady)
    return {
        "personas": len(plan.personas),
        "turns": sum(s.turns for s in meter.spans),
        "encoder": encoder,
        "seconds": total,
        "start_seconds": meter.spans[0].wall if meter.spans else 0.0,
        "turns_per_second": turns / wall if wall else 0.0,
        "ms_per_turn": 1e3 * wall / turns if turns else 0.0,
        "mem8_ms_per_turn": 1e3 * (wall - backend) / turns if turns else 0.0,
        "mem8_cpu_ms_per_turn": 1e3 * (cpu - backend) / turns if turns else 0.0,
        "backend_ms_per_turn": 1e3 * backend / turns if turns else 0.0,
        "mem8_share": (wall - backend) / wall if wall else 0.0,
        "memories": sum(meter.held.values()),
        "remembered": sum(bool(x.conscious) for x in outcomes.lines if x.kind == "chat"),
        "buckets": _buckets(steady, len(plan.personas)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_mb": _rss_mb(),
    }


def _sums(spans: list[Span]) -> tuple[int, float, float, float]:
    """Turns, wall seconds, backend seconds and CPU seconds of the spans together."""
    return (
        sum(s.turns for s in spans),
        sum(s.wall for s in spans),
        sum(s.backend for s in spans),
        sum(s.cpu for s in spans),
    )


def _buckets(spans: list[Span], personas: int) -> list[dict[str, Any]]:
    """Time per turn by the memories held (all personas together) when the turn began."""
    found = []
    for low, high in itertools.pairwise(BUCKETS):
        turns, wall, backend, cpu = _sums([s for s in spans if low <= s.held < high])
        if turns:
            found.append(
                {
                    "memories": [low, high],
                    "per_persona": [low / personas, high / personas],
                    "turns": turns,
                    "ms_per_turn": 1e3 * wall / turns,
                    "mem8_ms_per_turn": 1e3 * (wall - backend) / turns,
                    "mem8_cpu_ms_per_turn": 1e3 * (cpu - backend) / turns,
                }
            )
    return found


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def apart(job: Callable[..., dict[str, Any]], *arguments: Any) -> dict[str, Any]:
    """The job's figures, measured in a fresh process (spawned: this one may hold threads)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(job, *arguments).result()


def encoder_cost(turns: int, seed: int) -> dict[str, Any]:
    """The default encoder's cost per turn: a small run with it against one with lexical."""
    name = Settings().encoder
    try:
        with_model = apart(measure, 3, turns, 0.0, seed, name)
    except Exception as error:  # the model may not be installed here; say so, go on
        return {"encoder": name, "error": f"{type(error).__name__}: {error}"}
    without = apart(measure, 3, turns, 0.0, seed, "lexical")
    return {
        "encoder": name,
        "turns": turns,
        "ms_per_turn": with_model["ms_per_turn"],
        "lexical_ms_per_turn": without["ms_per_turn"],
        "encoder_ms_per_turn": with_model["ms_per_turn"] - without["ms_per_turn"],
    }


# --- the report ---


def report(results: list[dict[str, Any]], encoding: dict[str, Any] | None) -> None:
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    print("mem8 ms: a turn's wall time outside the backend; cpu ms: its CPU time (every thread)")
    print(
        f"{'personas':>8} {'turns':>6} {'turns/s':>8} {'ms/turn':>8} {'mem8 ms':>8} "
        f"{'cpu ms':>7} {'backend':>8} {'mem8 %':>7} {'memories':>9} {'peak RSS':>9} "
        f"{'start s':>8}"
    )
    for r in results:
        print(
            f"{r['personas']:>8} {r['turns']:>6} {r['turns_per_second']:>8.0f} "
            f"{r['ms_per_turn']:>8.2f} {r['mem8_ms_per_turn']:>8.2f} "
            f"{r['mem8_cpu_ms_per_turn']:>7.2f} {r['backend_ms_per_turn']:>8.3f} "
            f"{100 * r['mem8_share']:>6.1f}% {r['memories']:>9} {r['peak_rss_mb']:>7.0f}MB "
            f"{r['start_seconds']:>8.2f}"
        )
    for r in results:
        print(f"\n{r['personas']} personas: mem8's cost of a turn by the memories held then")
        for b in r["buckets"]:
            low, high = b["memories"]
            per = b["per_persona"]
            print(
                f"  {low:>6}..{high:<6} ({per[0]:.0f}..{per[1]:.0f} a persona) "
                f"{b['turns']:>6} turns {b['mem8_ms_per_turn']:>7.2f} ms, "
                f"cpu {b['mem8_cpu_ms_per_turn']:.2f} ms"
            )
    print()
    _verdicts(results)
    if encoding is not None:
        _encoding(encoding)


def _verdicts(results: list[dict[str, Any]]) -> None:
    at_target = [
        b
        for r in results
        if r["personas"] == TARGET_PERSONAS
        for b in r["buckets"]
        if b["memories"][0] >= TARGET_MEMORIES
    ]
    if at_target:
        wall = max(b["mem8_ms_per_turn"] for b in at_target)
        cpu = max(b["mem8_cpu_ms_per_turn"] for b in at_target)
        verdict = "MET" if wall < TARGET_MS else "MISSED"
        print(
            f"target: mem8's own cost under {TARGET_MS:g} ms a turn at {TARGET_PERSONAS} personas "
            f"holding {TARGET_MEMORIES:,}+ memories: {wall:.2f} ms ({cpu:.2f} ms of CPU), "
            f"{verdict}"
        )
    else:
        print(
            f"target ({TARGET_PERSONAS} personas holding {TARGET_MEMORIES:,} memories) not "
            f"reached by these sizes: run --sizes {TARGET_PERSONAS}:{TARGET_MEMORIES}"
        )
    crowd = [r for r in results if r["personas"] >= 100]
    for r in crowd:
        print(
            f"{r['personas']} personas, {r['memories']:,} memories: peak RSS "
            f"{r['peak_rss_mb']:.0f} MB ({r['rss_mb']:.0f} MB at the end)"
        )
    seconds_per_step = SMALLVILLE_HOURS * 3600 / SMALLVILLE_STEPS
    agent_steps = SMALLVILLE_STEPS * SMALLVILLE_AGENTS
    fastest = min((r["mem8_ms_per_turn"] for r in results), default=0.0)
    slowest = max((r["mem8_ms_per_turn"] for r in results), default=0.0)
    print(
        f"anchor: Smallville took {SMALLVILLE_HOURS:g} hours for {SMALLVILLE_STEPS:,} steps "
        f"({seconds_per_step:.1f} s a step, {agent_steps:,} agent-steps of its "
        f"{SMALLVILLE_AGENTS} agents, nearly all of it LLM calls); a persona turn here costs "
        f"mem8 {fastest:.2f} to {slowest:.2f} ms, so {agent_steps:,} turns would take "
        f"{agent_steps * fastest / 1e3 / 60:.1f} to {agent_steps * slowest / 1e3 / 60:.1f} "
        "minutes of mem8's own work"
    )


def _encoding(encoding: dict[str, Any]) -> None:
    if "error" in encoding:
        print(f"encoder {encoding['encoder']}: not measured ({encoding['error']})")
        return
    print(
        f"encoder {encoding['encoder']} (3 personas, {encoding['turns']} turns): "
        f"{encoding['ms_per_turn']:.1f} ms a turn against {encoding['lexical_ms_per_turn']:.2f} "
        f"with the lexical encoder: the encoder costs {encoding['encoder_ms_per_turn']:.1f} ms "
        "a turn (a query and two memories encoded)"
    )


# --- whole scenarios per minute, on Ray workers and in this process ---


def in_this_process(todo: Sequence[Job]) -> Finished:
    """The baseline: one run after another, here."""
    for i, job in enumerate(todo):
        yield i, run_job(job)


def batch(place: Place, plans: Sequence[Job]) -> float:
    """Seconds the runner takes for the jobs, each into a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="mem8-bench-sim-ray-") as scratch:
        todo = [
            Job(job.scenario, job.values, job.seed, Path(scratch) / f"{n:03d}", job.backend)
            for n, job in enumerate(plans)
        ]
        started = time.perf_counter()
        for _ in place(todo):
            pass
        return time.perf_counter() - started


def scenario_rates(
    paths: Sequence[Path], repeat: int, rounds: int, workers: Sequence[int]
) -> dict[str, Any]:
    """Per round the batch's scenarios per minute in this process and on each cluster size;
    a cluster's seconds to start and warm up."""
    from mem8.sim.cluster import on_ray  # Ray only in this mode

    base = load_settings()
    plans = []
    for path in paths:
        plan = load(path, base)
        plans.append(Job(path.resolve(), {}, plan.seed, Path(), plan.backend))
    todo = plans * repeat
    batch(in_this_process, plans[:1])  # warm: imports, numba's cache, the encoder
    found: list[dict[str, Any]] = []
    for _ in range(rounds):
        here = batch(in_this_process, todo)
        row: dict[str, Any] = {"in_process": 60 * len(todo) / here, "ray": {}, "start": {}}
        for n in workers:
            started = time.perf_counter()
            with on_ray(None, n) as place:
                batch(place, plans[:1] * n)  # a scenario on each worker at once: all warm
                row["start"][n] = time.perf_counter() - started
                row["ray"][n] = 60 * len(todo) / batch(place, todo)
        found.append(row)
    return {
        "scenarios": [path.stem for path in paths],
        "batch": len(todo),
        "rounds": found,
        "median": _medians(found, workers),
    }


def _medians(rounds: Sequence[dict[str, Any]], workers: Sequence[int]) -> dict[str, Any]:
    def spread(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {
        "in_process": spread([r["in_process"] for r in rounds]),
        "ray": {n: spread([r["ray"][n] for r in rounds]) for n in workers},
        "ratio": {
            n: statistics.median(r["ray"][n] / r["in_process"] for r in rounds) for n in workers
        },
        "start": {n: statistics.median(r["start"][n] for r in rounds) for n in workers},
    }


def report_rates(found: dict[str, Any]) -> None:
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    print(
        f"scenarios {', '.join(found['scenarios'])}: a batch of {found['batch']} runs (whole "
        "runs, as a sweep runs them), every runner warm"
    )
    workers = list(found["median"]["ray"])
    names = ["in-process", *(f"ray {n} worker{'s' * (n > 1)}" for n in workers)]
    print(f"{'round':>5}  " + " ".join(f"{name:>15}" for name in names) + "  (scenarios/min)")
    for i, r in enumerate(found["rounds"], 1):
        rates = [r["in_process"], *(r["ray"][n] for n in workers)]
        print(f"{i:>5}  " + " ".join(f"{rate:>15.1f}" for rate in rates))
    median = found["median"]
    print(f"\nsummary (medians over {len(found['rounds'])} rounds)")
    print(
        f"{'runner':16} {'scenarios/min':>13} {'least..most':>15} {'vs in-process':>14} "
        f"{'start s':>8}"
    )
    here = median["in_process"]
    print(f"{'in-process':16} {here['median']:>13.1f} {_range(here):>15} {1.0:>13.2f}x {'-':>8}")
    for name, n in zip(names[1:], workers, strict=True):
        rate = median["ray"][n]
        print(
            f"{name:16} {rate['median']:>13.1f} {_range(rate):>15} "
            f"{median['ratio'][n]:>13.2f}x {median['start'][n]:>8.1f}"
        )
    print("start s: ray.init of a local cluster and its warm-up run, before the batch")


def _range(spread: dict[str, float]) -> str:
    return f"{spread['min']:.1f}..{spread['max']:.1f}"


def _numbers(text: str) -> list[int]:
    found = [int(x) for x in text.split(",")]
    if any(n < 1 for n in found):
        raise argparse.ArgumentTypeError(f"{text}: each at least 1")
    return found


def _paths(text: str) -> list[Path]:
    return [Path(x) for x in text.split(",")]


def sizes(text: str) -> list[tuple[int, int]]:
    """'3:1000,10:10000': (personas, turns) pairs, at least 2 personas each."""
    found = []
    for part in text.split(","):
        personas, turns = (int(x) for x in part.split(":"))
        if personas < 2 or turns < 1:
            raise argparse.ArgumentTypeError(f"{part}: at least 2 personas and 1 turn")
        found.append((personas, turns))
    return found


def main(argv: list[str] | None = None) -> None:
    configure_threads()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=sizes, default=sizes("3:1000,10:10000,100:2000"))
    parser.add_argument("--threshold", type=float, default=0.0, help="interest threshold")
    parser.add_argument("--encoder-turns", type=int, default=40, help="0: skip the encoder")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    parser.add_argument(
        "--runtime",
        choices=("local", "ray"),
        default="local",
        help="ray: whole scenarios per minute on Ray workers against this process",
    )
    parser.add_argument("--scenarios", type=_paths, default=sorted(SHIPPED.glob("*.toml")))
    parser.add_argument("--repeat", type=int, default=2, help="each scenario's runs in a batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=_numbers, default=[1, 2], help="cluster sizes: 1,2")
    arguments = parser.parse_args(argv)
    if arguments.runtime == "ray":
        found = scenario_rates(
            arguments.scenarios, arguments.repeat, arguments.rounds, arguments.workers
        )
        if arguments.json:
            print(json.dumps(found, indent=2))
        else:
            report_rates(found)
        return
    results = [
        apart(measure, personas, turns, arguments.threshold, arguments.seed, "lexical")
        for personas, turns in arguments.sizes
    ]
    encoding = (
        encoder_cost(arguments.encoder_turns, arguments.seed) if arguments.encoder_turns else None
    )
    if arguments.json:
        print(json.dumps({"sizes": results, "encoder": encoding}, indent=2))
    else:
        report(results, encoding)


if __name__ == "__main__":
    main()
