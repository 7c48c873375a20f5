"""`mem8 sim diff`: where two runs part (the first transcript line that differs) and how they
differ from there on: what each persona said, how interested it was and what it felt, how many
memories it ended with, what it recalled, and which expectations changed their verdict."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mem8.errors import ConfigError
from mem8.sim import outputs
from mem8.storage.sqlite import MemoryStore, StorageError

Said = dict[str, Any]  # a transcript line as transcript.jsonl holds it
Kept = tuple[float, str]  # a memory as two runs can compare it: when it was made, its text
SHOWN_RECALLS = 5  # recall differences printed one by one; the rest are counted
QUOTED = 60  # characters of a memory quoted


@dataclass(frozen=True)
class Recorded:
    """A run as its directory keeps it."""

    path: Path
    lines: list[Said]
    verdicts: dict[str, bool]  # expectation key -> held
    record: dict[str, Any]  # run.json
    memories: dict[str, Kept]  # memory id -> what it is, so recalls compare across runs

    def personas(self) -> list[str]:
        """The run's personas: run.json's, else every listener that judged a line."""
        named = self.record.get("memories")
        if isinstance(named, dict) and named:
            return sorted(named)
        return sorted({x["listener"] for x in self.lines if "interest" in x})


def read(run_dir: Path) -> Recorded:
    """A run directory's transcript, verdicts, record and memories; ConfigError if it is none."""
    try:
        record = outputs.read_run(run_dir)
        text = (run_dir / outputs.TRANSCRIPT).read_text(encoding="utf-8")
        lines = [json.loads(line) for line in text.splitlines()]
        checked = json.loads((run_dir / outputs.EXPECTATIONS).read_text(encoding="utf-8"))
        verdicts = {str(c["key"]): bool(c["held"]) for c in checked}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{run_dir}: not a run directory ({error})") from error
    return Recorded(run_dir, lines, verdicts, record, _memories(run_dir / outputs.STORE))


def _memories(store: Path) -> dict[str, Kept]:
    """What each memory of the run's store is, by id: the same memory has another id in a run
    whose request ids shifted (a fork's intervention takes one)."""
    if not store.is_file():
        return {}
    try:
        opened = MemoryStore.open(store)
    except StorageError:
        return {}
    try:
        return {m.id: (m.created, m.text) for m in opened.iter_all()}
    finally:
        opened.close()


@dataclass(frozen=True)
class Parting:
    """The first transcript line that differs; None where one transcript had ended."""

    index: int
    at: float
    step: int
    first: Said | None
    second: Said | None


@dataclass(frozen=True)
class Persona:
    """One persona after the parting in each run (None: it heard nothing there)."""

    persona: str
    said: int  # lines said in one run and not in the other
    said_first: int
    said_second: int
    interest: tuple[float | None, float | None]
    valence: tuple[float | None, float | None]
    arousal: tuple[float | None, float | None]
    memories: tuple[int | None, int | None]  # at the end


@dataclass(frozen=True)
class Recall:
    """A line heard in both runs whose listener recalled different memories."""

    first: int  # index of the line in each transcript
    second: int
    at: float
    step: int
    listener: str
    only_first: list[str]  # the texts of memories recalled in one run alone, best first
    only_second: list[str]


@dataclass(frozen=True)
class Verdict:
    key: str
    first: bool | None  # None: the run has no such expectation
    second: bool | None


@dataclass(frozen=True)
class RunDiff:
    first: Path
    second: Path
    lines: tuple[int, int]
    parting: Parting | None
    personas: list[Persona]
    recalls: list[Recall]
    compared: int  # lines heard in both runs whose recalls were compared
    verdicts: list[Verdict]  # those that changed
    same_state: bool  # the end states' digests are equal

    @property
    def identical(self) -> bool:
        return self.parting is None and not self.verdicts and self.same_state

    def to_json(self) -> dict[str, Any]:
        found = asdict(self)
        found.update(first=str(self.first), second=str(self.second), identical=self.identical)
        return found


