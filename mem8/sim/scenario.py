"""A simulation's scenario, read from TOML and checked: who takes part, when things happen to
them, and what must hold. A bad scenario is a ScenarioError naming the file, the key and what is
wrong (the CLI's exit code 2). The keys are documented in sims/README.md."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mem8.config import ENCODER_CHOICES, Settings, load_settings, persona_from_table
from mem8.errors import ConfigError
from mem8.personas import Persona

TRAITS = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
CHANGEABLE = (*TRAITS, "interest_threshold", "temperature")  # what a [[change]] may set
# What an [[expect]] may check (sims/README.md says how each is measured).
KINDS = ("recall", "said", "never_said", "interest", "emotion", "memories", "retention")
BACKENDS = ("auto", "ollama", "openai", "embedded", "scripted")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class ScenarioError(ConfigError):
    """A scenario that cannot be run: the file, the key and the reason."""


def highest(name: str) -> float:
    """The largest value a changeable setting takes: a temperature up to 2, the rest up to 1."""
    return 2.0 if name == "temperature" else 1.0


def check_changeable(scenario: Scenario, persona: str, name: str, flag: str) -> None:
    """A command line's PERSONA.NAME (`--set`, `--vary`) names a persona of the scenario and a
    setting a change may set; else a ConfigError naming the flag."""
    if persona not in scenario.personas:
        raise ConfigError(f"{flag}: no persona {persona!r} in {scenario.path}")
    if name not in CHANGEABLE:
        raise ConfigError(f"{flag}: {name} is not one of {', '.join(CHANGEABLE)}")


@dataclass(frozen=True)
class Say:
    """A line said to a persona by an outside speaker (a person, not a persona)."""

    speaker: str
    persona: str
    text: str


@dataclass(frozen=True)
class Perceive:
    """A document or recording a persona takes in (a path relative to the scenario)."""

    persona: str
    path: Path


@dataclass(frozen=True)
class Plant:
    """A memory put into a persona's memory, as if it had always known it."""

    persona: str
    text: str


@dataclass(frozen=True)
class Forget:
    """Every memory of a persona's holding the text, forgotten."""

    persona: str
    contains: str


@dataclass(frozen=True)
class Change:
    """An intervention: a persona's traits, threshold or temperature set anew."""

    persona: str
    values: Mapping[str, float]


@dataclass(frozen=True)
class Talk:
    """Two personas talking: the first says the opening line, then they take turns."""

    first: str
    second: str
    opening: str
    turns: int  # lines answered after the opening


Action = Say | Perceive | Plant | Forget | Change | Talk


@dataclass(frozen=True)
class Event:
    """An action at a virtual time; `order` is its place in the file, which breaks ties."""

    at: float
    order: int
    action: Action
    key: str  # where the scenario defines it, e.g. "say[2]"


