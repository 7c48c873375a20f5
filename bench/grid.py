"""Grid kernel benchmark: the wave step against numpy and memory bandwidth, and recall latency.

For each grid size, one propagate step of the numba kernel and of the numpy reference are timed
in the same run, next to a numpy copy of the same arrays, which measures what memory bandwidth
this machine gives right now. Then the brute-force recall kernels of bench/brute_force.py,
resonance + top_k, are timed per call over 1k .. 1M memories for two vector sizes. (Recall
itself shortlists by binary sketch and rescores a few exactly, mem8.grid.shortlist and
mem8.grid.rescore: `bench recall` times that path through the grid actors.) Run:
python -m bench.grid [--sizes ..] [--rounds N]"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from bench import brute_force
from mem8.grid import kernels, reference
from mem8.grid.kernels import Field, Floats
from mem8.grid.threads import configure_threads

TARGET_SPEEDUP = 10.0  # numba step / numpy reference step, at least
TARGET_BANDWIDTH = 0.5  # the step's bytes per second / the copy's, at least
C2DT2, GAMMA_DT = 0.25, 0.01
ROUND_SECONDS = 0.05  # each round repeats a step for at least this long, then takes the mean
MEMORY_COUNTS = (1_000, 10_000, 100_000, 1_000_000)
DIMENSIONS = (64, 384)
RECALL_SECONDS = 1.0  # time spent on each (memories, dimensions) point, at most roughly
DISTINCT_VECTORS = 1 << 16  # larger sets repeat these (their weights still differ)


def verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


def calls_per_round(action: Callable[[], object]) -> int:
    """How many calls of `action` take about ROUND_SECONDS (after one warm call)."""
    action()
    start = time.perf_counter()
    action()
    return max(1, int(ROUND_SECONDS / max(time.perf_counter() - start, 1e-9)))


def interleaved_rounds(
    actions: dict[str, Callable[[], object]], rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each action in each round; a round times every action back to back,
    so the other processes on this machine weigh on all of them alike."""
    calls = {name: calls_per_round(action) for name, action in actions.items()}
    seconds: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                action()
            seconds[name].append((time.perf_counter() - start) / calls[name])
    return seconds


# --- propagate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """Medians over rounds; the ratios are medians of each round's ratio."""

    size: int
    serial_seconds: float  # numba, the default path
    parallel_seconds: float  # numba with parallel=True
    numpy_seconds: float
    speedup: float  # numpy / serial numba
    step_rate: float  # GB/s of the serial step
    copy_rate: float  # GB/s of the copy
    share: float  # step_rate / copy_rate
    step_bytes: int  # read u with its halo and u_prev, write the result

    @property
    def parallel_rate(self) -> float:
        return self.step_bytes / self.parallel_seconds / 1e9


def random_field(rng: np.random.Generator, shape: tuple[int, int]) -> Field:
    values = rng.standard_normal(shape, np.float32) + 1j * rng.standard_normal(shape, np.float32)
    return values.astype(np.complex64)


def bench_step(size: int, rounds: int, rng: np.random.Generator) -> Step:
    u, u_prev = random_field(rng, (size + 2, size + 2)), random_field(rng, (size, size))
    out = np.empty_like(u_prev)
    u_copy, u_prev_copy = np.empty_like(u), np.empty_like(u_prev)

    def copy() -> None:
        np.copyto(u_copy, u)
        np.copyto(u_prev_copy, u_prev)

    def step(parallel: bool) -> Callable[[], object]:
        return lambda: kernels.propagate(u, u_prev, C2DT2, GAMMA_DT, out, parallel=parallel)

    seconds = interleaved_rounds(
        {
            "copy": copy,
            "serial": step(False),
            "parallel": step(True),
            "numpy": lambda: reference.propagate(u, u_prev, C2DT2, GAMMA_DT, out),
        },
        rounds,
    )
    step_bytes = u.nbytes + u_prev.nbytes + out.nbytes
    copy_bytes = 2 * (u.nbytes + u_prev.nbytes)
    serial, copied = np.array(seconds["serial"]), np.array(seconds["copy"])
    median = statistics.median
    return Step(
        size,
        median(seconds["serial"]),
        median(seconds["parallel"]),
        median(seconds["numpy"]),
        float(np.median(np.array(seconds["numpy"]) / serial)),
        step_bytes / median(seconds["serial"]) / 1e9,
        copy_bytes / median(seconds["copy"]) / 1e9,
        float(np.median((step_bytes / serial) / (copy_bytes / copied))),
        step_bytes,
    )


