"""report.html: a run at a glance, a page with no outside resources beside its PNG pictures.

Per persona: its interest in what it heard (remembered or not) against its threshold, the
emotion it heard (valence and arousal), and its memories and their mean retention over virtual
time; the grid's field at a few moments; the expectations' verdicts. Nothing in it depends on
the wall clock, so equal runs write byte-equal pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from mem8 import heatmap
from mem8.grid.tiling import joined
from mem8.personas import TRAIT_NAMES
from mem8.sim.runner import Checked, Line, Outcomes
from mem8.sim.scenario import Expectation, Scenario
from mem8.sim.svg import (
    Axis,
    Chart,
    colour,
    duration,
    number_axis,
    rolling_mean,
    thinned,
    time_axis,
)

REPORT = "report.html"
MOST_PERSONAS = 12  # personas drawn one by one; a crowd's others are named, not drawn
MOST_POINTS = 600  # dots or vertices of one series: more are thinned evenly
TREND_SPAN = 15  # a long series' trend: the mean over 1/15 of its lines
PICTURE_SIDE = 256  # pixels of a field's picture, about (whole cells each)
VALENCE, AROUSAL = "#d62728", "#1f77b4"


def write(
    out: Path, scenario: Scenario, outcomes: Outcomes, run: Mapping[str, Any], grid_size: int
) -> None:
    """report.html and the field pictures it shows (field-1.png ...) into the run's directory."""
    pictures = _write_fields(out, outcomes, grid_size, scenario.tiles)
    (out / REPORT).write_text(page(scenario, outcomes, run, pictures), encoding="utf-8")


def _write_fields(
    out: Path, outcomes: Outcomes, grid_size: int, tiles: int
) -> list[tuple[float, str, float]]:
    """Each kept field as a PNG of |field|; (time, file name, peak magnitude) of each."""
    scale = max(1, round(PICTURE_SIDE / grid_size))
    found = []
    for number, (at, kept) in enumerate(outcomes.fields, 1):
        magnitude = np.abs(joined(kept.current, grid_size, tiles))
        name = f"field-{number}.png"
        (out / name).write_bytes(heatmap.png(heatmap.heatmap(magnitude, [], scale)))
        found.append((at, name, float(magnitude.max(initial=0.0))))
    return found


def page(
    scenario: Scenario,
    outcomes: Outcomes,
    run: Mapping[str, Any],
    pictures: Sequence[tuple[float, str, float]],
) -> str:
    drawn, crowd = _drawn(scenario, outcomes)
    body = [
        f"<h1>{escape(scenario.name)} <small>seed {scenario.seed}</small></h1>",
        _summary(scenario, outcomes, run),
        _expectations(scenario, outcomes.checked),
    ]
    if len(scenario.personas) > 1:
        body.append(_overview(scenario, outcomes, drawn))
    body += [_persona(scenario, outcomes, pid) for pid in drawn]
    if crowd:
        names = ", ".join(escape(pid) for pid in crowd)
        body.append(f"<p class=note>Not drawn (they heard least): {names}.</p>")
    body.append(_grid(scenario, pictures))
    return _HEAD.format(title=escape(f"{scenario.name} (seed {scenario.seed})")) + "\n".join(
        [*body, "</body>\n</html>\n"]
    )


def _drawn(scenario: Scenario, outcomes: Outcomes) -> tuple[list[str], list[str]]:
    """The personas drawn one by one (those who heard most, in id order) and the others."""
    heard = {pid: 0 for pid in scenario.personas}
    for line in outcomes.lines:
        if line.kind == "chat" and line.listener in heard:
            heard[line.listener] += 1
    ranked = sorted(heard, key=lambda pid: (-heard[pid], pid))
    drawn = set(ranked[:MOST_PERSONAS])
    return sorted(drawn), sorted(set(heard) - drawn)


# --- the head of the page ---