@dataclass(frozen=True)
class Expectation:
    """Something that must hold at a time (None: at the end of the run)."""

    key: str  # where the scenario defines it, e.g. "expect[0]"
    kind: str  # one of KINDS
    persona: str
    at: float | None
    text: str = ""  # recall's and said's text, recall's query in `query`
    query: str = ""
    within: int = 5  # recall: the text in the first `within` memories recalled
    low: float = float("-inf")
    high: float = float("inf")
    measure: str = ""  # emotion: valence, arousal or dominance
    absent: bool = False  # recall: the text must not be among those recalled


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    seed: int
    start: float
    step: float  # seconds of virtual time per step
    steps: int
    backend: str
    encoder: str
    tiles: int
    personas: dict[str, Persona]
    events: list[Event]
    expectations: list[Expectation] = field(default_factory=list)
    script: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scripted lines by persona
    digest: str = ""  # of the file's bytes

    @property
    def end(self) -> float:
        return self.start + self.steps * self.step

    def step_of(self, at: float) -> int:
        return int((at - self.start) // self.step)

    def with_seed(self, seed: int) -> Scenario:
        return dataclasses.replace(self, seed=seed)


def load(path: Path, settings: Settings | None = None) -> Scenario:
    """The scenario at `path`, checked; personas named by id come from `settings` (by default
    the server's: built-ins and mem8.toml)."""
    try:
        raw = path.read_bytes()
        document = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError as error:
        raise ScenarioError(f"{path}: no such file") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ScenarioError(f"{path}: not valid TOML: {error}") from error
    try:
        known = (settings or load_settings()).personas
    except ConfigError as error:
        raise ScenarioError(str(error)) from error
    return _Reader(path, document, known).scenario(hashlib.sha256(raw).hexdigest())


class _Reader:
    """Reads one document, naming the key of every problem."""

    def __init__(self, path: Path, document: dict[str, Any], known: Mapping[str, Persona]):
        self.path = path
        self.document = document
        self.known = known

    def fail(self, key: str, reason: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {key}: {reason}")

    def scenario(self, digest: str) -> Scenario:
        unknown = set(self.document) - {
            "sim",
            "personas",
            "say",
            "perceive",
            "plant",
            "forget",
            "change",
            "conversation",
            "expect",
            "script",
        }
        if unknown:
            raise self.fail(sorted(unknown)[0], "unknown table")
        sim = self._table(self.document.get("sim"), "sim")
        self._only(
            sim,
            "sim",
            {"name", "seed", "start", "step", "steps", "end", "backend", "encoder", "tiles"},
        )
        start = self._moment(self._required(sim, "sim", "start"), "sim.start", None)
        step = self._duration(sim.get("step", "10m"), "sim.step")
        if "steps" in sim and "end" in sim:
            raise self.fail("sim.end", "give the run's length by steps or by end, not both")
        if "end" in sim:
            end = self._moment(sim["end"], "sim.end", start)
            steps = int(-(-(end - start) // step))
        else:
            steps = self._whole(self._required(sim, "sim", "steps"), "sim.steps", 1)
        if steps < 1:
            raise self.fail("sim.end", "the run must last at least one step")
        self.start, self.step, self.steps = start, step, steps
        personas = self._personas()
        self.ids = set(personas)
        events = self._events()
        return Scenario(
            path=self.path,
            name=self._text(sim.get("name", self.path.stem), "sim.name"),
            seed=self._whole(sim.get("seed", 0), "sim.seed", 0),
            start=start,
            step=step,
            steps=steps,
            backend=self._choice(sim.get("backend", "auto"), "sim.backend", BACKENDS),
            encoder=self._choice(
                sim.get("encoder", Settings().encoder), "sim.encoder", ENCODER_CHOICES
            ),
            tiles=self._whole(sim.get("tiles", Settings().grid_tiles), "sim.tiles", 1),
            personas=personas,
            events=sorted(events, key=lambda e: (e.at, e.order)),
            expectations=self._expectations(),
            script=self._script(),
            digest=digest,
        )

    # --- personas ---

    def _personas(self) -> dict[str, Persona]:
        tables = self._table(self.document.get("personas"), "personas")
        if not tables:
            raise self.fail("personas", "a simulation needs at least one persona")
        return {pid: self._persona(pid, table) for pid, table in tables.items()}

    def _persona(self, pid: str, table: Any) -> Persona:
        """A persona defined here as in mem8.toml, or one known by id (`like`) with changes."""
        key = f"personas.{pid}"
        if not isinstance(table, dict):
            raise self.fail(key, "must be a table")
        table = dict(table)
        like = table.pop("like", None)
        if like is not None:
            base = self.known.get(like) if isinstance(like, str) else None
            if base is None:
                known = ", ".join(sorted(self.known))
                raise self.fail(f"{key}.like", f"no configured persona {like!r} (known: {known})")
            table = {**_table_of(base), **table}
        try:
            return persona_from_table(self.path, pid, table)
        except ConfigError as error:
            raise ScenarioError(str(error)) from error

    # --- events ---

    def _events(self) -> list[Event]:
        events: list[Event] = []
        readers = {
            "say": self._say,
            "perceive": self._perceive,
            "plant": self._plant,
            "forget": self._forget,
            "change": self._change,
            "conversation": self._conversation,
        }
        order = 0
        for kind, read in readers.items():
            for i, table in enumerate(self._array(kind)):
                key = f"{kind}[{i}]"
                action = read(table, key)
                for at in self._times(table, key):
                    events.append(Event(at, order, action, key))
                    order += 1
        return events

    def _say(self, table: dict[str, Any], key: str) -> Action:
        self._only(table, key, {"at", "every", "times", "from", "to", "text"})
        speaker = self._text(self._required(table, key, "from"), f"{key}.from")
        if speaker in self.ids:
            raise self.fail(f"{key}.from", f"{speaker!r} is a persona: use a [[conversation]]")
        return Say(speaker, self._persona_id(table, key, "to"), self._said(table, key))

    def _perceive(self, table: dict[str, Any], key: str) -> Action:
        self._only(table, key, {"at", "every", "times", "persona", "file"})
        name = self._text(self._required(table, key, "file"), f"{key}.file")
        path = (self.path.parent / name).resolve()
        if not path.is_file():
            raise self.fail(f"{key}.file", f"no such file: {path}")
        return Perceive(self._persona_id(table, key, "persona"), path)

    def _plant(self, table: dict[str, Any], key: str) -> Action:
        self._only(table, key, {"at", "every", "times", "persona", "text"})
        return Plant(self._persona_id(table, key, "persona"), self._said(table, key))

    def _forget(self, table: dict[str, Any], key: str) -> Action:
        self._only(table, key, {"at", "every", "times", "persona", "contains"})
        contains = self._text(self._required(table, key, "contains"), f"{key}.contains")
        return Forget(self._persona_id(table, key, "persona"), contains)

    def _change(self, table: dict[str, Any], key: str) -> Action:
        self._only(table, key, {"at", "every", "times", "persona", "set"})
        values = self._table(self._required(table, key, "set"), f"{key}.set")
        if not values:
            raise self.fail(f"{key}.set", "names nothing to change")
        checked = {}
        for name, value in values.items():
            where = f"{key}.set.{name}"
            if name not in CHANGEABLE:
                raise self.fail(where, f"cannot be changed (one of {', '.join(CHANGEABLE)})")
            checked[name] = self._number(value, where, 0.0, highest(name))
        return Change(self._persona_id(table, key, "persona"), checked)

    def _conversation(self, table: dict[str, Any], key: str) -> Action:
        self._only(table, key, {"at", "every", "times", "between", "turns", "opening"})
        between = self._required(table, key, "between")
        if not (isinstance(between, list) and len(between) == 2):
            raise self.fail(f"{key}.between", "must name two personas")
        for who in between:
            if who not in self.ids:
                raise self.fail(f"{key}.between", f"{who!r} is not a persona of this scenario")
        if between[0] == between[1]:
            raise self.fail(f"{key}.between", "a persona does not talk to itself")
        opening = self._text(self._required(table, key, "opening"), f"{key}.opening")
        turns = self._whole(table.get("turns", 2), f"{key}.turns", 1)
        return Talk(between[0], between[1], opening, turns)

    def _times(self, table: dict[str, Any], key: str) -> list[float]:
        """When an event happens: at `at`, and `times` times in all, `every` apart."""
        at = self._moment(self._required(table, key, "at"), f"{key}.at", self.start)
        times = self._whole(table.get("times", 1), f"{key}.times", 1)
        every = self._duration(table["every"], f"{key}.every") if "every" in table else 0.0
        if times > 1 and not every:
            raise self.fail(f"{key}.times", "a repeated event needs `every`")
        found = [at + i * every for i in range(times)]
        late = [t for t in found if not self.start <= t < self.start + self.steps * self.step]
        if late:
            raise self.fail(f"{key}.at", "happens outside the run (from sim.start, sim.steps long)")
        return found

    # --- expectations ---

    def _expectations(self) -> list[Expectation]:
        found = []
        for i, table in enumerate(self._array("expect")):
            key = f"expect[{i}]"
            kinds = [k for k in KINDS if k in table]
            if len(kinds) != 1:
                raise self.fail(
                    key,
                    f"needs exactly one of {', '.join(KINDS)}",
                )
            self._only(table, key, {"at", kinds[0]})
            at = (
                None
                if table.get("at", "end") == "end"
                else self._moment(table["at"], f"{key}.at", self.start)
            )
            found.append(self._expectation(kinds[0], self._table(table[kinds[0]], key), key, at))
        return found

    def _expectation(
        self, kind: str, table: dict[str, Any], key: str, at: float | None
    ) -> Expectation:
        where = f"{key}.{kind}"
        persona = self._persona_id(table, where, "persona")
        if kind == "recall":
            self._only(table, where, {"persona", "query", "contains", "within", "absent"})
            absent = table.get("absent", False)
            if not isinstance(absent, bool):
                raise self.fail(f"{where}.absent", "must be true or false")
            return Expectation(
                key,
                kind,
                persona,
                at,
                text=self._text(self._required(table, where, "contains"), f"{where}.contains"),
                query=self._text(self._required(table, where, "query"), f"{where}.query"),
                within=self._whole(table.get("within", 5), f"{where}.within", 1),
                absent=absent,
            )
        if kind in ("said", "never_said"):
            self._only(table, where, {"persona", "contains"})
            text = self._text(self._required(table, where, "contains"), f"{where}.contains")
            return Expectation(key, kind, persona, at, text=text)
        names = {"persona", "min", "max"} | ({"measure"} if kind == "emotion" else set())
        text = ""
        if kind == "retention":
            names.add("contains")
            text = self._text(self._required(table, where, "contains"), f"{where}.contains")
        self._only(table, where, names)
        if "min" not in table and "max" not in table:
            raise self.fail(where, "needs min, max or both")
        bound = {"memories": (0.0, 1e9), "retention": (0.0, 1.0)}.get(kind, (-1.0, 1.0))
        measure = ""
        if kind == "emotion":
            measure = self._choice(
                table.get("measure", "valence"),
                f"{where}.measure",
                ("valence", "arousal", "dominance"),
            )
        return Expectation(
            key,
            kind,
            persona,
            at,
            low=self._number(table.get("min", bound[0]), f"{where}.min", *bound),
            high=self._number(table.get("max", bound[1]), f"{where}.max", *bound),
            measure=measure,
            text=text,
        )

    def _script(self) -> dict[str, tuple[str, ...]]:
        """[script]: each persona's lines, said in turn by the scripted backend."""
        table = self.document.get("script", {})
        if not isinstance(table, dict):
            raise self.fail("script", "must be a table of persona = [lines]")
        found = {}
        for pid, lines in table.items():
            key = f"script.{pid}"
            if pid not in self.ids:
                raise self.fail(key, f"{pid!r} is not a persona of this scenario")
            if not isinstance(lines, list) or not lines:
                raise self.fail(key, "must be a non-empty array of lines")
            found[pid] = tuple(self._text(line, f"{key}[{i}]") for i, line in enumerate(lines))
        return found

    # --- values ---

    def _array(self, name: str) -> list[dict[str, Any]]:
        found = self.document.get(name, [])
        if not isinstance(found, list) or not all(isinstance(t, dict) for t in found):
            raise self.fail(name, f"must be an array of tables ([[{name}]])")
        return found

    def _table(self, value: Any, key: str) -> dict[str, Any]:
        if value is None:
            raise self.fail(key, "missing (required)")
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return value

    def _only(self, table: dict[str, Any], key: str, allowed: set[str]) -> None:
        unknown = set(table) - allowed
        if unknown:
            raise self.fail(f"{key}.{sorted(unknown)[0]}", "unknown key")

    def _required(self, table: dict[str, Any], key: str, name: str) -> Any:
        if name not in table:
            raise self.fail(f"{key}.{name}", "missing (required)")
        return table[name]

    def _text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def _said(self, table: dict[str, Any], key: str) -> str:
        return self._text(self._required(table, key, "text"), f"{key}.text")

    def _persona_id(self, table: dict[str, Any], key: str, name: str) -> str:
        value = self._required(table, key, name)
        if value not in self.ids:
            raise self.fail(f"{key}.{name}", f"{value!r} is not a persona of this scenario")
        return str(value)

    def _whole(self, value: Any, key: str, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(key, f"must be a whole number of at least {low}")
        return value

    def _number(self, value: Any, key: str, low: float, high: float) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(key, f"must be a number from {low:g} to {high:g}")
        return float(value)

    def _choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def _duration(self, value: Any, key: str, zero: bool = False) -> float:
        """'10m', '1d12h', '90s' (units s, m, h, d, w) in seconds, above 0 (or 0, if `zero`)."""
        text = value if isinstance(value, str) else ""
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
            raise self.fail(key, f"must be a duration like '10m', '2h', '1d12h', got {value!r}")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        if seconds < 0 or (seconds == 0 and not zero):
            raise self.fail(key, "must be longer than 0")
        return seconds

    def _moment(self, value: Any, key: str, start: float | None) -> float:
        """A date-time (TOML's, or ISO text; UTC unless it says), or '+duration' after start."""
        if isinstance(value, str) and value.startswith("+") and start is not None:
            return start + self._duration(value[1:], key, zero=True)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as error:
                raise self.fail(
                    key, f"must be a date-time or '+duration', got {value!r}"
                ) from error
        if not isinstance(value, datetime):
            raise self.fail(key, f"must be a date-time or '+duration', got {value!r}")
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()


def _table_of(persona: Persona) -> dict[str, Any]:
    """A persona as the table mem8.toml would define it."""
    table: dict[str, Any] = {
        "name": persona.name,
        "traits": dataclasses.asdict(persona.traits),
        "model": persona.model,
        "temperature": persona.temperature,
        "interest_threshold": persona.interest_threshold,
        "below_threshold": persona.below_threshold,
        "system_prompt": persona.system_prompt,
        "max_tokens": persona.max_tokens,
    }
    if persona.context is not None:
        table["context"] = persona.context
    return table