def print_steps(steps: list[Step]) -> bool:
    print("\npropagate: one damped leapfrog step of a whole grid (complex64), median of rounds")
    print("targets are for the default (serial) kernel; parallel=True is shown beside it")
    print(
        f"{'size':>6} {'numba':>9} {'numpy':>9} {'speed-up':>8} {'GB/s':>6} {'copy':>6} "
        f"{'of copy':>7} {'parallel':>9} {'GB/s':>6}   >= {TARGET_SPEEDUP:.0f}x  "
        f">= {TARGET_BANDWIDTH:.0%} of copy"
    )
    met = True
    for s in steps:
        fast_enough, wide_enough = s.speedup >= TARGET_SPEEDUP, s.share >= TARGET_BANDWIDTH
        print(
            f"{s.size:>6} {s.serial_seconds * 1e6:>7.0f}us {s.numpy_seconds * 1e6:>7.0f}us "
            f"{s.speedup:>7.1f}x {s.step_rate:>6.1f} {s.copy_rate:>6.1f} {s.share:>7.0%} "
            f"{s.parallel_seconds * 1e6:>7.0f}us {s.parallel_rate:>6.1f}"
            f"   {verdict(fast_enough):>5}  {verdict(wide_enough):>14}"
        )
        met = met and fast_enough and wide_enough
    return met


# --- recall ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recall:
    memories: int
    dimensions: int
    calls: int
    resonance: npt.NDArray[np.float64]  # seconds per call
    top_k: npt.NDArray[np.float64]
    both: npt.NDArray[np.float64]
    parallel_resonance: npt.NDArray[np.float64]  # with parallel=True
    numpy_both: float  # median seconds of a BLAS matvec, weights and argpartition

    @property
    def vector_bytes(self) -> int:
        return self.memories * self.dimensions * 4


def unit_vectors(rng: np.random.Generator, count: int, dimensions: int) -> Floats:
    """`count` unit rows; beyond DISTINCT_VECTORS they repeat, which costs the same to scan."""
    distinct = rng.standard_normal((min(count, DISTINCT_VECTORS), dimensions), np.float32)
    distinct /= np.linalg.norm(distinct, axis=1, keepdims=True)
    vectors = np.empty((count, dimensions), np.float32)
    for start in range(0, count, len(distinct)):
        stop = min(count, start + len(distinct))
        vectors[start:stop] = distinct[: stop - start]
    return vectors


def timed_calls(action: Callable[[], object], calls: int) -> npt.NDArray[np.float64]:
    seconds = np.empty(calls)
    for n in range(calls):
        start = time.perf_counter_ns()
        action()
        seconds[n] = (time.perf_counter_ns() - start) / 1e9
    return seconds