def _summary(scenario: Scenario, outcomes: Outcomes, run: Mapping[str, Any]) -> str:
    start = _date(scenario.start)
    facts = [
        _count(len(scenario.personas), "persona"),
        f"{scenario.steps} steps of {duration(scenario.step)} from {start} UTC",
        _count(len(outcomes.lines), "transcript line"),
        f"backend {escape(str(run.get('backend', scenario.backend)))}",
        f"encoder {escape(scenario.encoder)}",
        f"{scenario.tiles}x{scenario.tiles} grid regions",
    ]
    links = (
        '<a href="transcript.md">transcript</a> · <a href="transcript.jsonl">as JSON lines</a>'
        ' · <a href="expectations.json">expectations.json</a> · <a href="run.json">run.json</a>'
    )
    parts = [f"<p class=meta>{' · '.join(facts)}</p>", f"<p class=meta>{links}</p>"]
    forked = run.get("forked")
    if isinstance(forked, Mapping):
        changes = ", ".join(str(s) for s in forked.get("set", [])) or "no change"
        parts.append(
            f"<p class=meta>Forked from {escape(str(forked.get('from')))} at step "
            f"{escape(str(forked.get('at')))} with {escape(changes)}.</p>"
        )
    return "\n".join(parts)


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" if number == 1 else f"{number} {thing}s"


def _expectations(scenario: Scenario, checked: Sequence[Checked]) -> str:
    """The verdicts in the scenario's order (they were checked in the timeline's)."""
    if not checked:
        return "<h2>Expectations</h2>\n<p class=note>The scenario expects nothing.</p>"
    place = {x.key: i for i, x in enumerate(scenario.expectations)}
    checked = sorted(checked, key=lambda c: place.get(c.expectation.key, len(place)))
    held = sum(c.held for c in checked)
    rows = "\n".join(
        f"<tr><td class={'pass' if c.held else 'fail'}>{'PASS' if c.held else 'FAIL'}</td>"
        f"<td>{escape(c.expectation.key)}</td><td>{escape(c.expectation.persona)}</td>"
        f"<td>{escape(_wanted(c.expectation))}</td>"
        f"<td>{escape(_moment(scenario, c.expectation.at))}</td><td>{escape(c.found)}</td></tr>"
        for c in checked
    )
    return (
        f"<h2>Expectations: {held} of {len(checked)} held</h2>\n<table class=expect>"
        "<tr><th></th><th>key</th><th>persona</th><th>expected</th><th>when</th>"
        f"<th>found</th></tr>\n{rows}\n</table>"
    )


def _wanted(expectation: Expectation) -> str:
    """What an expectation asks for, in a phrase."""
    kind = expectation.kind
    if kind == "recall":
        verb = "does not recall" if expectation.absent else "recalls"
        return (
            f'{verb} "{expectation.text}" in the first {expectation.within} '
            f'for "{expectation.query}"'
        )
    if kind == "said":
        return f'says "{expectation.text}"'
    if kind == "never_said":
        return f'never says "{expectation.text}"'
    what = {
        "interest": "mean interest",
        "memories": "memories",
        "retention": f'retention of "{expectation.text}"',
    }.get(kind, f"mean {expectation.measure} heard")
    low, high = _bounds(expectation)
    shown = "{:g}" if kind == "memories" else "{:.2f}"
    if low is None:
        return f"{what} at most {shown.format(high)}"
    if high is None:
        return f"{what} at least {shown.format(low)}"
    return f"{what} from {shown.format(low)} to {shown.format(high)}"


def _bounds(expectation: Expectation) -> tuple[float | None, float | None]:
    """An expectation's bounds, None for a bound the scenario left at its widest."""
    widest = {"memories": (0.0, 1e9), "retention": (0.0, 1.0)}.get(expectation.kind, (-1.0, 1.0))
    low = None if expectation.low <= widest[0] else expectation.low
    high = None if expectation.high >= widest[1] else expectation.high
    if low is None and high is None:
        return widest
    return low, high


def _moment(scenario: Scenario, at: float | None) -> str:
    return "at the end" if at is None else f"+{duration(at - scenario.start)}"


# --- charts ---


def _overview(scenario: Scenario, outcomes: Outcomes, drawn: Sequence[str]) -> str:
    chart = Chart(
        "Memories held, every persona drawn",
        _time(scenario),
        number_axis(0, _most_memories(outcomes, drawn), "memories"),
        width=1140,
        height=240,
    )
    for pid in drawn:
        chart.line(_memory_points(outcomes, pid), _colour(scenario, pid))
    keys = " ".join(
        f'<span class=key style="color:{_colour(scenario, pid)}">&#9632; {escape(pid)}</span>'
        for pid in drawn
    )
    return f"<h2>Memory</h2>\n{chart.render()}\n<p>{keys}</p>"