def compare(first: Recorded, second: Recorded) -> RunDiff:
    """How two runs differ, from the line where they part."""
    parting = _parting(first.lines, second.lines)
    start = parting.index if parting else len(first.lines)
    after = (first.lines[start:], second.lines[start:])
    personas = sorted(set(first.personas()) | set(second.personas()))
    pairs = _aligned(*after)
    recalls = [
        _recall(first, second, start + i, start + j)
        for i, j in pairs
        if after[0][i]["kind"] == "chat"
        and _recalled(first, after[0][i]) != _recalled(second, after[1][j])
    ]
    compared = sum(after[0][i]["kind"] == "chat" for i, _ in pairs)
    return RunDiff(
        first.path,
        second.path,
        (len(first.lines), len(second.lines)),
        parting,
        [_persona(pid, first, second, after) for pid in personas],
        recalls,
        compared,
        _verdicts(first.verdicts, second.verdicts),
        _digest(first) == _digest(second),
    )


def _parting(first: Sequence[Said], second: Sequence[Said]) -> Parting | None:
    for index in range(max(len(first), len(second))):
        a = first[index] if index < len(first) else None
        b = second[index] if index < len(second) else None
        if a != b:
            line = a or b
            assert line is not None
            return Parting(index, float(line["at"]), int(line["step"]), a, b)
    return None


def _aligned(first: Sequence[Said], second: Sequence[Said]) -> list[tuple[int, int]]:
    """Pairs of lines that stand for the same moment in both runs (same time, kind, speaker
    and listener), matched in order around what one run has and the other has not."""
    keys = [
        [(x["at"], x["kind"], x["speaker"], x["listener"]) for x in lines]
        for lines in (first, second)
    ]
    matcher = difflib.SequenceMatcher(None, keys[0], keys[1], autojunk=False)
    return [
        (block.a + k, block.b + k)
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]


def _recalled(run: Recorded, line: Said) -> list[Kept]:
    """What the line's listener recalled, best first (a memory the store no longer holds
    by its id)."""
    return [run.memories.get(str(hit[0]), (-1.0, str(hit[0]))) for hit in line.get("recalled", [])]


def _recall(first: Recorded, second: Recorded, i: int, j: int) -> Recall:
    a, b = first.lines[i], second.lines[j]
    mine, theirs = _recalled(first, a), _recalled(second, b)
    return Recall(
        i, j, float(a["at"]), int(a["step"]), str(a["listener"]),
        [text for kept in mine if kept not in theirs for text in kept[1:]],
        [text for kept in theirs if kept not in mine for text in kept[1:]],
    )  # fmt: skip


def _persona(
    pid: str, first: Recorded, second: Recorded, after: tuple[list[Said], list[Said]]
) -> Persona:
    said = [[x["text"] for x in lines if _says(x, pid)] for lines in after]
    matcher = difflib.SequenceMatcher(None, said[0], said[1], autojunk=False)
    same = sum(block.size for block in matcher.get_matching_blocks())
    heard = [[x for x in lines if x["kind"] == "chat" and x["listener"] == pid] for lines in after]
    return Persona(
        pid,
        len(said[0]) + len(said[1]) - 2 * same,
        len(said[0]),
        len(said[1]),
        (_mean(heard[0], "interest"), _mean(heard[1], "interest")),
        (_mean(heard[0], "emotion", 0), _mean(heard[1], "emotion", 0)),
        (_mean(heard[0], "emotion", 1), _mean(heard[1], "emotion", 1)),
        (_held(first, pid), _held(second, pid)),
    )


def _says(line: Said, pid: str) -> bool:
    return line["kind"] in ("chat", "reply") and line["speaker"] == pid


def _mean(lines: Sequence[Said], name: str, axis: int | None = None) -> float | None:
    values = [
        float(x[name] if axis is None else x[name][axis])
        for x in lines
        if name in x and (axis is None or len(x[name]) > axis)
    ]
    return sum(values) / len(values) if values else None


def _held(run: Recorded, pid: str) -> int | None:
    """The persona's memories at the end: run.json's count, else its last line's."""
    named = run.record.get("memories")
    if isinstance(named, dict) and pid in named:
        return int(named[pid])
    counted = [x["memories"] for x in run.lines if x["listener"] == pid and "memories" in x]
    return int(counted[-1]) if counted else None


