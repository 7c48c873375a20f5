"""Implicit-recall pairs (bench/data/cues.json) inserted into LoCoMo conversations as sessions.

Run: python -m bench.cues [--data PATH] [--cues PATH] [--out PATH] [--only-cues] [--seed N]
     python -m bench.cues --check    (validates the pairs and a build, exits 1 on a problem)
     (or ./scripts/manage.sh bench cues ...)

The pairs, shuffled with the seed, are dealt round-robin over the conversations. Each one's two
cue turns become a new session (the first said by one of the two speakers, alternately, the reply
by the other) dated at a daytime minute in a gap of a day or more between two existing sessions,
an hour clear of both and at least 21 days before the last one. Sessions are then renumbered by
date and every dia_id and evidence reference follows; the observation and summary keys, which are
keyed by session number, are dropped. Each pair adds a question, its trigger, of category 6 (with
"cue_id") and the two cue turns as evidence; bench.locomo scores it as "implicit". Writes the
LoCoMo-format JSON to --out (default: under the system temp dir; the path goes to stdout) and a
summary to stderr."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.locomo import DATA, load
from mem8.grid.lexical import terms

CUES = Path(__file__).resolve().parent / "data" / "cues.json"
STAMP = "%I:%M %p on %d %B, %Y"  # LoCoMo's: "1:56 pm on 8 May, 2023"
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
LEAD = timedelta(days=21)  # a cue comes at least this long before the last session
MARGIN = timedelta(hours=1)  # and at least this long after or before its neighbours
MINUTE = timedelta(minutes=1)
DAYTIME = range(8, 22)  # hours a cue may be said at
ROOM = timedelta(days=1)  # a gap with less free time is not used (it may hold no daytime)
CATEGORY = 6
ANSWER = "(implicit cue)"
DROPPED = ("observation", "session_summary", "event_summary")  # keyed by old session numbers
_SESSION_KEY = re.compile(r"session_(\d+)(?:_date_time)?")
_DIA_ID = re.compile(r"\bD(\d+):(\d+)\b")

Sample = dict[str, Any]
Turn = dict[str, Any]


@dataclass(frozen=True)
class Pair:
    id: str
    kind: str
    cue: tuple[str, str]
    trigger: str


@dataclass
class Session:
    """A session of the conversation (`number` as in the source) or a cue (`pair` set)."""

    moment: datetime
    stamp: str
    turns: list[Turn]
    number: int | None = None
    pair: Pair | None = None
    listed: bool = True  # False: the source has only the date (LoCoMo has a few such)


@dataclass
class Renaming:
    """Old dia_ids to new ones, and old session numbers to new ones for ids of no turn."""

    turns: dict[str, str] = field(default_factory=dict)
    sessions: dict[int, int] = field(default_factory=dict)

    def evidence(self, item: str) -> str:
        return _DIA_ID.sub(self._renamed, item)

    def _renamed(self, match: re.Match[str]) -> str:
        if (known := self.turns.get(match.group())) is not None:
            return known
        session = self.sessions.get(int(match.group(1)))
        # an id of a missing turn keeps pointing at nothing; one of a missing session is kept
        return match.group() if session is None else f"D{session}:{match.group(2)}"


def read_pairs(path: Path) -> list[Pair]:
    document = json.loads(path.read_text())
    return [
        Pair(p["id"], p["kind"], (p["cue"][0], p["cue"][1]), p["trigger"])
        for p in document["pairs"]
    ]


def stems(text: str) -> set[str]:
    """Stemmed words without stopwords, as mem8's lexical recall sees them."""
    return set(terms(text))


def shared_stems(pair: Pair) -> set[str]:
    return stems(pair.trigger) & (stems(pair.cue[0]) | stems(pair.cue[1]))


# --- building ---------------------------------------------------------------------------------


def build(
    samples: Sequence[Sample], pairs: Sequence[Pair], seed: int, only_cues: bool
) -> list[Sample]:
    rng = random.Random(seed)
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    hands = [shuffled[i :: len(samples)] for i in range(len(samples))]
    return [_with_cues(s, hand, rng, only_cues) for s, hand in zip(samples, hands, strict=True)]


