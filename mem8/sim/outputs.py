"""What a run leaves in its directory: the transcript (JSON lines and a readable page), the
expectations' verdicts, and run.json (what ran, with what, and how it ended)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mem8.sim import report
from mem8.sim.runner import Checked, Line, Outcomes
from mem8.sim.scenario import Perceive, Scenario

TRANSCRIPT = "transcript.jsonl"
READABLE = "transcript.md"
EXPECTATIONS = "expectations.json"
RUN = "run.json"
JOURNAL = "journal"
STORE = "sim.db"


def when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def transcript_lines(lines: list[Line]) -> str:
    """One JSON object a line, keys sorted: byte for byte the same in equal runs."""
    return "".join(
        json.dumps(line.to_json(), sort_keys=True, ensure_ascii=False) + "\n" for line in lines
    )


def readable(scenario: Scenario, outcomes: Outcomes) -> str:
    page = [f"# {scenario.name} (seed {scenario.seed})", ""]
    for line in outcomes.lines:
        page.append(_readable_line(line))
    page += ["", "## Expectations", ""]
    page += [_verdict(checked) for checked in outcomes.checked] or ["(none)"]
    return "\n".join(page) + "\n"


def _readable_line(line: Line) -> str:
    head = f"- **{when(line.at)}** (step {line.step})"
    if line.kind in ("chat", "reply"):
        said = f"{head} {line.speaker} to {line.listener}: {line.text}"
        if line.interest is not None:
            mark = "remembered" if line.conscious else "not remembered"
            said += f"  \n  _interest {line.interest:.2f}, {mark}"
            if line.recalled:
                said += f", recalled {len(line.recalled)}"
            said += "_"
        return said
    return f"{head} _{line.kind}_ {line.listener}: {line.text}"


def _verdict(checked: Checked) -> str:
    expectation = checked.expectation
    mark = "PASS" if checked.held else "FAIL"
    return (
        f"- {mark} {expectation.key} ({expectation.kind}, {expectation.persona}): {checked.found}"
    )


def expectations_document(outcomes: Outcomes) -> list[dict[str, Any]]:
    return [
        {
            "key": c.expectation.key,
            "kind": c.expectation.kind,
            "persona": c.expectation.persona,
            "at": c.expectation.at,
            "held": c.held,
            "found": c.found,
        }
        for c in outcomes.checked
    ]


def inputs_of(scenario: Scenario) -> dict[str, str]:
    """The SHA-256 of every file the scenario perceives, so a replay knows it has the same."""
    files = {e.action.path for e in scenario.events if isinstance(e.action, Perceive)}
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def write(
    out: Path, scenario: Scenario, outcomes: Outcomes, run: dict[str, Any], grid_size: int
) -> None:
    """The run's files (the journal and the store are already there), report.html and its
    pictures of the grid (`grid_size` cells a side) among them."""
    (out / TRANSCRIPT).write_text(transcript_lines(outcomes.lines), encoding="utf-8")
    (out / READABLE).write_text(readable(scenario, outcomes), encoding="utf-8")
    document = expectations_document(outcomes)
    (out / EXPECTATIONS).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    record = {
        **run,
        "scenario": str(scenario.path.resolve()),
        "scenario_sha256": scenario.digest,
        "inputs": inputs_of(scenario),
        "name": scenario.name,
        "seed": scenario.seed,
        "lines": len(outcomes.lines),
        "expectations": {
            "held": sum(c.held for c in outcomes.checked),
            "failed": sum(not c.held for c in outcomes.checked),
        },
        "digests": outcomes.digests,
        "grid_size": grid_size,
        "memories": final_memories(outcomes),
    }
    (out / RUN).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    report.write(out, scenario, outcomes, record, grid_size)


def final_memories(outcomes: Outcomes) -> dict[str, int]:
    """Each persona's memories at the end of the run (its last sample)."""
    if not outcomes.samples:
        return {}
    return {pid: int(s["memories"]) for pid, s in outcomes.samples[-1]["personas"].items()}


def read_run(out: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((out / RUN).read_text(encoding="utf-8"))
    return found