def _persona(scenario: Scenario, outcomes: Outcomes, pid: str) -> str:
    persona = scenario.personas[pid]
    heard = [x for x in outcomes.lines if x.kind == "chat" and x.listener == pid]
    traits = ", ".join(f"{name} {getattr(persona.traits, name):.2f}" for name in TRAIT_NAMES)
    kept = sum(bool(x.conscious) for x in heard)
    interests = [x.interest for x in heard if x.interest is not None]
    facts = [f"heard {len(heard)} lines, remembered {kept}"]
    if interests:
        facts.append(f"mean interest {sum(interests) / len(interests):.2f}")
    last = _last_sample(outcomes, pid)
    if last is not None:
        facts.append(f"{last} memories at the end")
    marks = _interventions(outcomes, pid)
    charts = [
        _interest_chart(scenario, heard, pid, marks),
        _emotion_chart(scenario, heard, marks),
        _memory_chart(scenario, outcomes, pid, marks),
    ]
    return (
        f'<section class=persona><h2 style="border-color:{_colour(scenario, pid)}">'
        f"{escape(pid)} <small>{escape(persona.name)}</small></h2>\n"
        f"<p class=meta>{escape(traits)}; threshold {persona.interest_threshold:.2f}</p>\n"
        f"<p>{'; '.join(facts)}.</p>\n<div class=charts>{''.join(charts)}</div></section>"
    )


def _interest_chart(
    scenario: Scenario, heard: Sequence[Line], pid: str, marks: Sequence[tuple[float, str]]
) -> str:
    judged = [x for x in heard if x.interest is not None]
    width = max(1, round(len(judged) / TREND_SPAN))
    note = "it heard nothing" if not judged else ""
    if width > 1:
        note = f"the trend: the mean over the last {width} lines"
    chart = Chart(
        "Interest in what it heard", _time(scenario), number_axis(0, 1, "interest"), note=note
    )
    threshold = scenario.personas[pid].interest_threshold
    chart.rule_y(threshold, f"threshold {threshold:.2f}")
    _rules(chart, marks)
    hue = _colour(scenario, pid)
    for remembered, label in ((True, "remembered"), (False, "not remembered")):
        points = [(x.at, x.interest or 0.0) for x in judged if bool(x.conscious) == remembered]
        chart.dots(thinned(points, MOST_POINTS), hue, label, filled=remembered)
    if width > 1:
        points = [(x.at, x.interest or 0.0) for x in judged]
        chart.line(thinned(rolling_mean(points, width), MOST_POINTS), "#333", "trend")
    return chart.render()


def _emotion_chart(
    scenario: Scenario, heard: Sequence[Line], marks: Sequence[tuple[float, str]]
) -> str:
    felt = [x for x in heard if len(x.emotion) >= 2]
    width = max(1, round(len(felt) / TREND_SPAN))
    note = "it heard nothing" if not felt else ""
    if width > 1:
        note = f"each dot a line heard; the lines their mean over the last {width}"
    chart = Chart(
        "Emotion of what it heard", _time(scenario), number_axis(-1, 1, "emotion"), note=note
    )
    chart.rule_y(0.0, "")
    _rules(chart, marks)
    for axis, hue, label in ((0, VALENCE, "valence"), (1, AROUSAL, "arousal")):
        points = [(x.at, x.emotion[axis]) for x in felt]
        chart.dots(thinned(points, MOST_POINTS), hue, faint=width > 1)
        chart.line(thinned(rolling_mean(points, width), MOST_POINTS), hue, label)
    return chart.render()


