"""Runs a scenario on the actors the server runs, headless, on a virtual clock.

Everything happens one thing at a time, in the order of the timeline (events at the same
moment in an order drawn from the seed), so a run depends on its scenario, its seed and its
backends' outputs alone: not on the machine's load, nor on the number of grid regions. Every
chat is a real chat through a persona actor (perceived, judged, recalled for, answered, and
imprinted if it caught the persona's interest), every document and recording is read as the
server reads them, and everything is journaled as the server journals it.

A run's backends answer live, or play back a recorded run's outputs (replay), or play them back
until a moment and answer live from then on (fork)."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import trio

from mem8 import errors
from mem8.actors.messages import (
    Accepted,
    Ack,
    Chat,
    Counted,
    Done,
    GridExport,
    GridField,
    Heard,
    Listen,
    MemoryCount,
    MemoryForget,
    MemoryPage,
    MemoryQuery,
    MemorySearch,
    Outcome,
    Percept,
    PersonaChange,
    Remember,
    Remembered,
    Token,
    Turn,
)
from mem8.actors.percepts import encoded
from mem8.backends.base import Generated, GenerationRequest, LLMBackend
from mem8.clock import VirtualClock
from mem8.config import Settings
from mem8.grid.dynamics import fading_at
from mem8.grid.tiling import joined
from mem8.personas import Persona
from mem8.replay import played
from mem8.senses import documents
from mem8.sim.scenario import (
    TRAITS,
    Change,
    Event,
    Expectation,
    Forget,
    Perceive,
    Plant,
    Say,
    Scenario,
    Talk,
)
from mem8.system import open_system

# Fields of a listed memory that say where it came in a listing, not what it is.
_ORDER_OF_LISTING = frozenset({"score"})
TENANT = "sim"  # every memory of a simulation: one tenant, each persona's own memory
AUDIO = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".webm"}
TURN_SECONDS = 30.0  # virtual time between the lines of a conversation (beyond binding's 2 s)
PLANTED_IMPORTANCE = 1.0  # a planted memory is as if the persona had always known it
SENSED_IMPORTANCE = 0.7  # what the server gives what it hears and reads


@dataclass
class Line:
    """One line of the transcript: something a listener took in, and how."""

    at: float
    step: int
    kind: str  # chat, reply, perceive, plant, forget, change
    speaker: str
    listener: str
    text: str
    request_id: str = ""
    interest: float | None = None
    conscious: bool | None = None
    emotion: list[float] = field(default_factory=list)  # valence, arousal, dominance
    recalled: list[list[Any]] = field(default_factory=list)  # [memory id, score], best first
    memories: int | None = None  # the listener's memories after it

    def to_json(self) -> dict[str, Any]:
        found = {
            "at": self.at,
            "step": self.step,
            "kind": self.kind,
            "speaker": self.speaker,
            "listener": self.listener,
            "text": self.text,
        }
        optional = {
            "request_id": self.request_id,
            "interest": self.interest,
            "conscious": self.conscious,
            "emotion": self.emotion,
            "recalled": self.recalled,
            "memories": self.memories,
        }
        found.update({k: v for k, v in optional.items() if v not in (None, "", [])})
        return found


@dataclass
class Checked:
    """An expectation and whether it held, with what was found."""

    expectation: Expectation
    held: bool
    found: str


@dataclass
class Outcomes:
    """A run's result: its transcript, its expectations, its final state digests."""

    lines: list[Line] = field(default_factory=list)
    checked: list[Checked] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)  # memories over time
    fields: list[tuple[float, Any]] = field(default_factory=list)  # (time, GridField)


Progress = Callable[[float, int, Outcomes], None]


