"""Imprint throughput and recall latency of the grid actors as memories grow (1k .. 1M).

Run: ./scripts/manage.sh bench recall [--sizes 1000,10000,100000,1000000] [--queries 200]

Memories go through the real path (the Grid actor, its GridRegion actors, the field kernels and
the scope-bucketed index), all in one scope: the worst case, since recall only ever scores the
caller's own buckets. Vectors are random unit vectors of the default encoder's size. Baseline in
the same run: brute-force cosine top-k with numpy over the same vectors (BLAS matrix-vector
product + argpartition). Targets: imprint >= 10,000 memories/s; recall p50 < 1 ms at 100k."""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from mem8.actors.grid import GridActor, GridRegionActor
from mem8.actors.messages import GridImprint, GridImprinted, GridRecall, GridRecalled
from mem8.actors.runtime import ActorRef, Supervisor, new_request_id
from mem8.encoders.minilm import MiniLMEncoder
from mem8.grid.placement import Placer
from mem8.grid.threads import configure_threads
from mem8.grid.tiling import tiles

GRID = 256
TILES = 2  # the default (MEM8_GRID_TILES): 4 regions; --tiles to change
BATCH = 1_000
K = 5


def wires(vectors: npt.NDArray[np.float32], start: int, placer: Placer) -> list[dict[str, Any]]:
    """Memory wire maps for a batch: placed by their vectors like real memories."""
    batch = []
    for offset, vector in enumerate(vectors):
        place = placer.place(vector, "", "text")
        batch.append(
            {
                "id": f"m{start + offset:07d}",
                "text": "",
                "source": "bench",
                "modality": "text",
                "tenant": "t",
                "user": "u",
                "persona": "p",
                "created": float(start + offset),
                "emotion": [0.2, 0.3, 0.5],
                "importance": 0.8,
                "band": place.band,
                "phase": place.phase,
                "tau": 6e5,
                "x": place.x,
                "y": place.y,
                "amplitude": 1.1,
                "vector": vector.astype("<f4").tobytes(),
                "recalls": 0,
                "last_recalled": 0.0,
                "context": "",
                "follows": "",
                "superseded_by": "",
            }
        )
    return batch


def unit_vectors(count: int, dimensions: int, seed: int) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).standard_normal((count, dimensions)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def start_grid(supervisor: Supervisor, dimensions: int, sigma: float) -> ActorRef:
    regions = [
        supervisor.start(
            f"region:{i}",
            lambda i=i, t=t: GridRegionActor(
                f"region:{i}",
                t,
                dimensions,  # type: ignore[misc]
                sigma,
            ),
        )
        for i, t in enumerate(tiles(GRID, TILES))
    ]
    return supervisor.start("grid", lambda: GridActor(GRID, TILES, regions, sigma))


async def warm_up(dimensions: int, placer: Placer) -> None:
    """Loads the numba kernels (compiled and cached) on a throwaway grid, outside the figures."""
    async with trio.open_nursery() as nursery:
        grid = start_grid(
            Supervisor(nursery, ask_timeout=60, mailbox_size=64), dimensions, placer.packet_sigma()
        )
        await imprint(grid, unit_vectors(2 * BATCH, dimensions, seed=1), 0, placer)
        await recall_latencies(grid, unit_vectors(5, dimensions, seed=3), 10.0)
        nursery.cancel_scope.cancel()


async def imprint(
    grid: ActorRef, vectors: npt.NDArray[np.float32], start: int, placer: Placer
) -> float:
    """Seconds to imprint `vectors` (ids from `start`), in batches of BATCH."""
    began = time.perf_counter()
    for first in range(0, len(vectors), BATCH):
        batch = wires(vectors[first : first + BATCH], start + first, placer)
        ask = GridImprint(new_request_id(), batch, float(start + first))
        await grid.ask(ask, GridImprinted, timeout=600)
    return time.perf_counter() - began


async def recall_latencies(
    grid: ActorRef, queries: npt.NDArray[np.float32], now: float
) -> list[float]:
    latencies = []
    for query in queries:
        ask = GridRecall(new_request_id(), query.astype("<f4").tobytes(), "t", "u", "p", K, now)
        began = time.perf_counter()
        await grid.ask(ask, GridRecalled)
        latencies.append(time.perf_counter() - began)
    return latencies


def brute_force(vectors: npt.NDArray[np.float32], queries: npt.NDArray[np.float32]) -> list[float]:
    latencies = []
    for query in queries:
        began = time.perf_counter()
        scores = vectors @ query
        best = np.argpartition(-scores, K)[:K]
        best[np.argsort(-scores[best])]
        latencies.append(time.perf_counter() - began)
    return latencies


def ms(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000)


async def run(sizes: list[int], queries: int) -> None:
    dimensions = MiniLMEncoder.DIMENSIONS
    placer = Placer(dimensions, GRID)
    questions = unit_vectors(queries, dimensions, seed=2)
    print(
        f"grid {GRID}x{GRID} in {TILES * TILES} regions, {dimensions}-dim unit vectors, "
        f"one scope, k={K}, {queries} queries per size"
    )
    header = (
        f"{'memories':>9} {'imprint/s':>10} {'recall p50':>11} {'p99':>8} "
        f"{'numpy p50':>10} {'p99':>8} {'speed-up':>9}"
    )
    print(header)
    rows = []
    await warm_up(dimensions, placer)
    async with trio.open_nursery() as nursery:
        grid = start_grid(
            Supervisor(nursery, ask_timeout=60, mailbox_size=64), dimensions, placer.packet_sigma()
        )
        stored = np.zeros((0, dimensions), np.float32)
        for size in sizes:
            fresh = unit_vectors(size - len(stored), dimensions, seed=size)
            seconds = await imprint(grid, fresh, len(stored), placer)
            stored = np.concatenate([stored, fresh])
            gc.collect()
            await recall_latencies(grid, questions[:10], float(size))  # warm
            ours = await recall_latencies(grid, questions, float(size))
            theirs = brute_force(stored, questions)
            rows.append((size, len(fresh) / seconds, ours, theirs))
            print(
                f"{size:>9,} {len(fresh) / seconds:>10,.0f} {ms(ours, 50):>9.3f}ms "
                f"{ms(ours, 99):>6.3f}ms {ms(theirs, 50):>8.3f}ms {ms(theirs, 99):>6.3f}ms "
                f"{ms(theirs, 50) / ms(ours, 50):>8.1f}x"
            )
        nursery.cancel_scope.cancel()
    verdicts(rows)


def verdicts(rows: list[tuple[int, float, list[float], list[float]]]) -> None:
    rates = [rate for _, rate, _, _ in rows]
    print(
        f"\nimprint: median {np.median(rates):,.0f} memories/s over the sizes "
        f"(target >= 10,000): {'PASS' if np.median(rates) >= 10_000 else 'MISS'}"
    )
    for size, _, ours, _ in rows:
        if size == 100_000:
            verdict = "PASS" if ms(ours, 50) < 1.0 else "MISS"
            print(f"recall at 100,000: p50 {ms(ours, 50):.3f} ms (target < 1 ms): {verdict}")


def main() -> None:
    configure_threads()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    arguments = parser.parse_args()
    sizes = sorted(int(s) for s in arguments.sizes.split(","))
    trio.run(run, sizes, arguments.queries)


if __name__ == "__main__":
    main()
