"""Recall's ranking on LoCoMo, offline: every memory scored exactly, as the grid would score it
if it rescored all of them, without actors, so that scoring variants and their constants can be
compared in seconds and fitted leave-one-conversation-out.

Run: python -m bench.ranking [--data PATH ...] [--encoder minilm] [--set NAME=VALUE ...]
     [--folds]

It builds each conversation's memories as the memory actor does (turns in order, each knowing
the turn before it within 30 minutes as its context, a turn longer than a passage as several
passages), scores every question against all of them (the cosine and mem8.grid.lexical's word
score, mixed as mem8.grid.index mixes them), spreads along the chain of turns as
mem8.grid.chain does, and prints recall@k by category. `bench locomo` is the measure of the real
path; this one agrees with it where the real shortlist holds every memory (k = 50 there)."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.locomo import DATA, KS, Conversation, Question, category_name, load
from mem8.actors.memory import CONTEXT_SPAN
from mem8.encoders import open_encoder
from mem8.encoders.base import Encoder
from mem8.grid import lexical
from mem8.grid.chain import SPREAD
from mem8.grid.index import DENSE_SHARE
from mem8.passages import passages

CACHE = Path.home() / ".cache" / "mem8-bench"


@dataclass(frozen=True)
class Variant:
    """The constants of a ranking."""

    dense_share: float = DENSE_SHARE
    coverage: float = lexical.COVERAGE_EXPONENT
    spread: tuple[float, ...] = SPREAD
    context_weight: float = lexical.CONTEXT_WEIGHT


@dataclass
class Memories:
    """One conversation's memories: parallel lists and arrays."""

    dia: list[str]
    texts: list[str]
    contexts: list[str]
    created: list[float]
    before: npt.NDArray[np.int64]  # index of the turn before (-1: none)
    vectors: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), np.float32))


def memories_of(conversation: Conversation) -> Memories:
    dia, texts, contexts, created, before = [], [], [], [], []
    for turn in conversation.turns():
        for passage in passages(turn.text):
            follows = bool(texts) and 0 <= turn.created - created[-1] <= CONTEXT_SPAN
            before.append(len(texts) - 1 if follows else -1)
            contexts.append(texts[-1] if follows else "")
            dia.append(turn.dia_id)
            texts.append(passage)
            created.append(turn.created)
    return Memories(dia, texts, contexts, created, np.array(before, np.int64))