def _verdicts(first: Mapping[str, bool], second: Mapping[str, bool]) -> list[Verdict]:
    keys = sorted(set(first) | set(second))
    return [
        Verdict(key, first.get(key), second.get(key))
        for key in keys
        if first.get(key) != second.get(key)
    ]


def _digest(run: Recorded) -> str | None:
    digests = run.record.get("digests")
    return str(digests.get("sim")) if isinstance(digests, dict) else None


# --- the text ---


def render(diff: RunDiff) -> str:
    if diff.identical:
        return f"identical: {diff.lines[0]} lines, the same verdicts and end state\n"
    names = (str(diff.first), str(diff.second))
    width = max(len(name) for name in names)
    page = [f"{diff.lines[0]} and {diff.lines[1]} lines"]
    if diff.parting is None:
        page.append("the transcripts are the same")
    else:
        p = diff.parting
        page.append(f"they part at line {p.index + 1} (step {p.step}, {outputs.when(p.at)}):")
        for name, line in zip(names, (p.first, p.second), strict=True):
            page.append(f"  {name:<{width}}  {_shown(line)}")
        page += ["", *_personas_table(diff.personas), "", *_recalls(diff, names)]
    page += _changed_verdicts(diff.verdicts)
    page.append(f"end state: {'the same' if diff.same_state else 'differs'}")
    return "\n".join(page) + "\n"


def _shown(line: Said | None) -> str:
    if line is None:
        return "(the transcript has ended)"
    if line["kind"] not in ("chat", "reply"):
        return f"{line['kind']} {line['listener']}: {line['text']}"
    said = f"{line['speaker']} to {line['listener']}: {line['text']}"
    if "interest" in line:
        kept = "remembered" if line.get("conscious") else "not remembered"
        said += f"  [interest {line['interest']:.2f}, {kept}]"
    return said


def _personas_table(personas: Sequence[Persona]) -> list[str]:
    rows = [
        (
            "after the parting",
            "said differently",
            "interest",
            "valence",
            "arousal",
            "memories at the end",
        )
    ]
    for p in personas:
        rows.append(
            (
                p.persona,
                f"{p.said} of {p.said_first}+{p.said_second}",
                _pair(p.interest, "{:.3f}"),
                _pair(p.valence, "{:+.3f}"),
                _pair(p.arousal, "{:.3f}"),
                _pair(p.memories, "{}"),
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _pair(values: tuple[float | int | None, float | int | None], shape: str) -> str:
    a, b = ("-" if v is None else shape.format(v) for v in values)
    return a if a == b else f"{a} -> {b}"


def _recalls(diff: RunDiff, names: tuple[str, str]) -> list[str]:
    if not diff.recalls:
        return [f"recalled the same in all {diff.compared} lines heard in both runs"]
    found = [
        f"recalled differently in {len(diff.recalls)} of {diff.compared} lines heard in both runs:"
    ]
    for recall in diff.recalls[:SHOWN_RECALLS]:
        found.append(
            f"  line {recall.first + 1} / {recall.second + 1} (step {recall.step}), "
            f"{recall.listener}: {_only(recall)}"
        )
    if len(diff.recalls) > SHOWN_RECALLS:
        found.append(f"  ... and {len(diff.recalls) - SHOWN_RECALLS} more")
    return found


def _only(recall: Recall) -> str:
    if not recall.only_first and not recall.only_second:
        return "the same memories in another order"
    return "; ".join(
        f"{len(texts)} only in {which}{_quoted(texts)}"
        for which, texts in (("the first", recall.only_first), ("the second", recall.only_second))
        if texts
    )


def _quoted(texts: Sequence[str]) -> str:
    text = texts[0] if len(texts[0]) <= QUOTED else texts[0][: QUOTED - 3] + "..."
    return f' ("{text}"{", ..." if len(texts) > 1 else ""})'


def _changed_verdicts(verdicts: Sequence[Verdict]) -> list[str]:
    if not verdicts:
        return ["expectations: the same verdicts"]
    shown = {True: "PASS", False: "FAIL", None: "(none)"}
    return ["expectations that changed verdict:"] + [
        f"  {v.key}: {shown[v.first]} -> {shown[v.second]}" for v in verdicts
    ]
