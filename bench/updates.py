"""Knowledge updates: after a fact changes, does recall put the current one first?

Run: ./scripts/manage.sh bench updates [--data PATH] [--locomo PATH] [--json]

bench/data/updates.json holds facts a user states and later changes ("update") or mentions
again without changing ("control"). They are said in realistic company: each LoCoMo dev
conversation's sessions are remembered as filler (as bench locomo does), and the items, spread
over the conversations round-robin, are said to a persona that remembers what it is told, as
chats through the persona actor (the scripted model echoes them back, as assistants do): the
old statement after a session in the first half of the conversation, the new one after a
session at least 14 days later. A day after the last session each item's question is recalled
as a chat recalls it (a memory search, k = 10: a superseded memory brings its superseder
first). An answer is right when the first memory holds the item's current
value (for a control: the value that still holds).

In the same run, over the same memories: plain similarity (the encoder's cosine's best), plain
recency (the newest of the 10 most similar), and mem8 with knowledge updates off. The rule's
one fitted constant (supersession.SAME_SUBJECT) is also fitted on four folds of the items and
scored on the fifth, on the pairs alone (an item's two statements, and each new statement
against the 3 most similar old statements of other items)."""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import trio

from bench.locomo import DATA as LOCOMO
from bench.locomo import Conversation, load
from mem8 import supersession
from mem8.actors.messages import (
    Accepted,
    Chat,
    Done,
    MemoryPage,
    MemorySearch,
    Percept,
    Remember,
    Remembered,
    Turn,
)
from mem8.actors.runtime import new_request_id
from mem8.backends.fake import ScriptedLLM
from mem8.clock import VirtualClock
from mem8.config import Settings, load_settings
from mem8.encoders import open_encoder
from mem8.encoders.base import Encoder
from mem8.grid.dynamics import DAY
from mem8.grid.threads import configure_threads
from mem8.memory import Memory
from mem8.personas import Persona, Traits
from mem8.system import System, open_system

ITEMS = Path(__file__).resolve().parent / "data" / "updates.json"
GAP = 14 * DAY  # the least time between an item's two statements
ASKED_AFTER = DAY
K = 10
TENANT = "bench"
KEEPER = Persona(
    id="mem8-keeper-v1",
    name="Keeper",
    traits=Traits(),
    model="scripted",
    temperature=0.5,
    system_prompt="You keep track of what the user tells you.",
    interest_threshold=0.0,
)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.3, 0.81, 0.05))


@dataclass
class Item:
    id: str
    update: bool
    form: str
    old: str
    new: str
    question: str
    current: str


@dataclass
class Tally:
    """Right answers (the first memory holds the current value), by kind of item."""

    right: dict[str, list[bool]] = field(default_factory=lambda: {"update": [], "control": []})

    def add(self, item: Item, first: str) -> None:
        self.right["update" if item.update else "control"].append(
            item.current.lower() in first.lower()
        )

    def share(self, kind: str) -> float:
        return 100.0 * float(np.mean(self.right[kind])) if self.right[kind] else 0.0


@dataclass
class Results:
    mem8: Tally = field(default_factory=Tally)
    without: Tally = field(default_factory=Tally)  # mem8 with knowledge updates off
    similarity: Tally = field(default_factory=Tally)
    recency: Tally = field(default_factory=Tally)
    superseded_right: int = 0  # an update's old statement (or its echo) by its new one
    superseded_wrong: int = 0  # anything else: a control, another item, filler
    by_form: dict[str, list[bool]] = field(default_factory=dict)


def load_items(path: Path) -> list[Item]:
    return [
        Item(i["id"], i["update"], i["form"], i["old"], i["new"], i["question"], i["current"])
        for i in json.loads(path.read_text())["items"]
    ]


