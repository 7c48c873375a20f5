"""`mem8 sim sweep`: a scenario run for each value of a trait (or each pair of values of two) and
each of several seeds, in parallel processes (or as Ray tasks: `mem8.sim.cluster`), each run into
a directory of its own; then what each value did, with its spread across the seeds, as a table,
sweep.json and sweep.html."""

from __future__ import annotations

import dataclasses
import itertools
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from mem8.config import load_settings
from mem8.errors import ConfigError
from mem8.sim.runner import Outcomes, changed
from mem8.sim.scenario import Scenario, check_changeable, highest, load
from mem8.sim.svg import Chart, colour, number_axis

SWEEP_JSON = "sweep.json"
SWEEP_HTML = "sweep.html"
METRICS = {  # per persona: its name in sweep.json -> what a reader is told
    "memories": "memories at the end",
    "interest": "mean interest",
    "remembered": "share of lines remembered",
}
Values = dict[str, float]  # "persona.trait" -> the value it was given
Finished = Iterator[tuple[int, dict[str, Any]]]  # (a job's index, its figures) as each finishes


@dataclass(frozen=True)
class Vary:
    """A trait set to each of `values` in turn, on one persona, from the start of the run."""

    persona: str
    name: str
    values: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"{self.persona}.{self.name}"


def parse_vary(text: str, scenario: Scenario) -> Vary:
    """PERSONA.TRAIT=A..B:N: N values from A to B, both included, evenly spaced."""
    try:
        target, span = text.split("=", 1)
        persona, name = target.rsplit(".", 1)
        bounds, count = span.split(":", 1)
        low, high = (float(x) for x in bounds.split("..", 1))
        n = int(count)
    except ValueError as error:
        raise ConfigError(f"--vary {text}: must be PERSONA.TRAIT=A..B:N") from error
    check_changeable(scenario, persona, name, f"--vary {text}")
    top = highest(name)
    if not (0.0 <= low <= top and 0.0 <= high <= top and n >= 1):
        raise ConfigError(f"--vary {text}: values from 0 to {top:g}, and N at least 1")
    values = [low] if n == 1 else [round(low + (high - low) * i / (n - 1), 10) for i in range(n)]
    return Vary(persona, name, tuple(values))


def varied(scenario: Scenario, values: Mapping[str, float]) -> Scenario:
    """The scenario with each PERSONA.TRAIT set to its value from the start."""
    personas = dict(scenario.personas)
    for key, value in values.items():
        persona, name = key.rsplit(".", 1)
        personas[persona] = changed(personas[persona], {name: value})
    return dataclasses.replace(scenario, personas=personas)


def points(varies: Sequence[Vary]) -> list[Values]:
    """Every combination of the varied values, the first trait's slowest."""
    keys = [v.key for v in varies]
    return [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(v.values for v in varies))
    ]


# --- one run, in a worker process ---


@dataclass(frozen=True)
class Job:
    """One run of a sweep, as a worker process (or a Ray task) needs it (picklable)."""

    scenario: Path
    values: Values
    seed: int
    out: Path
    backend: str

    @property
    def name(self) -> str:
        shown = ",".join(f"{key}={value:g}" for key, value in self.values.items())
        return f"{shown}-seed{self.seed}"


def run_job(job: Job) -> dict[str, Any]:
    """Runs the job into its directory; its figures (see `metrics`)."""
    # Imported here: commands imports this module to wire `sweep`.
    from mem8.sim.commands import run_scenario

    job.out.mkdir(parents=True)
    base = load_settings()
    scenario = varied(load(job.scenario, base).with_seed(job.seed), job.values)
    outcomes = run_scenario(
        scenario, job.out, job.backend, base, {"varied": job.values}, progress=False
    )
    return metrics(outcomes, sorted(scenario.personas))


def metrics(outcomes: Outcomes, personas: Sequence[str]) -> dict[str, Any]:
    """Per persona its memories at the end, its mean interest and the share of what it heard
    that it remembered (None when it heard nothing); the share of expectations held."""
    last = outcomes.samples[-1]["personas"] if outcomes.samples else {}
    found: dict[str, Any] = {}
    for pid in personas:
        heard = [x for x in outcomes.lines if x.kind == "chat" and x.listener == pid]
        interests = [x.interest for x in heard if x.interest is not None]
        found[pid] = {
            "memories": last.get(pid, {}).get("memories"),
            "interest": sum(interests) / len(interests) if interests else None,
            "remembered": sum(bool(x.conscious) for x in heard) / len(heard) if heard else None,
        }
    checked = outcomes.checked
    held = sum(c.held for c in checked) / len(checked) if checked else None
    return {"personas": found, "expectations": held}


# --- the sweep ---


Place = Callable[[Sequence[Job]], Finished]  # where the runs run: processes, a Ray cluster


