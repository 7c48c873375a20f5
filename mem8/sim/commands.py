"""`mem8 sim ...`: run a scenario, replay a run without any model, fork it at a step with a
change, diff two runs, sweep a scenario over values of traits and seeds. Exit codes: 0 every
expectation held (or the replay matched, the runs are identical, the sweep ran), 1 one did not
(or they differ), 2 a bad scenario or run directory."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import trio

from mem8.backends.base import LLMBackend
from mem8.backends.fake import ScriptedLLM
from mem8.backends.select import choose_backends
from mem8.clock import VirtualClock
from mem8.config import RUNTIMES, Settings, load_settings
from mem8.errors import ConfigError
from mem8.sim import diff, outputs, sweep
from mem8.sim.runner import Outcomes, PlayBack, Run, recorded_outcomes
from mem8.sim.scenario import (
    Change,
    Event,
    Scenario,
    ScenarioError,
    check_changeable,
    highest,
    load,
)


def add_commands(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="run a scenario into a directory")
    run.add_argument("scenario", type=Path)
    run.add_argument("--out", type=Path, help="the run's directory (default runs/NAME-seedN)")
    run.add_argument(
        "--backend", help="the LLM backend, as serve --backend (default: the scenario's)"
    )
    run.add_argument("--seed", type=int, help="instead of the scenario's")
    run.add_argument("--tiles", type=int, help="grid regions per side, instead of the scenario's")
    run.add_argument("--force", action="store_true", help="replace an existing run directory")
    run.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="where grid regions and personas run: here, or in Ray actors (MEM8_RUNTIME)",
    )
    replay = actions.add_parser("replay", help="re-run a run with its recorded outputs and check")
    replay.add_argument("run_dir", type=Path)
    fork = actions.add_parser("fork", help="continue a run from a step with a change")
    fork.add_argument("run_dir", type=Path)
    fork.add_argument("--at", type=int, required=True, help="the step from which it differs")
    fork.add_argument("--set", action="append", default=[], metavar="PERSONA.NAME=VALUE")
    fork.add_argument("--out", type=Path, help="the fork's directory (default RUN_DIR-fork-STEP)")
    fork.add_argument("--backend", help="the backend from the step on (default: the run's)")
    fork.add_argument("--force", action="store_true", help="replace an existing directory")
    sweep_ = actions.add_parser("sweep", help="a scenario over values of traits and seeds")
    sweep_.add_argument("scenario", type=Path)
    sweep_.add_argument(
        "--vary",
        action="append",
        required=True,
        metavar="PERSONA.TRAIT=A..B:N",
        help="N values from A to B; twice for a grid of values",
    )
    sweep_.add_argument(
        "--seeds", type=int, default=1, help="seeds per value (the scenario's, +1 ...)"
    )
    sweep_.add_argument(
        "--jobs",
        type=int,
        help="runs at once (default: 2 processes; with --runtime ray, the cluster's CPUs, or a "
        "local cluster of this machine's cores)",
    )
    sweep_.add_argument(
        "--runtime",
        choices=("local", "ray"),
        default="local",
        help="local: processes of this machine; ray: Ray tasks (the ray extra)",
    )
    sweep_.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="a running Ray cluster (or auto); without it, a local one for the sweep",
    )
    sweep_.add_argument("--out", type=Path, help="the sweep's directory (default runs/NAME-sweep)")
    sweep_.add_argument("--backend", help="the LLM backend (default: the scenario's)")
    sweep_.add_argument("--force", action="store_true", help="replace an existing directory")
    diff = actions.add_parser("diff", help="where two runs part, and how they differ after")
    diff.add_argument("run_dir", type=Path)
    diff.add_argument("other_dir", type=Path)
    diff.add_argument("--json", action="store_true", help="machine-readable output")


def main(arguments: argparse.Namespace) -> int:
    try:
        if arguments.action == "run":
            return _run(arguments)
        if arguments.action == "replay":
            return _replay(arguments.run_dir)
        if arguments.action == "diff":
            return _diff(arguments)
        if arguments.action == "sweep":
            return _sweep(arguments)
        return _fork(arguments)
    except ConfigError as error:  # ScenarioError too: a bad scenario or run directory
        print(f"mem8 sim: {error}", file=sys.stderr)
        return 2


# --- run ---


def _run(arguments: argparse.Namespace) -> int:
    base = load_settings(overrides={"runtime": arguments.runtime})
    scenario = load(arguments.scenario, base)
    if arguments.seed is not None:
        scenario = scenario.with_seed(arguments.seed)
    if arguments.tiles is not None:
        scenario = dataclasses.replace(scenario, tiles=arguments.tiles)
    out = arguments.out or Path("runs") / f"{scenario.name}-seed{scenario.seed}"
    _fresh(out, arguments.force)
    outcomes = run_scenario(scenario, out, arguments.backend or scenario.backend, base)
    return _verdict(out, outcomes)


def run_scenario(
    scenario: Scenario,
    out: Path,
    backend: str,
    base: Settings,
    record: dict[str, Any] | None = None,
    progress: bool = True,
) -> Outcomes:
    """Runs the scenario live into the (empty) directory and writes the run's files; `record`
    adds to run.json."""
    settings = sim_settings(base, scenario, out, backend)
    outcomes = trio.run(_live, scenario, settings, out, progress)
    run = {"backend": backend, "tiles": scenario.tiles, **(record or {})}
    outputs.write(out, scenario, outcomes, run, settings.grid_size)
    return outcomes


async def _live(scenario: Scenario, settings: Settings, out: Path, progress: bool) -> Outcomes:
    backends = await sim_backends(scenario, settings)
    bar = _Bar() if progress else None
    run = Run(scenario, out, backends, VirtualClock(scenario.start), settings, progress=bar)
    try:
        return await run()
    finally:
        if bar is not None:
            bar.done()


async def sim_backends(scenario: Scenario, settings: Settings) -> dict[str, LLMBackend]:
    """Each persona's backend, as the server picks them; the scripted one says the persona's
    lines of the scenario's [script] in turn (else it echoes)."""
    if settings.llm_backend == "scripted":
        return {pid: ScriptedLLM(cycle=scenario.script.get(pid, ())) for pid in scenario.personas}
    return await choose_backends(settings)