class PlayBack(LLMBackend):
    """Answers each request with a recorded run's output for it; from `live_from` on (a
    fork), the live backend answers instead."""

    name: ClassVar[str] = "recorded"

    def __init__(
        self,
        outcomes: Mapping[str, Outcome],
        live: LLMBackend | None = None,
        clock: VirtualClock | None = None,
        live_from: float = float("inf"),
    ) -> None:
        self.outcomes = outcomes
        self.live = live
        self.clock = clock
        self.live_from = live_from

    def _is_live(self) -> bool:
        return (
            self.live is not None and self.clock is not None and self.clock.now() >= self.live_from
        )

    async def start(self) -> None:
        if self.live is not None:
            await self.live.start()

    async def context_window(self, model: str, configured: int | None) -> int:
        if self.live is not None:
            return await self.live.context_window(model, configured)
        return await super().context_window(model, configured)

    def counter(self, model: str) -> Any:
        return self.live.counter(model) if self.live is not None else super().counter(model)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        if self._is_live():
            assert self.live is not None
            async for item in self.live.generate(request):
                yield item
            return
        outcome = self.outcomes.get(request.request_id)
        if outcome is None:
            raise errors.BackendFailed(f"the recorded run holds no output for {request.request_id}")
        async for item in played(outcome):
            yield item

    async def aclose(self) -> None:
        if self.live is not None:
            await self.live.aclose()