def sweep(
    scenario: Scenario, varies: Sequence[Vary], seeds: int, out: Path, backend: str, place: Place
) -> dict[str, Any]:
    """Every run of the sweep, run where `place` runs them; the sweep's document (sweep.json),
    the same wherever they ran."""
    if len({v.key for v in varies}) != len(varies):
        raise ConfigError("--vary: each PERSONA.TRAIT once")
    todo = [
        Job(scenario.path, values, scenario.seed + k, Path(), backend)
        for values in points(varies)
        for k in range(seeds)
    ]
    todo = [dataclasses.replace(job, out=out / job.name) for job in todo]
    figures = _run_all(todo, place)
    runs = [
        {"values": job.values, "seed": job.seed, "dir": job.out.name, "metrics": figures[i]}
        for i, job in enumerate(todo)
    ]
    summary = [
        _point(values, [r for r in runs if r["values"] == values]) for values in points(varies)
    ]
    return {
        "scenario": str(scenario.path.resolve()),
        "name": scenario.name,
        "backend": backend,
        "seeds": [scenario.seed + k for k in range(seeds)],
        "vary": [{"persona": v.persona, "name": v.name, "values": list(v.values)} for v in varies],
        "personas": sorted(scenario.personas),
        "runs": runs,
        "points": summary,
        # None with one seed: nothing to compare
        "same_across_seeds": all(_same(point) for point in summary) if seeds > 1 else None,
    }


def _run_all(todo: Sequence[Job], place: Place) -> list[dict[str, Any]]:
    """Each job's figures, in the jobs' order; progress on standard error as they finish."""
    figures: list[dict[str, Any]] = [{} for _ in todo]
    started = time.monotonic()
    for done, (i, found) in enumerate(place(todo), 1):
        figures[i] = found
        spent = time.monotonic() - started
        print(f"{done}/{len(todo)} {todo[i].name} ({spent:.0f} s)", file=sys.stderr, flush=True)
    return figures


def in_processes(jobs: int) -> Place:
    """Runs `jobs` at a time, each in a process of this machine. Workers are spawned, not
    forked: the parent may hold threads (numba's, trio's)."""

    def place(todo: Sequence[Job]) -> Finished:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            waiting = {pool.submit(run_job, job): i for i, job in enumerate(todo)}
            for future in as_completed(waiting):
                yield waiting[future], future.result()

    return place