def _with_cues(sample: Sample, hand: Sequence[Pair], rng: random.Random, only_cues: bool) -> Sample:
    talk = sample["conversation"]
    sessions = _sessions(talk)
    speakers = (talk["speaker_a"], talk["speaker_b"])
    moments = _free_moments(sessions, len(hand), rng)
    cues = [
        _cue(pair, moment, speakers, j)
        for j, (pair, moment) in enumerate(zip(hand, moments, strict=True))
    ]
    ordered = sorted(sessions + cues, key=lambda s: s.moment)  # stable: equal dates keep order
    conversation, renaming = _numbered(talk, ordered)
    kept = [] if only_cues else [_renamed_qa(item, renaming) for item in sample["qa"]]
    triggers = [_trigger(n, s.pair) for n, s in enumerate(ordered, 1) if s.pair is not None]
    rest = {key: value for key, value in sample.items() if key not in DROPPED}
    return {**rest, "qa": kept + triggers, "conversation": conversation}


def _sessions(talk: dict[str, Any]) -> list[Session]:
    numbers = sorted({int(m.group(1)) for key in talk if (m := _SESSION_KEY.fullmatch(key))})
    return [_session(talk, n) for n in numbers]


def _session(talk: dict[str, Any], number: int) -> Session:
    stamp = talk[f"session_{number}_date_time"]
    turns = talk.get(f"session_{number}")
    return Session(when(stamp), stamp, turns or [], number=number, listed=turns is not None)


def when(stamp: str) -> datetime:
    return datetime.strptime(stamp.strip(), STAMP)


def stamp_of(moment: datetime) -> str:
    """LoCoMo's spelling: hour without a leading zero, lower-case am/pm, English month."""
    hour = moment.hour % 12 or 12
    half = "am" if moment.hour < 12 else "pm"
    month = MONTHS[moment.month - 1]
    return f"{hour}:{moment.minute:02d} {half} on {moment.day} {month}, {moment.year}"