def embedded(encoder: Encoder, name: str, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """The encoder's vectors of texts, cached on disk by the texts' hash."""
    digest = hashlib.sha256(json.dumps([name, *texts]).encode()).hexdigest()[:24]
    path = CACHE / f"{name}-{digest}.npy"
    if path.exists():
        cached: npt.NDArray[np.float32] = np.load(path)
        return cached
    vectors = encoder.embed_batch(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


@dataclass
class Prepared:
    conversation: Conversation
    memories: Memories
    queries: npt.NDArray[np.float32]


def prepare(conversations: list[Conversation], encoder: Encoder, name: str) -> list[Prepared]:
    found = []
    for conversation in conversations:
        memories = memories_of(conversation)
        memories.vectors = embedded(encoder, name, memories.texts)
        queries = embedded(encoder, name, [q.text for q in conversation.questions])
        found.append(Prepared(conversation, memories, queries))
    return found


def ranked(prepared: Prepared, variant: Variant) -> list[list[str]]:
    """Each question's first max(KS) turns (dia ids, each once)."""
    memories = prepared.memories
    n = len(memories.texts)
    frequencies = lexical.Frequencies()
    postings = lexical.Postings()
    lengths = np.zeros(n, np.float32)
    for i in range(n):
        found = lexical.terms(memories.texts[i])
        for term, count in lexical.terms(memories.contexts[i]).items():
            found[term] = found.get(term, 0.0) + variant.context_weight * count
        day = math.floor(memories.created[i] / lexical.DAY)
        found.update(dict.fromkeys(lexical._day_terms(day), 1.0))
        frequencies.add(found)
        postings.add(i, found)
        lengths[i] = lexical.length(found)
    after = np.full(n, -1, np.int64)
    for i, b in enumerate(memories.before):
        if b >= 0:
            after[b] = i
    answers = []
    for question, query in zip(prepared.conversation.questions, prepared.queries, strict=True):
        words = lexical.weigh(question.text, [frequencies])
        scores = _scores(words, postings, lengths, n, variant.coverage)
        cosine = memories.vectors @ query
        resonance = variant.dense_share * cosine + (1 - variant.dense_share) * scores
        final = _spread(resonance, memories.before, after, variant)
        order = np.argsort(-final, kind="stable")
        answers.append(list(dict.fromkeys(memories.dia[i] for i in order))[: max(KS)])
    return answers


def _scores(
    words: lexical.LexicalQuery,
    postings: lexical.Postings,
    lengths: npt.NDArray[np.float32],
    n: int,
    coverage_exponent: float,
) -> npt.NDArray[np.float64]:
    """lexical.scores with another coverage exponent."""
    if coverage_exponent == lexical.COVERAGE_EXPONENT:
        return lexical.scores(words, postings, lengths, n).astype(np.float64)
    base = lexical.scores(words, postings, lengths, n).astype(np.float64)
    held = np.zeros(n)
    for term in words.weights:
        found = postings.arrays(term)
        if found is not None:
            held[found[0]] += 1
    coverage = held / max(words.spoken, len(words.weights), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        matched = np.where(coverage > 0, base / coverage**lexical.COVERAGE_EXPONENT, 0.0)
    return np.asarray(matched * coverage**coverage_exponent)


def _spread(
    scores: npt.NDArray[np.float64],
    before: npt.NDArray[np.int64],
    after: npt.NDArray[np.int64],
    variant: Variant,
) -> npt.NDArray[np.float64]:
    """mem8.grid.chain.spread over every memory."""
    padded = np.append(scores, 0.0)  # index -1: a chain's end scores 0
    out = scores.copy()
    b, a = before, after
    for share in variant.spread:
        best = np.maximum(padded[b], padded[a])
        out += share * np.maximum(best - scores, 0.0)
        b = np.where(b >= 0, before[b], -1)
        a = np.where(a >= 0, after[a], -1)
    return out


@dataclass
class Tally:
    """recall@k per question, by conversation and category."""

    rows: list[tuple[str, int, dict[int, float]]] = field(default_factory=list)

    def add(self, conversation: str, question: Question, ranked: list[str]) -> None:
        hits = {k: len(question.evidence & set(ranked[:k])) / len(question.evidence) for k in KS}
        self.rows.append((conversation, question.category, hits))

    def mean(self, k: int, category: int | None = None, skip: str | None = None) -> float:
        chosen = [
            r[2][k]
            for r in self.rows
            if (category is None or r[1] == category) and (skip is None or r[0] != skip)
        ]
        return 100.0 * float(np.mean(chosen)) if chosen else math.nan

    def only(self, conversation: str) -> Tally:
        return Tally([r for r in self.rows if r[0] == conversation])

    def categories(self) -> list[int]:
        return sorted({r[1] for r in self.rows})

    def conversations(self) -> list[str]:
        return list(dict.fromkeys(r[0] for r in self.rows))


def evaluate(prepared: list[Prepared], variant: Variant) -> Tally:
    tally = Tally()
    for item in prepared:
        for question, answer in zip(
            item.conversation.questions, ranked(item, variant), strict=True
        ):
            tally.add(item.conversation.sample_id, question, answer)
    return tally


def line(name: str, tally: Tally) -> str:
    overall = " ".join(f"{tally.mean(k):6.1f}" for k in (5, 10, 50))
    by = " ".join(f"{category_name(c)[:8]}:{tally.mean(10, c):5.1f}" for c in tally.categories())
    return f"{name:40} {overall}   @10 {by}"


def _parse(settings: list[str]) -> Variant:
    variant = Variant()
    for setting in settings:
        name, value = setting.split("=", 1)
        current = getattr(variant, name)
        if isinstance(current, tuple):
            parsed: object = tuple(float(v) for v in value.split(",") if v)
        else:
            parsed = type(current)(value)
        variant = replace(variant, **{name: parsed})
    return variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[DATA])
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="NAME=VALUE of Variant")
    arguments = parser.parse_args()
    encoder = open_encoder(arguments.encoder, arguments.threads)
    variant = _parse(arguments.set)
    for path in arguments.data:
        prepared = prepare(load(path), encoder, arguments.encoder)
        print(f"{path.name}: @5 @10 @50")
        print(line(str(variant), evaluate(prepared, variant)))


if __name__ == "__main__":
    main()