def sim_settings(base: Settings, scenario: Scenario, out: Path, backend: str) -> Settings:
    """The server's settings for a run: its own store and journal in `out`, the scenario's
    personas, encoder and grid, the chosen backend."""
    return dataclasses.replace(
        base,
        storage=str(out / outputs.STORE),
        journal=str(out / outputs.JOURNAL),
        personas=scenario.personas,
        encoder=scenario.encoder,
        grid_tiles=scenario.tiles,
        llm_backend=backend,
        config_path="",
    )


def _fresh(out: Path, force: bool) -> None:
    if out.exists():
        if not force:
            raise ConfigError(f"{out} exists: choose another --out, or --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _verdict(out: Path, outcomes: Outcomes) -> int:
    held = sum(c.held for c in outcomes.checked)
    failed = [c for c in outcomes.checked if not c.held]
    print(f"{len(outcomes.lines)} lines, expectations {held} held, {len(failed)} failed: {out}")
    for checked in failed:
        print(f"FAIL {checked.expectation.key} ({checked.expectation.kind}): {checked.found}")
    return 1 if failed else 0


class _Bar:
    """Progress on standard error: virtual time, step, lines, the last listener's memories;
    one line rewritten on a terminal, a line every 50 transcript lines elsewhere."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, at: float, step: int, outcomes: Outcomes) -> None:
        memories = next((x.memories for x in reversed(outcomes.lines) if x.memories), 0)
        text = f"{outputs.when(at)}  step {step}  lines {len(outcomes.lines)}  memories {memories}"
        if self.tty:
            print(f"\r{text}   ", end="", file=sys.stderr, flush=True)
        elif len(outcomes.lines) // 50 > self.shown:
            self.shown = len(outcomes.lines) // 50
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)


# --- replay ---


def _replay(run_dir: Path) -> int:
    record, scenario = _recorded(run_dir)
    outcomes_of = recorded_outcomes(run_dir / outputs.JOURNAL)
    with tempfile.TemporaryDirectory(prefix="mem8-sim-replay-") as scratch:
        out = Path(scratch)
        base = load_settings()
        settings = sim_settings(base, scenario, out, "scripted")
        playback = PlayBack(outcomes_of)
        backends: dict[str, LLMBackend] = dict.fromkeys(scenario.personas, playback)
        outcomes = trio.run(_played, scenario, settings, out, backends)
        again = outputs.transcript_lines(outcomes.lines)
    original = (run_dir / outputs.TRANSCRIPT).read_text(encoding="utf-8")
    first = _first_difference(original.splitlines(), again.splitlines())
    same_state = outcomes.digests == record.get("digests")
    print(f"lines: {len(again.splitlines())} replayed, {len(original.splitlines())} recorded")
    if first is not None:
        print(f"transcript DIFFERS from line {first + 1}")
    print(f"final state: {'matches' if same_state else 'DIFFERS'}")
    ok = first is None and same_state
    print("SIM REPLAY OK" if ok else "SIM REPLAY FAILED")
    return 0 if ok else 1


async def _played(
    scenario: Scenario,
    settings: Settings,
    out: Path,
    backends: dict[str, LLMBackend],
    extra: list[Event] | None = None,
) -> Outcomes:
    run = Run(scenario, out, backends, VirtualClock(scenario.start), settings, extra or [])
    return await run()


def _recorded(run_dir: Path) -> tuple[dict[str, Any], Scenario]:
    """A run's record and its scenario, checked to be the same file and inputs."""
    if not (run_dir / outputs.RUN).is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no {outputs.RUN})")
    record = outputs.read_run(run_dir)
    scenario = load(Path(record["scenario"]), load_settings())
    if scenario.digest != record["scenario_sha256"]:
        raise ScenarioError(f"{scenario.path}: changed since the run (its SHA-256 differs)")
    if outputs.inputs_of(scenario) != record["inputs"]:
        raise ScenarioError(f"{scenario.path}: a file it perceives changed since the run")
    scenario = dataclasses.replace(scenario, seed=record["seed"], tiles=record["tiles"])
    return record, sweep.varied(scenario, record.get("varied", {}))  # a sweep's run