@dataclass
class Run:
    """One run of a scenario into a directory, with its backends."""

    scenario: Scenario
    out: Path
    backends: Mapping[str, LLMBackend]
    clock: VirtualClock
    settings: Settings
    extra: list[Event] = field(default_factory=list)  # interventions of a fork
    progress: Progress | None = None
    samples: int = 48  # moments at which memory counts and retention are taken
    fields: int = 4  # moments at which the grid's field is kept for a picture

    def __post_init__(self) -> None:
        self.outcomes = Outcomes()
        self.personas = dict(self.scenario.personas)
        self.counter = 0
        self.talks = 0

    def request_id(self) -> str:
        """The next request's id: the same in every run of the scenario with its seed."""
        self.counter += 1
        seed = f"{self.scenario.digest}:{self.scenario.seed}:{self.counter}"
        return hashlib.sha256(seed.encode()).hexdigest()[:16]

    def run_id(self) -> str:
        seed = f"{self.scenario.digest}:{self.scenario.seed}:run"
        return hashlib.sha256(seed.encode()).hexdigest()[:16]

    async def __call__(self) -> Outcomes:
        async with open_system(
            self.settings,
            clock=self.clock,
            backends=self.backends,
            journal=True,
            persist=True,
            resume=False,
            run=self.run_id(),
        ) as system:
            self.system = system
            for at, item in self._timeline():
                self.clock.set(at)
                if isinstance(item, Event):
                    await self._do(item)
                elif isinstance(item, Expectation):
                    self.outcomes.checked.append(await self._check(item))
                elif item == "sample":
                    await self._sample()
                elif item == "field":
                    await self._keep_field()
                if self.progress is not None:
                    self.progress(at, self.scenario.step_of(at), self.outcomes)
            self.clock.set(self.scenario.end)
            for expectation in self.scenario.expectations:
                if expectation.at is None:
                    self.outcomes.checked.append(await self._check(expectation))
            await self._sample()
            await self._keep_field()
            state = await self._state_digest()
        self.outcomes.digests = {**await _final_digests(self.settings), "sim": state}
        return self.outcomes

    def _timeline(self) -> list[tuple[float, object]]:
        """Events, expectations with a time, and the moments of samples, in order: events at
        the same moment in an order drawn from the seed; an expectation after the events of
        its moment."""
        events = sorted([*self.scenario.events, *self.extra], key=lambda e: (e.at, e.order))
        draw = random.Random(self.scenario.seed)
        tie = {id(e): draw.random() for e in events}
        timeline: list[tuple[float, int, float, object]] = [
            (e.at, 1 if e.order >= 0 else 0, tie[id(e)], e) for e in events
        ]
        timeline += [(x.at, 2, 0.0, x) for x in self.scenario.expectations if x.at is not None]
        span = self.scenario.end - self.scenario.start
        for i in range(self.samples):
            timeline.append((self.scenario.start + span * i / self.samples, 3, 0.0, "sample"))
        for i in range(1, self.fields):
            timeline.append((self.scenario.start + span * i / self.fields, 3, 0.0, "field"))
        timeline.sort(key=lambda item: item[:3])
        return [(at, item) for at, _, _, item in timeline]

    # --- actions ---

    async def _do(self, event: Event) -> None:
        action = event.action
        if isinstance(action, Say):
            reply = await self._chat(
                action.speaker, action.persona, action.text, f"say:{event.key}"
            )
            self._line("reply", action.persona, action.speaker, reply)
        elif isinstance(action, Talk):
            await self._talk(action, event)
        elif isinstance(action, Plant):
            await self._plant(action)
        elif isinstance(action, Forget):
            await self._forget(action)
        elif isinstance(action, Change):
            await self._change(action)
        elif isinstance(action, Perceive):
            await self._perceive(action)

    async def _talk(self, talk: Talk, event: Event) -> None:
        """The first says the opening; then each answers what the other said."""
        self.talks += 1
        conversation = f"talk:{event.key}:{self.talks}"
        speaker, listener, line = talk.first, talk.second, talk.opening
        for turn in range(talk.turns):
            self.clock.set(event.at + turn * TURN_SECONDS)
            line = await self._chat(speaker, listener, line, conversation)
            speaker, listener = listener, speaker
        self._line("reply", speaker, listener, line)

    async def _chat(self, speaker: str, persona: str, text: str, conversation: str) -> str:
        """The persona hears the speaker's line as a chat (in its one memory: every speaker's
        lines start with their name) and answers; its transcript line says how it took it."""
        name = self.personas[speaker].name if speaker in self.personas else speaker
        request_id = self.request_id()
        chat = Chat(
            request_id,
            persona,
            TENANT,
            "",
            self.clock.now(),
            [Turn("user", f"{name}: {text}")],
            seed=int(request_id[:8], 16) % (1 << 31),
            conversation=conversation,
        )
        ref = self.system.personas[persona]
        idle = self.settings.backend_timeout
        pieces: list[str] = []
        with await ref.open_stream(chat, first_timeout=idle, idle_timeout=idle) as replies:
            accepted = await anext(replies)
            assert isinstance(accepted, Accepted)
            async for answer in replies:
                if isinstance(answer, Token):
                    pieces.append(answer.text)
                elif isinstance(answer, Done):
                    break
        line = self._line("chat", speaker, persona, text, request_id)
        line.interest, line.conscious = accepted.interest, accepted.conscious
        line.emotion = list(accepted.emotion)
        line.recalled = [[hit.memory_id, hit.score] for hit in accepted.recalled]
        line.memories = await self._count(persona)
        return "".join(pieces)

    async def _plant(self, plant: Plant) -> None:
        percept = Percept(plant.text, "sim:plant", "text", self.clock.now())
        await self._remember(plant.persona, [percept], PLANTED_IMPORTANCE)
        line = self._line("plant", "", plant.persona, plant.text)
        line.memories = await self._count(plant.persona)

    async def _perceive(self, perceive: Perceive) -> None:
        """A recording is heard as the server hears one; a document read as it reads one."""
        data = perceive.path.read_bytes()
        request_id = self.request_id()
        if perceive.path.suffix.lower() in AUDIO:
            listen = Listen(
                request_id, data, perceive.path.name, TENANT, "", perceive.persona,
                self.settings.audio_max_seconds,
            )  # fmt: skip
            heard = await self.system.hearing.ask(listen, Heard, timeout=float("inf"))
            text = " ".join(s["text"].strip() for s in heard.transcript["segments"])
        else:
            limits = documents.Limits(
                seconds=self.settings.extract_seconds, memory=self.settings.extract_memory_mb << 20
            )
            read = await documents.extract(data, perceive.path.name, limits)
            percepts = [
                Percept(c.text, f"sim:file:{perceive.path.name}:{c.where}".rstrip(":"),
                        c.modality, self.clock.now())  # type: ignore[arg-type]
                for c in read.chunks[: self.settings.file_max_chunks]
            ]  # fmt: skip
            await self._remember(perceive.persona, percepts, SENSED_IMPORTANCE, request_id)
            text = f"{perceive.path.name}: {len(percepts)} chunks"
        line = self._line("perceive", perceive.path.name, perceive.persona, text, request_id)
        line.memories = await self._count(perceive.persona)

    async def _remember(
        self, persona: str, percepts: list[Percept], importance: float, request_id: str = ""
    ) -> None:
        percepts = await encoded(self.system.encoder, percepts)
        remember = Remember(
            request_id or self.request_id(), TENANT, "", persona, percepts, importance
        )
        await self.system.memory.ask(remember, Remembered, timeout=float("inf"))

    async def _forget(self, forget: Forget) -> None:
        gone = 0
        for memory in await self._memories(forget.persona):
            if forget.contains.lower() in str(memory["text"]).lower():
                ask = MemoryForget(self.request_id(), TENANT, str(memory["id"]), self.clock.now())
                await self.system.memory.ask(ask, Ack)
                gone += 1
        line = self._line("forget", "", forget.persona, f"{forget.contains} ({gone} forgotten)")
        line.memories = await self._count(forget.persona)

    async def _change(self, change: Change) -> None:
        persona = changed(self.personas[change.persona], change.values)
        self.personas[change.persona] = persona
        await self.system.personas[change.persona].ask(
            PersonaChange(self.request_id(), persona.to_wire()), Ack
        )
        said = ", ".join(f"{k}={v:g}" for k, v in sorted(change.values.items()))
        self._line("change", "", change.persona, said)

    # --- reading memory ---

    async def _count(self, persona: str) -> int:
        ask = MemoryCount(self.request_id(), TENANT, "", persona)
        return (await self.system.memory.ask(ask, Counted)).count

    async def _memories(self, persona: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query = MemoryQuery(self.request_id(), TENANT, "", persona, limit=500, after=after)
            page = await self.system.memory.ask(query, MemoryPage)
            found += page.memories
            if not page.has_more or not page.memories:
                return found
            after = str(page.memories[-1]["id"])

    async def _sample(self) -> None:
        """Each persona's memory count and their mean retention now (decay over time)."""
        now = self.clock.now()
        sample: dict[str, Any] = {"at": now, "personas": {}}
        for pid in sorted(self.personas):
            memories = await self._memories(pid)
            weights = [fading_at(now, float(m["created"]), float(m["tau"])) for m in memories]
            sample["personas"][pid] = {
                "memories": len(memories),
                "retention": sum(weights) / len(weights) if weights else None,
            }
        self.outcomes.samples.append(sample)

    async def _keep_field(self) -> None:
        field_ = await self.system.grid.ask(GridExport(self.request_id()), GridField)
        self.outcomes.fields.append((self.clock.now(), field_))

    async def _state_digest(self) -> str:
        """The run's end state, the same in any tiling of the grid: the whole field (its
        tiles joined) and every memory as the store has it, by id."""
        field_ = self.outcomes.fields[-1][1]
        size, tiles = self.settings.grid_size, self.settings.grid_tiles
        digest = hashlib.sha256()
        for part in (field_.current, field_.previous):
            digest.update(joined(part, size, tiles).tobytes())
        memories: list[dict[str, Any]] = []
        for pid in sorted(self.personas):
            memories += await self._memories(pid)
        for memory in sorted(memories, key=lambda m: str(m["id"])):
            kept = {k: memory[k] for k in sorted(memory) if k not in _ORDER_OF_LISTING}
            digest.update(json.dumps(kept, sort_keys=True, default=repr).encode())
        return digest.hexdigest()

    # --- expectations ---

    async def _check(self, expectation: Expectation) -> Checked:
        kind = expectation.kind
        if kind == "recall":
            return await self._check_recall(expectation)
        if kind == "retention":
            return await self._check_retention(expectation)
        if kind == "memories":
            count = await self._count(expectation.persona)
            held = expectation.low <= count <= expectation.high
            return Checked(expectation, held, f"{count} memories")
        if kind in ("said", "never_said"):
            said = [
                line for line in self.outcomes.lines
                if line.speaker == expectation.persona and line.kind == "reply"
                and expectation.text.lower() in line.text.lower()
            ]  # fmt: skip
            held = bool(said) == (kind == "said")
            return Checked(expectation, held, f"said in {len(said)} lines")
        heard = [
            line for line in self.outcomes.lines
            if line.listener == expectation.persona and line.interest is not None
        ]  # fmt: skip
        if not heard:
            return Checked(expectation, False, "it heard nothing")
        if kind == "interest":
            values = [line.interest or 0.0 for line in heard]
        else:
            axis = ("valence", "arousal", "dominance").index(expectation.measure)
            values = [line.emotion[axis] for line in heard if line.emotion]
        mean = sum(values) / len(values) if values else 0.0
        held = expectation.low <= mean <= expectation.high
        return Checked(expectation, held, f"mean {mean:.3f} over {len(values)} lines")

    async def _check_recall(self, expectation: Expectation) -> Checked:
        search = MemorySearch(
            self.request_id(), TENANT, expectation.query, "", expectation.persona,
            expectation.within, self.clock.now(),
        )  # fmt: skip
        page = await self.system.memory.ask(search, MemoryPage, timeout=float("inf"))
        texts = [str(m["text"]) for m in page.memories]
        rank = next(
            (i for i, t in enumerate(texts, 1) if expectation.text.lower() in t.lower()), None
        )
        found = f"ranked {rank}" if rank else f"not in the first {expectation.within}"
        return Checked(expectation, (rank is None) == expectation.absent, found)

    async def _check_retention(self, expectation: Expectation) -> Checked:
        """How much of their waves the persona's memories holding the text keep now (1: as
        new; decay lowers it, emotion and recall slow it)."""
        now = self.clock.now()
        held = [
            fading_at(now, float(m["created"]), float(m["tau"]))
            for m in await self._memories(expectation.persona)
            if expectation.text.lower() in str(m["text"]).lower()
        ]
        if not held:
            return Checked(expectation, False, "no memory holds it")
        mean = sum(held) / len(held)
        found = f"retention {mean:.3f} over {len(held)} memories"
        return Checked(expectation, expectation.low <= mean <= expectation.high, found)

    # --- the transcript ---

    def _line(
        self, kind: str, speaker: str, listener: str, text: str, request_id: str = ""
    ) -> Line:
        now = self.clock.now()
        line = Line(now, self.scenario.step_of(now), kind, speaker, listener, text, request_id)
        self.outcomes.lines.append(line)
        return line


def changed(persona: Persona, values: Mapping[str, float]) -> Persona:
    """The persona with traits, threshold or temperature set anew."""
    traits = replace(persona.traits, **{k: v for k, v in values.items() if k in TRAITS})
    return replace(
        persona,
        traits=traits,
        interest_threshold=values.get("interest_threshold", persona.interest_threshold),
        temperature=values.get("temperature", persona.temperature),
    )


async def _final_digests(settings: Settings) -> dict[str, str]:
    """The state digests the journal's last record holds (written at the system's close)."""
    from mem8.actors.journal import read_journal

    directory = settings.journal_dir()
    if directory is None:
        return {}
    reading = await trio.to_thread.run_sync(read_journal, directory)
    final = [r for r in reading.records if r.kind == "state"]
    return dict(final[-1].body["digests"]) if final else {}


def recorded_outcomes(journal: Path) -> dict[str, Outcome]:
    """Each request's backend output, as a run's journal recorded it."""
    from mem8.actors.journal import read_journal

    reading = read_journal(journal)
    return {
        r.body["request_id"]: Outcome.from_map(r.body["outcome"])
        for r in reading.records
        if r.kind == "commit"
    }