def _memory_chart(
    scenario: Scenario, outcomes: Outcomes, pid: str, marks: Sequence[tuple[float, str]]
) -> str:
    chart = Chart(
        "Memories and their retention",
        _time(scenario),
        number_axis(0, _most_memories(outcomes, [pid]), "memories"),
        right=number_axis(0, 1, "mean retention"),
    )
    _rules(chart, marks)
    chart.line(_memory_points(outcomes, pid), _colour(scenario, pid), "memories")
    retention = [
        (float(s["at"]), float(s["personas"][pid]["retention"]))
        for s in outcomes.samples
        if s["personas"].get(pid, {}).get("retention") is not None
    ]
    chart.line(retention, "#555", "retention", dashed=True, right=True)
    return chart.render()


def _memory_points(outcomes: Outcomes, pid: str) -> list[tuple[float, float]]:
    return thinned(
        [
            (float(s["at"]), float(s["personas"][pid]["memories"]))
            for s in outcomes.samples
            if pid in s["personas"]
        ],
        MOST_POINTS,
    )


def _most_memories(outcomes: Outcomes, pids: Sequence[str]) -> float:
    counts = [
        float(s["personas"][pid]["memories"])
        for s in outcomes.samples
        for pid in pids
        if pid in s["personas"]
    ]
    return max(counts, default=0.0) or 1.0


def _last_sample(outcomes: Outcomes, pid: str) -> int | None:
    if not outcomes.samples or pid not in outcomes.samples[-1]["personas"]:
        return None
    return int(outcomes.samples[-1]["personas"][pid]["memories"])


def _interventions(outcomes: Outcomes, pid: str) -> list[tuple[float, str]]:
    """The changes and forgettings that befell the persona, to mark on its charts."""
    return [
        (x.at, x.text if x.kind == "change" else f"forget {x.text}")
        for x in outcomes.lines
        if x.listener == pid and x.kind in ("change", "forget")
    ]


def _rules(chart: Chart, marks: Sequence[tuple[float, str]]) -> None:
    for at, label in marks:
        chart.rule_x(at, label)


def _time(scenario: Scenario) -> Axis:
    return time_axis(scenario.start, scenario.end, "virtual time since the start")


def _colour(scenario: Scenario, pid: str) -> str:
    return colour(sorted(scenario.personas).index(pid))


# --- the grid ---


def _grid(scenario: Scenario, pictures: Sequence[tuple[float, str, float]]) -> str:
    figures = "\n".join(
        f'<figure><img src="{name}" alt="|field| at +{duration(at - scenario.start)}">'
        f"<figcaption>+{escape(duration(at - scenario.start))} ({_date(at)}), "
        f"peak |field| {peak:.3g}</figcaption></figure>"
        for at, name, peak in pictures
    )
    return (
        "<h2>The memory grid</h2>\n<p class=note>|field| over the whole grid on a log scale "
        "(three decades below each picture's own peak; viridis, bright is strong), at "
        f"{len(pictures)} moments of the run.</p>\n<div class=fields>{figures}</div>"
    )


def _date(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1160px;
       margin: 1.5em auto; padding: 0 1em; }}
h1 small, h2 small {{ color: #777; font-weight: normal; }}
h2 {{ font-size: 1.2em; margin: 1.6em 0 .3em; }}
section.persona h2 {{ border-left: 6px solid; padding-left: .4em; }}
.meta, .note {{ color: #666; margin: .2em 0; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 6px; }}
svg.chart {{ font-size: 10px; }}
svg .title {{ font-size: 12px; font-weight: 600; fill: #333; }}
svg .note {{ fill: #999; }}
svg .tick {{ fill: #666; }}
svg .rule {{ fill: #555; paint-order: stroke; stroke: #fff; stroke-width: 3px; }}
svg .axis {{ fill: #444; }}
svg .legend {{ fill: #333; }}
table.expect {{ border-collapse: collapse; }}
table.expect td, table.expect th {{ padding: 2px 8px; border-bottom: 1px solid #eee;
                                    text-align: left; vertical-align: top; }}
td.pass {{ color: #fff; background: #2e7d32; font-weight: 600; }}
td.fail {{ color: #fff; background: #c62828; font-weight: 600; }}
.key {{ margin-right: 1em; }}
.fields {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; }}
figure img {{ width: 270px; height: 270px; image-rendering: pixelated; display: block; }}
figcaption {{ color: #666; font-size: 12px; max-width: 270px; }}
</style>
</head>
<body>
"""