def bench_recall(all_vectors: Floats, memories: int, k: int, rng: np.random.Generator) -> Recall:
    vectors = all_vectors[:memories]
    query = vectors[rng.integers(memories)].copy()
    weights = rng.uniform(0.5, 1.5, memories).astype(np.float32)
    scores = np.empty(memories, np.float32)

    def score() -> None:
        brute_force.resonance(query, vectors, weights, scores)

    def both() -> None:
        score()
        brute_force.top_k(scores, k)

    def numpy_both() -> None:
        np.argpartition(-((vectors @ query) * weights), min(k, memories - 1))[:k]

    both()
    start = time.perf_counter()
    both()
    once = time.perf_counter() - start
    calls = int(min(2000, max(20, RECALL_SECONDS / 3 / max(once, 1e-9))))
    baseline = timed_calls(numpy_both, max(3, calls // 10))
    return Recall(
        memories,
        all_vectors.shape[1],
        calls,
        timed_calls(score, calls),
        timed_calls(lambda: brute_force.top_k(scores, k), calls),
        timed_calls(both, calls),
        timed_calls(
            lambda: brute_force.resonance(query, vectors, weights, scores, parallel=True), calls
        ),
        float(np.median(baseline)),
    )


def milliseconds(seconds: npt.NDArray[np.float64], percentile: float) -> str:
    return f"{np.percentile(seconds, percentile) * 1e3:.3f}"


def print_recall(recalls: list[Recall], k: int) -> None:
    print(
        f"\nbrute-force recall kernels: resonance over M memories of D float32 dimensions, "
        f"then top_k (k = {k})"
    )
    print("milliseconds per call, p50/p99 over `calls`; GB/s = vector bytes / resonance p50;")
    print("numpy both: p50 of a BLAS matvec, weights and argpartition (not deterministic)")
    print(
        f"{'M':>9} {'D':>4} {'calls':>6} {'MB':>7} {'resonance':>15} {'top_k':>15} "
        f"{'both':>15} {'GB/s':>6} {'parallel res.':>15} {'numpy both':>11}"
    )
    for r in recalls:
        columns = [
            f"{milliseconds(times, 50)}/{milliseconds(times, 99)}"
            for times in (r.resonance, r.top_k, r.both, r.parallel_resonance)
        ]
        rate = r.vector_bytes / float(np.median(r.resonance)) / 1e9
        print(
            f"{r.memories:>9} {r.dimensions:>4} {r.calls:>6} {r.vector_bytes / 1e6:>7.1f} "
            f"{columns[0]:>15} {columns[1]:>15} {columns[2]:>15} {rate:>6.1f} "
            f"{columns[3]:>15} {r.numpy_both * 1e3:>11.3f}"
        )


# --- main -----------------------------------------------------------------------------------


def warm_up() -> None:
    """Compiles (or loads from numba's cache) every kernel the timings use, on both paths."""
    u, u_prev = np.zeros((10, 10), np.complex64), np.zeros((8, 8), np.complex64)
    vectors = np.zeros((8, 64), np.float32)
    weights, scores = np.ones(8, np.float32), np.empty(8, np.float32)
    for parallel in (False, True):
        kernels.propagate(u, u_prev, C2DT2, GAMMA_DT, np.empty_like(u_prev), parallel=parallel)
        brute_force.resonance(vectors[0], vectors, weights, scores, parallel=parallel)
    brute_force.top_k(scores, 3)


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.grid", description=__doc__)
    parser.add_argument("--sizes", default="256,512,1024", help="grid sides (default 256,512,1024)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per step timing (default 5)")
    parser.add_argument("--k", type=int, default=10, help="memories recalled (default 10)")
    parser.add_argument("--no-recall", action="store_true", help="skip the recall timings")
    options = parser.parse_args(argv)
    options.sizes = [int(side) for side in options.sizes.split(",") if side]
    if options.rounds < 1 or options.k < 1 or any(side < 2 for side in options.sizes):
        parser.error("--rounds, --k and every size must be positive (sizes at least 2)")
    return options


def main(argv: list[str] | None = None) -> int:
    configure_threads()
    options = parse_options(argv)
    began = time.perf_counter()
    warm_up()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"mem8 grid benchmark: numba {numba.__version__} ({numba.get_num_threads()} threads for "
        f"parallel=True), numpy {np.__version__}, "
        f"load average {load} (other processes share these cores)",
        flush=True,
    )
    rng = np.random.default_rng(8)
    steps = [bench_step(size, options.rounds, rng) for size in options.sizes]
    met = print_steps(steps)
    if not options.no_recall:
        recalls = []
        for dimensions in DIMENSIONS:
            vectors = unit_vectors(rng, max(MEMORY_COUNTS), dimensions)
            recalls += [bench_recall(vectors, m, options.k, rng) for m in MEMORY_COUNTS]
            del vectors
        print_recall(recalls, options.k)
    print(f"\npropagate targets: {verdict(met)}; total time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