def placements(conversation: Conversation, count: int, seed: int) -> list[tuple[int, int]]:
    """For each of `count` items, the sessions after which its old and new statements are
    said: the old in the first half, the new at least GAP later (the last session if none)."""
    rng = random.Random(f"{seed}:{conversation.sample_id}")
    starts = [session[0].created for session in conversation.sessions]
    chosen = []
    for _ in range(count):
        old = rng.randrange(max(1, len(starts) // 2))
        later = [s for s in range(old + 1, len(starts)) if starts[s] - starts[old] >= GAP]
        chosen.append((old, rng.choice(later) if later else len(starts) - 1))
    return chosen


async def say(system: System, clock: VirtualClock, user: str, text: str, at: float) -> None:
    """One chat to the keeper persona, answered by the scripted model's echo."""
    clock.set(at)
    chat = Chat(new_request_id(), KEEPER.id, TENANT, user, at, [Turn("user", text)])
    with await system.persona(KEEPER.id).open_stream(chat) as replies:
        answers = [reply async for reply in replies]
    assert isinstance(answers[0], Accepted) and isinstance(answers[-1], Done), answers


async def run_conversation(
    conversation: Conversation,
    items: list[Item],
    encoder: Encoder,
    results: Results,
    seed: int,
    updates_on: bool,
) -> None:
    spots = placements(conversation, len(items), seed)
    after: dict[int, list[tuple[Item, str]]] = {}
    for item, (old, new) in zip(items, spots, strict=True):
        after.setdefault(old, []).append((item, item.old))
        after.setdefault(new, []).append((item, item.new))
    user = conversation.sample_id
    with tempfile.TemporaryDirectory() as scratch, _updates(updates_on):
        settings = load_settings(
            cwd=Path(scratch), environ={}, overrides={"storage": str(Path(scratch) / "u.db")}
        )
        settings = _with_keeper(settings)
        clock = VirtualClock(conversation.sessions[0][0].created)
        backends = {pid: ScriptedLLM() for pid in settings.personas}
        async with open_system(
            settings, clock=clock, backends=backends, journal=False, encoder=encoder
        ) as system:
            for number, session in enumerate(conversation.sessions):
                await _filler(system, clock, user, session)
                end = session[-1].created
                for offset, (_, text) in enumerate(after.get(number, []), 1):
                    await say(system, clock, user, text, end + 3600.0 + 60.0 * offset)
            now = conversation.sessions[-1][-1].created + ASKED_AFTER
            clock.set(now)
            stored = system.store.list(TENANT, user=user, limit=1_000_000)
            await _ask(system, encoder, items, stored, user, now, results, updates_on)
            if updates_on:
                _count_supersessions(stored, items, results)


@contextmanager
def _updates(on: bool) -> Iterator[None]:
    """Knowledge updates as built, or off (no pair is ever close enough)."""
    kept = supersession.SAME_SUBJECT
    supersession.SAME_SUBJECT = kept if on else 2.0
    try:
        yield
    finally:
        supersession.SAME_SUBJECT = kept


def _with_keeper(settings: Settings) -> Settings:
    return replace(settings, personas={**settings.personas, KEEPER.id: KEEPER})


async def _filler(system: System, clock: VirtualClock, user: str, session: list[Any]) -> None:
    clock.set(session[0].created)
    percepts = [Percept(t.text, f"locomo:{t.dia_id}", "text", t.created) for t in session]
    remember = Remember(new_request_id(), TENANT, user, KEEPER.id, percepts, 1.0)
    await system.memory.ask(remember, Remembered)


async def _ask(
    system: System,
    encoder: Encoder,
    items: list[Item],
    stored: list[Memory],
    user: str,
    now: float,
    results: Results,
    updates_on: bool,
) -> None:
    queries = encoder.embed_batch([item.question for item in items])
    vectors = np.array([m.vector for m in stored], np.float32)
    for item, query in zip(items, queries, strict=True):
        search = MemorySearch(new_request_id(), TENANT, item.question, user, KEEPER.id, K, now)
        found = (await system.memory.ask(search, MemoryPage)).memories  # as a chat recalls
        first = found[0]["text"] if found else ""
        if not updates_on:
            results.without.add(item, first)
            continue
        results.mem8.add(item, first)
        results.by_form.setdefault(item.form if item.update else "control", []).append(
            item.current.lower() in first.lower()
        )
        cosines = vectors @ query
        best = np.argsort(-cosines, kind="stable")[:K]
        results.similarity.add(item, stored[int(best[0])].text)
        newest = max(best, key=lambda i: (stored[int(i)].created, -int(i)))
        results.recency.add(item, stored[int(newest)].text)


def _count_supersessions(stored: list[Memory], items: list[Item], results: Results) -> None:
    """Whether each supersession replaced an update's old statement by its new one."""
    text = {m.id: m.text for m in stored}
    right = {(i.old, i.new) for i in items if i.update}
    for memory in stored:
        if not memory.superseded_by:
            continue
        pair = (memory.text.removeprefix("echo: "), text.get(memory.superseded_by, ""))
        if pair in right:
            results.superseded_right += 1
        else:
            results.superseded_wrong += 1


# --- the rule's constant on folds -------------------------------------------------------------


def fold_figures(items: list[Item], encoder: Encoder, folds: int = 5) -> list[dict[str, float]]:
    """SAME_SUBJECT fitted on all folds but one (the most right minus wrong judgements) and
    scored on that one: the share of its updates found and of its wrong judgements."""
    olds = encoder.embed_batch([i.old for i in items])
    news = encoder.embed_batch([i.new for i in items])
    pairs = _pairs(items, olds, news)
    kept = supersession.SAME_SUBJECT
    figures = []
    try:
        for fold in range(folds):
            train = [p for p in pairs if p[0] % folds != fold]
            test = [p for p in pairs if p[0] % folds == fold]
            chosen = max(THRESHOLDS, key=lambda t: (_score(train, t), -t))
            found, wrong = _judged(test, chosen)
            figures.append({"fold": fold, "threshold": chosen, "found": found, "wrong": wrong})
    finally:
        supersession.SAME_SUBJECT = kept
    return figures


Pair = tuple[int, bool, supersession.Statement, supersession.Statement]


def _pairs(
    items: list[Item], olds: npt.NDArray[np.float32], news: npt.NDArray[np.float32]
) -> list[Pair]:
    """(item index, is a true update, new, old): each item's own pair, and its new statement
    against the 3 most similar old statements of other items (each should not supersede)."""
    similar = news @ olds.T
    found: list[Pair] = []
    for i, item in enumerate(items):
        new = supersession.Statement(item.new, news[i])
        found.append((i, item.update, new, supersession.Statement(item.old, olds[i])))
        others = [int(j) for j in np.argsort(-similar[i], kind="stable") if j != i][:3]
        found += [(i, False, new, supersession.Statement(items[j].old, olds[j])) for j in others]
    return found


def _judged(pairs: list[Pair], threshold: float) -> tuple[float, float]:
    supersession.SAME_SUBJECT = threshold
    updates = [supersession.supersedes(n, o) for _, true, n, o in pairs if true]
    wrong = [supersession.supersedes(n, o) for _, true, n, o in pairs if not true]
    return 100.0 * float(np.mean(updates)), 100.0 * float(np.mean(wrong))


def _score(pairs: list[Pair], threshold: float) -> float:
    found, wrong = _judged(pairs, threshold)
    updates = sum(true for _, true, _, _ in pairs)
    return found * updates - wrong * (len(pairs) - updates)


# --- the run ----------------------------------------------------------------------------------


async def main_async(arguments: argparse.Namespace) -> tuple[Results, list[dict[str, float]]]:
    encoder = open_encoder(arguments.encoder, arguments.threads)
    conversations = load(arguments.locomo)
    items = load_items(arguments.data)
    shares = [items[i :: len(conversations)] for i in range(len(conversations))]
    results = Results()
    for conversation, share in zip(conversations, shares, strict=True):
        for on in (True, False):
            await run_conversation(conversation, share, encoder, results, arguments.seed, on)
    return results, fold_figures(items, encoder)


def report(results: Results, folds: list[dict[str, float]]) -> list[str]:
    lines = [f"{'first memory holds the current fact':38} {'updates':>8} {'controls':>9}"]
    for name in ("mem8", "without", "similarity", "recency"):
        tally: Tally = getattr(results, name)
        label = {"without": "mem8, knowledge updates off", "recency": "plain recency"}.get(
            name, "plain similarity" if name == "similarity" else name
        )
        lines.append(f"{label:38} {tally.share('update'):8.1f} {tally.share('control'):9.1f}")
    forms = ", ".join(
        f"{form} {100 * np.mean(right):.1f} ({len(right)})"
        for form, right in sorted(results.by_form.items())
    )
    lines.append(f"mem8 by form: {forms}")
    lines.append(
        f"supersessions: {results.superseded_right} of an update's old statement by its new "
        f"one, {results.superseded_wrong} other (controls, other items, filler)"
    )
    lines.append("SAME_SUBJECT on folds (fit on 4, score the 5th):")
    lines += [
        f"  fold {int(f['fold'])}: threshold {f['threshold']:.2f}, updates found "
        f"{f['found']:.1f}%, wrong judgements {f['wrong']:.1f}%"
        for f in folds
    ]
    return lines


def main() -> None:
    configure_threads()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ITEMS, help="the update items")
    parser.add_argument("--locomo", type=Path, default=LOCOMO, help="LoCoMo conversations")
    parser.add_argument("--json", action="store_true", help="machine-readable results")
    parser.add_argument("--seed", type=int, default=0, help="where the statements are said")
    parser.add_argument("--threads", type=int, default=2, help="encoder threads")
    parser.add_argument(
        "--encoder",
        default=os.environ.get("MEM8_ENCODER") or Settings().encoder,
        help="the encoder (default: MEM8_ENCODER, else the setting's default)",
    )
    arguments = parser.parse_args()
    results, folds = trio.run(main_async, arguments)
    if arguments.json:
        document = {
            name: {
                kind: round(getattr(results, name).share(kind), 2) for kind in ("update", "control")
            }
            for name in ("mem8", "without", "similarity", "recency")
        }
        document["supersessions"] = {
            "right": results.superseded_right,
            "wrong": results.superseded_wrong,
        }
        document["folds"] = folds
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(report(results, folds)))


if __name__ == "__main__":
    main()