def _point(values: Values, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A point's figures across its seeds: mean, standard deviation, least and most."""
    personas = sorted(runs[0]["metrics"]["personas"]) if runs else []
    return {
        "values": values,
        "personas": {
            pid: {
                name: spread([r["metrics"]["personas"][pid][name] for r in runs])
                for name in METRICS
            }
            for pid in personas
        },
        "expectations": spread([r["metrics"]["expectations"] for r in runs]),
    }


def spread(values: Sequence[float | None]) -> dict[str, float] | None:
    """Mean, sample standard deviation (0 for one value), least and most, of the values that
    are there; None if none is."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    sd = statistics.stdev(kept) if len(kept) > 1 else 0.0
    return {
        "mean": statistics.fmean(kept),
        "sd": sd,
        "min": min(kept),
        "max": max(kept),
        "n": len(kept),
    }


def _same(point: Mapping[str, Any]) -> bool:
    spreads = [point["expectations"], *(s for p in point["personas"].values() for s in p.values())]
    return all(s is None or s["min"] == s["max"] for s in spreads)


def write(out: Path, document: Mapping[str, Any]) -> None:
    (out / SWEEP_JSON).write_text(
        json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (out / SWEEP_HTML).write_text(page(document), encoding="utf-8")


# --- the table ---


def table(document: Mapping[str, Any]) -> str:
    """The sweep as text: a row per point and persona; a point's first row also holds the
    share of expectations held."""
    keys = [f"{v['persona']}.{v['name']}" for v in document["vary"]]
    rows = [[*keys, "persona", *METRICS.values(), "expectations held"]]
    for point in document["points"]:
        for n, (pid, figures) in enumerate(point["personas"].items()):
            head = [f"{point['values'][key]:g}" if n == 0 else "" for key in keys]
            shown = [_spread(figures[name], name) for name in METRICS]
            rows.append(
                [*head, pid, *shown, _spread(point["expectations"], "share") if n == 0 else ""]
            )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    seeds = ", ".join(str(s) for s in document["seeds"])
    text.insert(0, f"{document['name']}: {len(document['runs'])} runs, seeds {seeds}")
    text.insert(1, "each figure: mean ±standard deviation (least..most) across the seeds")
    if document["same_across_seeds"]:
        text.append(_SAME)
    return "\n".join(text) + "\n"


_SAME = (
    "every seed gave the same figures: with the scripted backend a seed only changes the order "
    "of simultaneous events and the LLM's seed, so the spreads are 0"
)


def _spread(found: Mapping[str, float] | None, name: str) -> str:
    if found is None:
        return "-"
    shape = "{:.1f}" if name == "memories" else "{:.3f}"
    mean, sd, low, high = (shape.format(found[k]) for k in ("mean", "sd", "min", "max"))
    return f"{mean} ±{sd} ({low}..{high})"


# --- the page ---


def page(document: Mapping[str, Any]) -> str:
    """sweep.html: a chart per figure against the first varied trait, a line per persona (and
    value of a second trait), its spread across seeds as a bar; then the table."""
    first = document["vary"][0]
    x_key = f"{first['persona']}.{first['name']}"
    series = _series(document)
    charts = [
        _chart(document, series, x_key, name, title)
        for name, title in [*METRICS.items(), ("expectations", "share of expectations held")]
    ]
    keys = " ".join(
        f'<span class=key style="color:{colour(i)}">&#9632; {escape(label)}</span>'
        for i, (label, _) in enumerate(series)
    )
    varied = ", ".join(f"{v['persona']}.{v['name']}" for v in document["vary"])
    seeds = ", ".join(str(s) for s in document["seeds"])
    name = escape(document["name"])
    head = [
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{name} '
        f"sweep</title>\n<style>{_STYLE}</style>\n</head>\n<body>",
        f"<h1>{name} <small>sweep of {escape(varied)}</small></h1>",
        f"<p class=note>{len(document['runs'])} runs, backend {escape(document['backend'])}, "
        f"seeds {seeds}. Each dot is the mean across the seeds, its bar the least to the most."
        "</p>",
    ]
    if document["same_across_seeds"]:
        head.append(f"<p class=note>{escape(_SAME)}.</p>")
    body = [
        f"<p>{keys}</p>",
        f"<div class=charts>{''.join(charts)}</div>",
        f"<pre>{escape(table(document))}</pre>",
        "</body>\n</html>\n",
    ]
    return "\n".join([*head, *body])


def _series(document: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """The lines drawn: per persona (and value of the other varied traits), the points on it
    as (persona, point)."""
    x_key = f"{document['vary'][0]['persona']}.{document['vary'][0]['name']}"
    others = {
        tuple((k, v) for k, v in p["values"].items() if k != x_key) for p in document["points"]
    }
    found = []
    for rest in sorted(others):
        on = [p for p in document["points"] if all(p["values"][k] == v for k, v in rest)]
        for pid in document["personas"]:
            label = ", ".join([pid, *(f"{k}={v:g}" for k, v in rest)])
            found.append((label, [(pid, p) for p in on]))
    return found


def _chart(
    document: Mapping[str, Any],
    series: Sequence[tuple[str, list[tuple[str, dict[str, Any]]]]],
    x_key: str,
    name: str,
    title: str,
) -> str:
    spreads = [
        (float(p["values"][x_key]), _figure(pid, p, name)) for _, line in series for pid, p in line
    ]
    tops = [s["max"] for _, s in spreads if s is not None]
    if name == "memories":
        y = number_axis(0, max(tops, default=0.0) or 1.0, "memories")
    else:
        y = number_axis(0, 1, "interest" if name == "interest" else "share")
    xs = document["vary"][0]["values"]
    chart = Chart(title, number_axis(min(xs), max(xs), x_key), y, width=560, height=260)
    first = document["personas"][0]
    for i, (_, line) in enumerate(series):
        if name == "expectations" and line and line[0][0] != first:
            continue  # the same for every persona: a line per value of the other traits
        found = [(float(p["values"][x_key]), _figure(pid, p, name)) for pid, p in line]
        kept = [(x, s) for x, s in found if s is not None]
        hue = "#555" if name == "expectations" and len(document["vary"]) == 1 else colour(i)
        for x, s in kept:
            chart.span(x, s["min"], s["max"], hue)
        means = [(x, s["mean"]) for x, s in kept]
        chart.line(means, hue)
        chart.dots(means, hue)
    return chart.render()


def _figure(pid: str, point: Mapping[str, Any], name: str) -> dict[str, float] | None:
    if name == "expectations":
        found: dict[str, float] | None = point["expectations"]
        return found
    figures: dict[str, float] | None = point["personas"][pid][name]
    return figures


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1160px; margin: 1.5em auto;
       padding: 0 1em; }
h1 small { color: #777; font-weight: normal; }
.note { color: #666; }
.key { margin-right: 1em; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
svg.chart { font-size: 10px; }
svg .title { font-size: 12px; font-weight: 600; fill: #333; }
svg .tick, svg .rule { fill: #666; }
svg .axis { fill: #444; }
pre { font-size: 12px; background: #f6f6f6; padding: .6em; overflow-x: auto; }
"""
