"""The grid as actors: tiling never changes results; the field saves and restores exactly."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import trio

from mem8 import heatmap
from mem8.actors.grid import TICK, GridActor, GridRegionActor
from mem8.actors.messages import (
    Ack,
    Digest,
    GridExport,
    GridField,
    GridForget,
    GridImprint,
    GridImprinted,
    GridPicture,
    GridRecall,
    GridRecalled,
    GridReinforce,
    GridScore,
    GridScored,
    Picture,
    Reinforcement,
    StateDigest,
)
from mem8.actors.runtime import ActorRef, Supervisor
from mem8.encoders.hashed import LexicalEncoder
from mem8.grid.chain import SPREAD
from mem8.grid.placement import Placer
from mem8.grid.tiling import tiles
from mem8.memory import Emotion, Memory, memory_to_wire
from mem8.scope import Scope

GRID = 64
TEXTS = [
    "My sister Anna is getting married in Lisbon in June",
    "The garbage collector in CPython handles reference cycles",
    "I adopted a grey cat called Miso last spring",
    "Anna's wedding speech still makes me nervous",
    "We hiked the Lisbon hills with my sister and her fiance",
    "Reference counting frees most objects immediately",
    "Miso the cat hates the vacuum cleaner",
    "My favourite book is about a lighthouse keeper",
] * 6  # 48 memories, spread over every tile

# Seconds a region may take to answer: generous, since on a cold cache the first recall
# compiles the numba kernels (a loaded machine took more than 10 s).
ASK_TIMEOUT = 60


def memories() -> list[Memory]:
    encoder = LexicalEncoder()
    placer = Placer(encoder.dimensions, GRID)
    found = []
    for i, text in enumerate(TEXTS):
        vector = encoder.embed(f"{text} (note {i})")
        place = placer.place(vector, text, "text")
        scope = Scope("tenant", "alice" if i % 3 else "bob", "mem8-counselor-v1")
        found.append(
            Memory(
                f"m{i:03d}",
                text,
                "test",
                "text",
                scope,
                1000.0 + 7 * i,
                Emotion(0.1 * (i % 5), 0.1 * (i % 7), 0.5),
                0.8,
                place.band,
                place.phase,
                86_400.0 * (1 + i % 4),
                place.x,
                place.y,
                1.0 + 0.05 * (i % 5),
                vector,
            )
        )
    return found


def start_grid(supervisor: Supervisor, per_side: int) -> ActorRef:
    sigma = Placer(256, GRID).packet_sigma()
    regions = [
        supervisor.start(
            f"r{per_side}:{i}", lambda i=i, t=t: GridRegionActor(f"r:{i}", t, 256, sigma)
        )  # type: ignore[misc]
        for i, t in enumerate(tiles(GRID, per_side))
    ]
    return supervisor.start(f"grid{per_side}", lambda: GridActor(GRID, per_side, regions, sigma))


async def exercise(grid: ActorRef) -> tuple[list[list[list[object]]], str, bytes]:
    """Imprints in batches across several ticks, reinforces, forgets, recalls."""
    wires = [memory_to_wire(m) for m in memories()]
    now = 1000.0
    for start in range(0, len(wires), 8):
        now += TICK * 1.5  # a propagation step (with halo exchange) between batches
        await grid.ask(GridImprint(uuid.uuid4().hex, wires[start : start + 8], now), GridImprinted)
    await grid.ask(
        GridReinforce(
            uuid.uuid4().hex,
            [Reinforcement("m003", 2, 1e6), Reinforcement("m010", 1, 2e6)],
            now + 3 * TICK,
        ),
        Ack,
    )
    await grid.ask(GridForget(uuid.uuid4().hex, "m007"), Ack)
    encoder = LexicalEncoder()
    results = []
    for query, user, persona in [
        ("sister wedding Lisbon", "alice", "mem8-counselor-v1"),
        ("cat Miso", None, None),
        ("reference cycles", "bob", "mem8-counselor-v1"),
    ]:
        recall = GridRecall(
            uuid.uuid4().hex,
            encoder.embed(query).astype("<f4").tobytes(),
            "tenant",
            user,
            persona,
            6,
            now + 5 * TICK,
        )
        results.append((await grid.ask(recall, GridRecalled)).hits)
    digest = (await grid.ask(StateDigest(uuid.uuid4().hex), Digest)).sha256
    field = await grid.ask(GridExport(uuid.uuid4().hex), GridField)
    return results, digest, whole_field(field, int(len(field.current) ** 0.5))


def whole_field(field: GridField, per_side: int) -> bytes:
    edge = GRID // per_side
    rows = []
    for r in range(per_side):
        row = [
            np.frombuffer(field.current[r * per_side + c], np.complex64).reshape(edge, edge)
            for c in range(per_side)
        ]
        rows.append(np.hstack(row))
    return np.vstack(rows).tobytes()


def run_with(per_side: int) -> tuple[list[list[list[object]]], str, bytes]:
    async def main() -> tuple[list[list[list[object]]], str, bytes]:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=ASK_TIMEOUT, mailbox_size=16)
            result = await exercise(start_grid(supervisor, per_side))
            nursery.cancel_scope.cancel()
        return result

    return trio.run(main)


def test_one_region_and_sixteen_regions_recall_the_same() -> None:
    one_hits, _, one_field = run_with(1)
    sixteen_hits, _, sixteen_field = run_with(4)
    assert one_hits == sixteen_hits
    assert one_field == sixteen_field  # bit for bit, halo exchange included
    best = int(str(one_hits[0][0][0])[1:])
    assert TEXTS[best] in (TEXTS[0], TEXTS[3], TEXTS[4])  # Anna, the wedding, Lisbon
    assert all(h[0] != "m007" for hits in one_hits for h in hits)  # forgotten


@pytest.mark.parametrize("per_side", [1, 2])
def test_the_same_inputs_give_the_same_state(per_side: int) -> None:
    assert run_with(per_side)[1] == run_with(per_side)[1]


def test_recall_respects_scope() -> None:
    hits = run_with(2)[0]
    alice = {m.id for m in memories() if m.scope.user == "alice"}
    bob = {m.id for m in memories() if m.scope.user == "bob"}
    assert {h[0] for h in hits[0]} <= alice
    assert {h[0] for h in hits[2]} <= bob
    assert {h[0] for h in hits[1]} & alice and {h[0] for h in hits[1]} & bob


def chained() -> list[Memory]:
    """The memories four times over as one user's conversation: each turn follows the one
    before (192 memories: 72 about Anna, more than a region sends for a top-8 recall)."""
    found: list[Memory] = []
    for memory in [replace(m, id=f"{m.id}{copy}") for copy in "abcd" for m in memories()]:
        memory.scope = Scope("tenant", "alice", "mem8-counselor-v1")
        if found:
            memory.context, memory.follows = found[-1].text, found[-1].id
        found.append(memory)
    return found


async def recall_and_score(per_side: int) -> tuple[list[list[Any]], dict[str, float]]:
    """A top-8 recall by meaning over the chained memories, and every memory's exact score."""
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(nursery, ask_timeout=ASK_TIMEOUT, mailbox_size=16)
        grid = start_grid(supervisor, per_side)
        wires = [memory_to_wire(m) for m in chained()]
        await grid.ask(GridImprint(uuid.uuid4().hex, wires, 1000.0), GridImprinted)
        query = LexicalEncoder().embed("sister wedding Lisbon").astype("<f4").tobytes()
        ask = GridRecall(uuid.uuid4().hex, query, "tenant", "alice", None, 8, 2000.0)
        hits = (await grid.ask(ask, GridRecalled)).hits
        no_words: dict[str, Any] = {"weights": [], "average_length": 1.0}
        score = GridScore(uuid.uuid4().hex, query, [w["id"] for w in wires], 2000.0, no_words)
        exact: dict[str, float] = {}
        for name, region in supervisor.refs.items():
            if name.startswith(f"r{per_side}:"):
                scored = await region.ask(score, GridScored)
                scores = np.frombuffer(scored.scores, "<f4").tolist()
                exact.update(zip(scored.ids, scores, strict=True))
        nursery.cancel_scope.cancel()
    return hits, exact