def _first_difference(a: list[str], b: list[str]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


# --- fork ---


def _fork(arguments: argparse.Namespace) -> int:
    record, scenario = _recorded(arguments.run_dir)
    if not 0 <= arguments.at <= scenario.steps:
        raise ConfigError(f"--at {arguments.at}: the run has steps 0 to {scenario.steps}")
    cut = scenario.start + arguments.at * scenario.step
    changes = [_change(scenario, setting, cut, i) for i, setting in enumerate(arguments.set)]
    out = arguments.out or arguments.run_dir.with_name(
        f"{arguments.run_dir.name}-fork-{arguments.at}"
    )
    _fresh(out, arguments.force)
    backend = arguments.backend or record["backend"]
    settings = sim_settings(load_settings(), scenario, out, backend)
    outcomes = trio.run(_forked, scenario, settings, out, arguments.run_dir, cut, changes)
    outputs.write(
        out,
        scenario,
        outcomes,
        {"backend": backend, "tiles": scenario.tiles, "forked": {
            "from": str(arguments.run_dir.resolve()), "at": arguments.at, "set": arguments.set,
        }},
        settings.grid_size,
    )  # fmt: skip
    original = (arguments.run_dir / outputs.TRANSCRIPT).read_text(encoding="utf-8").splitlines()
    mine = outputs.transcript_lines(outcomes.lines).splitlines()
    before = [line for line in original if _step(line) < arguments.at]
    same = mine[: len(before)] == before
    verdict = "identical" if same else "DIFFERENT"
    print(f"prefix up to step {arguments.at}: {len(before)} lines, {verdict}")
    return _verdict(out, outcomes) if same else 1


async def _forked(
    scenario: Scenario,
    settings: Settings,
    out: Path,
    run_dir: Path,
    cut: float,
    changes: list[Event],
) -> Outcomes:
    live = await sim_backends(scenario, settings)
    recorded = recorded_outcomes(run_dir / outputs.JOURNAL)
    clock = VirtualClock(scenario.start)
    backends: dict[str, LLMBackend] = {
        pid: PlayBack(recorded, live[pid], clock, cut) for pid in scenario.personas
    }
    bar = _Bar()
    run = Run(scenario, out, backends, clock, settings, changes, progress=bar)
    try:
        return await run()
    finally:
        bar.done()


def _change(scenario: Scenario, setting: str, at: float, index: int) -> Event:
    """--set PERSONA.NAME=VALUE as an intervention at the fork's moment, before anything
    else of that moment."""
    try:
        target, value = setting.split("=", 1)
        persona, name = target.rsplit(".", 1)
        number = float(value)
    except ValueError as error:
        raise ConfigError(f"--set {setting}: must be PERSONA.NAME=NUMBER") from error
    check_changeable(scenario, persona, name, f"--set {setting}")
    if not 0.0 <= number <= highest(name):
        raise ConfigError(f"--set {setting}: out of range")
    return Event(at, -1 - index, Change(persona, {name: number}), f"--set {setting}")


def _step(line: str) -> int:
    return int(json.loads(line)["step"])


# --- diff ---


def _diff(arguments: argparse.Namespace) -> int:
    found = diff.compare(diff.read(arguments.run_dir), diff.read(arguments.other_dir))
    if arguments.json:
        print(json.dumps(found.to_json(), indent=2, sort_keys=True))
    else:
        print(diff.render(found), end="")
    return 0 if found.identical else 1


# --- sweep ---


def _sweep(arguments: argparse.Namespace) -> int:
    scenario = load(arguments.scenario, load_settings())
    varies = [sweep.parse_vary(text, scenario) for text in arguments.vary]
    if arguments.seeds < 1 or (arguments.jobs is not None and arguments.jobs < 1):
        raise ConfigError("--seeds and --jobs must be at least 1")
    out = arguments.out or Path("runs") / f"{scenario.name}-sweep"
    backend = arguments.backend or scenario.backend
    with _placement(arguments) as place:  # a cluster that cannot be had: before any directory
        _fresh(out, arguments.force)
        document = sweep.sweep(scenario, varies, arguments.seeds, out, backend, place)
    sweep.write(out, document)
    print(sweep.table(document), end="")
    print(f"{out / sweep.SWEEP_HTML}")
    return 0


def _placement(arguments: argparse.Namespace) -> AbstractContextManager[sweep.Place]:
    if arguments.runtime == "local":
        if arguments.ray_address is not None:
            raise ConfigError("--ray-address needs --runtime ray")
        return nullcontext(sweep.in_processes(arguments.jobs or 2))
    from mem8.sim import cluster  # Ray only when asked for

    return cluster.on_ray(arguments.ray_address, arguments.jobs)