def _free_moments(sessions: Sequence[Session], count: int, rng: random.Random) -> list[datetime]:
    """`count` distinct daytime minutes, each in a gap (chosen at random) between two sessions."""
    anchors = sorted(s.moment for s in sessions if s.turns)  # a date without turns is no session
    gaps = _gaps(anchors)
    if count and not gaps:
        raise ValueError("no day free between sessions 21 days before the last one")
    taken, chosen = set(anchors), list[datetime]()
    while len(chosen) < count:
        low, high = rng.choice(gaps)
        moment = low + rng.randrange((high - low) // MINUTE + 1) * MINUTE
        if moment.hour in DAYTIME and moment not in taken:
            taken.add(moment)
            chosen.append(moment)
    return chosen


def _gaps(anchors: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    latest = anchors[-1] - LEAD
    spans = [(a + MARGIN, min(b - MARGIN, latest)) for a, b in itertools.pairwise(anchors)]
    return [(low, high) for low, high in spans if high - low >= ROOM]


def _cue(pair: Pair, moment: datetime, speakers: tuple[str, str], j: int) -> Session:
    first, second = speakers if j % 2 == 0 else speakers[::-1]
    turns = [
        {"speaker": first, "dia_id": "", "text": pair.cue[0]},
        {"speaker": second, "dia_id": "", "text": pair.cue[1]},
    ]
    return Session(moment, stamp_of(moment), turns, pair=pair)


def _numbered(talk: dict[str, Any], ordered: Sequence[Session]) -> tuple[dict[str, Any], Renaming]:
    """The conversation with its sessions numbered 1..N in `ordered` order, and the renaming."""
    conversation = {k: v for k, v in talk.items() if not _SESSION_KEY.fullmatch(k)}
    renaming = Renaming()
    for number, session in enumerate(ordered, 1):
        turns = [{**t, "dia_id": f"D{number}:{i}"} for i, t in enumerate(session.turns, 1)]
        if session.number is not None:
            renaming.sessions[session.number] = number
            renaming.turns.update(
                (old["dia_id"], new["dia_id"])
                for old, new in zip(session.turns, turns, strict=True)
            )
        conversation[f"session_{number}_date_time"] = session.stamp
        if session.listed:
            conversation[f"session_{number}"] = turns
    return conversation, renaming


def _renamed_qa(item: dict[str, Any], renaming: Renaming) -> dict[str, Any]:
    return {**item, "evidence": [renaming.evidence(e) for e in item["evidence"]]}


def _trigger(number: int, pair: Pair) -> dict[str, Any]:
    return {
        "question": pair.trigger,
        "answer": ANSWER,
        "evidence": [f"D{number}:1", f"D{number}:2"],
        "category": CATEGORY,
        "cue_id": pair.id,
    }


def summary(before: Sequence[Sample], after: Sequence[Sample]) -> list[str]:
    lines = []
    for old, new in zip(before, after, strict=True):
        cues = sum(q["category"] == CATEGORY for q in new["qa"])
        lines.append(
            f"{old['sample_id']}: {cues} pairs, sessions {_count(old)} -> {_count(new)}, "
            f"questions {len(old['qa'])} -> {len(new['qa'])}"
        )
    return lines


def _count(sample: Sample) -> int:
    """Sessions counted by turns, as the data's README says (conv-26 has 16 bare dates)."""
    return sum(bool(s.turns) for s in _sessions(sample["conversation"]))


# --- the self-check ---------------------------------------------------------------------------


def check(data: Path, cues: Path, seed: int) -> list[str]:
    """Everything wrong with the pairs, or with a build of them into `data` (both modes)."""
    pairs = read_pairs(cues)
    samples = json.loads(data.read_text())
    problems = _pair_problems(pairs)
    for only_cues in (False, True):
        built = build(samples, pairs, seed, only_cues)
        for old, new in zip(samples, built, strict=True):
            problems += _sample_problems(old, new, pairs, only_cues)
        problems += _load_problems(built)
    return problems


def _pair_problems(pairs: Sequence[Pair]) -> list[str]:
    problems = [f"{p.id}: trigger shares {sorted(s)}" for p in pairs if (s := shared_stems(p))]
    problems += [f"{p.id}: trigger is a question" for p in pairs if p.trigger.endswith("?")]
    if len({p.id for p in pairs}) < len(pairs) or len({p.trigger for p in pairs}) < len(pairs):
        problems.append("pair ids or triggers repeat")
    return problems


def _sample_problems(old: Sample, new: Sample, pairs: Sequence[Pair], only_cues: bool) -> list[str]:
    name = f"{new['sample_id']}{' (only cues)' if only_cues else ''}"
    problems = _order_problems(new["conversation"])
    problems += _trigger_problems(new, {p.id: p for p in pairs})
    if only_cues:
        if any(q["category"] != CATEGORY for q in new["qa"]):
            problems.append("a question of the conversation's own is left")
    else:
        problems += _evidence_problems(old, new)
    return [f"{name}: {problem}" for problem in problems]


def _order_problems(talk: dict[str, Any]) -> list[str]:
    sessions = _sessions(talk)
    problems = []
    if [s.number for s in sessions] != list(range(1, len(sessions) + 1)):
        problems.append("session numbers are not 1..N")
    if any(a.moment > b.moment for a, b in itertools.pairwise(sessions)):
        problems.append("sessions are not in date order")
    for s in sessions:
        if [t["dia_id"] for t in s.turns] != [
            f"D{s.number}:{i}" for i in range(1, len(s.turns) + 1)
        ]:
            problems.append(f"session {s.number}: dia_ids out of step")
    return problems


def _trigger_problems(sample: Sample, pairs: dict[str, Pair]) -> list[str]:
    talk = sample["conversation"]
    texts = _texts(talk)
    triggers = [q for q in sample["qa"] if q["category"] == CATEGORY]
    problems = [
        f"{q['cue_id']}: evidence is not the cue turns"
        for q in triggers
        if [texts.get(e) for e in q["evidence"]] != list(pairs[q["cue_id"]].cue)
    ]
    if problems:
        return problems
    numbers = {_session_of(q["evidence"][0]) for q in triggers}
    sessions = _sessions(talk)
    own = [s.moment for s in sessions if s.number not in numbers and s.turns]
    for q in triggers:
        cue = sessions[_session_of(q["evidence"][0]) - 1]
        problems += [f"{q['cue_id']}: {p}" for p in _cue_problems(cue, own)]
    return problems


def _session_of(dia_id: str) -> int:
    return int(dia_id[1:].split(":")[0])


def _cue_problems(cue: Session, own: Sequence[datetime]) -> list[str]:
    """What is wrong with a cue session among the dates of the conversation's own sessions."""
    problems = []
    if cue.turns[0]["speaker"] == cue.turns[1]["speaker"]:
        problems.append("one speaker says both cue turns")
    if cue.moment > max(own) - LEAD:
        problems.append("cue less than 21 days before the last session")
    if stamp_of(cue.moment) != cue.stamp:
        problems.append(f"stamp {cue.stamp!r} is not spelt as LoCoMo's")
    if not min(own) < cue.moment < max(own):
        problems.append("cue not between two sessions")
    if any(abs(m - cue.moment) < MARGIN for m in own):
        problems.append("cue too close to a session")
    return problems


def _evidence_problems(old: Sample, new: Sample) -> list[str]:
    """The conversation's own questions must point at the same turns (texts) as before."""
    before, after = _texts(old["conversation"]), _texts(new["conversation"])
    own = [q for q in new["qa"] if q["category"] != CATEGORY]
    if len(own) != len(old["qa"]):
        return ["questions of the conversation's own lost"]
    problems = []
    for i, (was, now) in enumerate(zip(old["qa"], own, strict=True)):
        if _pointed(was["evidence"], before) != _pointed(now["evidence"], after):
            problems.append(f"question {i}: evidence points elsewhere")
    if Counter(before.values()) - Counter(after.values()):
        problems.append("turns of the conversation lost")
    return problems


def _pointed(evidence: Sequence[str], texts: dict[str, str]) -> list[str | None]:
    return [texts.get(m.group()) for item in evidence for m in _DIA_ID.finditer(item)]


def _texts(talk: dict[str, Any]) -> dict[str, str]:
    return {t["dia_id"]: t["text"] for s in _sessions(talk) for t in s.turns}


def _load_problems(built: Sequence[Sample]) -> list[str]:
    """bench.locomo.load must read the build with every turn, in time order."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "cues.json"
        path.write_text(json.dumps(built))
        conversations = load(path)
    problems = []
    for sample, conversation in zip(built, conversations, strict=True):
        turns = conversation.turns()
        if len(turns) != len(_texts(sample["conversation"])):
            problems.append(f"{sample['sample_id']}: load sees {len(turns)} turns")
        if any(a.created >= b.created for a, b in itertools.pairwise(turns)):
            problems.append(f"{sample['sample_id']}: load sees turns out of time order")
    return problems


# --- the command ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="a LoCoMo-format JSON file")
    parser.add_argument("--cues", type=Path, default=CUES, help="the pairs (cues.json)")
    parser.add_argument("--out", type=Path, help="where to write the built file")
    parser.add_argument("--only-cues", action="store_true", help="drop the conversations' own qa")
    parser.add_argument("--seed", type=int, default=0, help="shuffle, speakers and dates")
    parser.add_argument("--check", action="store_true", help="validate pairs and build, exit")
    arguments = parser.parse_args()
    if arguments.check:
        sys.exit(_run_check(arguments))
    pairs = read_pairs(arguments.cues)
    samples = json.loads(arguments.data.read_text())
    built = build(samples, pairs, arguments.seed, arguments.only_cues)
    print("\n".join(summary(samples, built)), file=sys.stderr)
    out = arguments.out or _default_out(arguments.seed, arguments.only_cues)
    out.write_text(json.dumps(built, ensure_ascii=False, indent=1))
    print(out)


def _run_check(arguments: argparse.Namespace) -> int:
    problems = check(arguments.data, arguments.cues, arguments.seed)
    for problem in problems:
        print(problem, file=sys.stderr)
    count = len(read_pairs(arguments.cues))
    print(f"check: {count} pairs, {len(problems)} problems", file=sys.stderr)
    return 1 if problems else 0


def _default_out(seed: int, only_cues: bool) -> Path:
    name = f"locomo-cues-seed{seed}{'-only' if only_cues else ''}.json"
    return Path(tempfile.gettempdir()) / name


if __name__ == "__main__":
    main()