def test_recall_spreads_from_neighbours_outside_the_candidates() -> None:
    """A hit rises SPREAD of the way to its best neighbours' exact scores one and two turns
    away where they are higher, also from neighbours that were not among the 64 candidates
    the region sent."""
    hits, exact = trio.run(recall_and_score, 1)
    assert len(exact) == 4 * len(TEXTS)
    order = [m.id for m in chained()]
    for memory_id, score in hits:
        at = order.index(memory_id)
        expected = exact[memory_id]
        for hop, share in enumerate(SPREAD, start=1):
            near = [order[i] for i in (at - hop, at + hop) if 0 <= i < len(order)]
            expected += share * max(0.0, *(exact[i] - exact[memory_id] for i in near))
        assert score == pytest.approx(expected, rel=1e-5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_spread_recall_is_the_same_in_one_and_sixteen_regions() -> None:
    assert trio.run(recall_and_score, 1) == trio.run(recall_and_score, 4)


def test_a_date_in_the_query_recalls_what_was_perceived_that_day() -> None:
    """The same words perceived on two days: naming a day (or month) recalls that day's."""
    days = {
        "m-oct": datetime(2023, 10, 13, 15, tzinfo=UTC),
        "m-nov": datetime(2023, 11, 20, 9, tzinfo=UTC),
    }

    async def recall(text: str) -> list[str]:
        async with trio.open_nursery() as nursery:
            grid = start_grid(Supervisor(nursery, ask_timeout=ASK_TIMEOUT, mailbox_size=16), 2)
            base = memories()[0]
            wires = [
                memory_to_wire(replace(base, id=memory_id, created=day.timestamp()))
                for memory_id, day in days.items()
            ]
            await grid.ask(GridImprint(uuid.uuid4().hex, wires, 1.7e9), GridImprinted)
            query = LexicalEncoder().embed(text).astype("<f4").tobytes()
            ask = GridRecall(uuid.uuid4().hex, query, "tenant", None, None, 2, 1.71e9, text=text)
            hits = (await grid.ask(ask, GridRecalled)).hits
            nursery.cancel_scope.cancel()
        return [memory_id for memory_id, _ in hits]

    assert trio.run(recall, "Anna's wedding, as I told you on 13 October 2023") == [
        "m-oct",
        "m-nov",
    ]
    assert trio.run(recall, "What about Anna's wedding in November 2023?") == ["m-nov", "m-oct"]


QUERY = "I cancelled the new restaurant reservation after seeing their menu online"
CUE = "After my allergic reaction at the office party I always carry two EpiPens"
BY_CHANCE = [
    "We tried a new board game",
    "Seeing you again made my day",
    "I bought it online last week",
    "A new job starts on Monday",
    "Online classes are hard",
]


def meaning_and_chance() -> tuple[list[Memory], np.ndarray]:  # type: ignore[type-arg]
    """A query's vector; the cue close to it in meaning (cosine 0.45) without a word of it;
    memories each sharing one of its words by chance (cosine 0.3); unrelated ones (0.1)."""
    rng = np.random.default_rng(7)
    query = rng.standard_normal(256).astype(np.float32)
    query /= np.linalg.norm(query)

    def at(cosine: float) -> np.ndarray:  # type: ignore[type-arg]
        other = rng.standard_normal(256).astype(np.float32)
        other -= (other @ query) * query
        other /= np.linalg.norm(other)
        return (cosine * query + np.sqrt(1 - cosine**2) * other).astype(np.float32)

    texts = [(CUE, 0.45)] + [(t, 0.3) for t in BY_CHANCE * 3]
    texts += [(f"note {i} on gardening, weather and books", 0.1) for i in range(40)]
    placer = Placer(256, GRID)
    found = []
    for i, (text, cosine) in enumerate(texts):
        vector = at(cosine)
        place = placer.place(vector, text, "text")
        found.append(
            Memory(
                *(f"m{i:03d}", text, "test", "text", Scope("tenant", "alice", "p")),
                *(1e6 + 60 * i, Emotion(0.0, 0.0, 0.5), 0.8, place.band, place.phase),
                *(86_400.0, place.x, place.y, 1.0, vector),
            )
        )
    return found, query


def test_a_match_in_meaning_outranks_words_shared_by_chance() -> None:
    """The cue shares no word with the query; each of the others shares one of its seven
    (the rest no memory holds): their word scores count for their small share of the query.
    One region and sixteen answer alike."""
    found, query = meaning_and_chance()

    async def recall(per_side: int) -> list[list[Any]]:
        async with trio.open_nursery() as nursery:
            grid = start_grid(Supervisor(nursery, ask_timeout=10, mailbox_size=16), per_side)
            wires = [memory_to_wire(m) for m in found]
            await grid.ask(GridImprint(uuid.uuid4().hex, wires, 1e6), GridImprinted)
            wire = query.astype("<f4").tobytes()
            ask = GridRecall(uuid.uuid4().hex, wire, "tenant", "alice", None, 5, 1.1e6, text=QUERY)
            hits = (await grid.ask(ask, GridRecalled)).hits
            nursery.cancel_scope.cancel()
        return hits

    hits = trio.run(recall, 1)
    assert hits == trio.run(recall, 4)
    assert hits[0][0] == "m000"
    assert {h[0] for h in hits[1:]} <= {m.id for m in found[1:16]}  # then the near misses


def scattered(count: int) -> tuple[list[Memory], np.ndarray]:  # type: ignore[type-arg]
    """Unchained memories whose cosines with a random query lie within 0.05 of each other, less
    than the sketch's estimate errs, so a shortlist by estimate would often miss the best."""
    rng = np.random.default_rng(11)
    query = rng.standard_normal(256).astype(np.float32)
    query /= np.linalg.norm(query)
    others = rng.standard_normal((count, 256)).astype(np.float32)
    others -= np.outer(others @ query, query)
    others /= np.linalg.norm(others, axis=1, keepdims=True)
    cosines = rng.uniform(0.25, 0.30, count).astype(np.float32)
    rows = cosines[:, None] * query + np.sqrt(1 - cosines**2)[:, None] * others
    placer = Placer(256, GRID)
    found = []
    for i, vector in enumerate(rows.astype(np.float32)):
        place = placer.place(vector, f"note {i}", "text")
        found.append(
            Memory(
                *(f"m{i:03d}", f"note {i}", "test", "text", Scope("tenant", "alice", "p")),
                *(1e6 + 3600 * i, Emotion(0.0, 0.0, 0.5), 0.8, place.band, place.phase),
                *(86_400.0, place.x, place.y, 1.0, vector),
            )
        )
    return found, query


@pytest.mark.parametrize("per_side", [1, 4])
def test_a_small_scope_is_ranked_exactly_whatever_k(per_side: int) -> None:
    """Up to EXACT_UP_TO memories, a chat's top 1 is the memory with the best exact score,
    not the best of a shortlist chosen by the sketch's estimate."""
    found, query = scattered(600)

    async def recall() -> tuple[list[str], str]:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=ASK_TIMEOUT, mailbox_size=16)
            grid = start_grid(supervisor, per_side)
            wires = [memory_to_wire(m) for m in found]
            await grid.ask(GridImprint(uuid.uuid4().hex, wires, 3e6), GridImprinted)
            wire = query.astype("<f4").tobytes()
            tops = []
            for k in (1, 5):
                ask = GridRecall(uuid.uuid4().hex, wire, "tenant", "alice", None, k, 3e6)
                tops.append((await grid.ask(ask, GridRecalled)).hits[0][0])
            no_words: dict[str, Any] = {"weights": [], "average_length": 1.0}
            score = GridScore(uuid.uuid4().hex, wire, [m.id for m in found], 3e6, no_words)
            exact: dict[str, float] = {}
            for name, region in supervisor.refs.items():
                if name.startswith(f"r{per_side}:"):
                    scored = await region.ask(score, GridScored)
                    scores = np.frombuffer(scored.scores, "<f4").tolist()
                    exact.update(zip(scored.ids, scores, strict=True))
            nursery.cancel_scope.cancel()
        return tops, max(sorted(exact), key=exact.__getitem__)

    tops, best = trio.run(recall)
    assert tops == [best, best]


def picture_with(per_side: int) -> tuple[Picture, bytes]:
    """The grid's picture after imprinting the first memories, and the heatmap of its field."""
    wires = [memory_to_wire(m) for m in memories()[:8]]

    async def main() -> tuple[Picture, bytes]:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=ASK_TIMEOUT, mailbox_size=16)
            grid = start_grid(supervisor, per_side)
            await grid.ask(GridImprint(uuid.uuid4().hex, wires, 1000.0), GridImprinted)
            picture = await grid.ask(GridPicture(uuid.uuid4().hex, 2), Picture)
            field = await grid.ask(GridExport(uuid.uuid4().hex), GridField)
            nursery.cancel_scope.cancel()
        magnitude = np.abs(
            np.frombuffer(whole_field(field, per_side), np.complex64).reshape(GRID, GRID)
        )
        centres = [(w["x"], w["y"]) for w in wires]
        return picture, heatmap.png(heatmap.heatmap(magnitude, centres, 2))

    return trio.run(main)


@pytest.mark.parametrize("per_side", [1, 2])
def test_the_picture_is_the_heatmap_of_the_live_field_with_every_centre(per_side: int) -> None:
    picture, expected = picture_with(per_side)
    assert picture.memories == 8
    assert picture.png == expected
