"""Deterministic replay: a fresh system on a virtual clock re-runs a journal's requests against
the recorded backend outputs, in the order the memory actor took them, and checks every
response and the final state hashes. Each run of the server (a start, after a clean stop or a
crash) is replayed from its own starting snapshot; chats a crash cut off are counted, not
replayed."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import trio

from mem8 import errors
from mem8.actors.journal import (
    OPENINGS,
    Record,
    SnapshotMissing,
    read_journal,
    read_snapshot,
    run_of,
)
from mem8.actors.messages import (
    Accepted,
    Ack,
    Chat,
    Digest,
    Done,
    FileForget,
    FileKeep,
    FileRead,
    FileReread,
    Finished,
    GridField,
    MemoryForget,
    MessageError,
    Outcome,
    Remember,
    Remembered,
    Restore,
    StoredPage,
    Token,
    ToolCalled,
    from_map,
)
from mem8.actors.runtime import new_request_id
from mem8.backends.base import (
    Finish,
    Generated,
    GenerationRequest,
    LLMBackend,
    TextDelta,
    ToolCall,
    ToolCalls,
)
from mem8.clock import VirtualClock
from mem8.config import Settings
from mem8.encoders import open_named
from mem8.encoders.base import Encoder
from mem8.personas import Persona
from mem8.system import System, open_system

REQUEST_TIMEOUT = 60.0
CRASHED = "ended in a crash"
UNLIMITED_CONTEXT = 1 << 30


@dataclass
class RunReport:
    """One run of the server, from its start to its close or crash."""

    number: int
    started_from: str = "an empty store"
    requests: int = 0
    matched: int = 0
    unfinished: int = 0  # chats begun that no commit closed (cut off by a crash)
    ending: str = "closed"
    state_matched: bool | None = None

    def summary(self) -> str:
        state = {True: ", final state hash matches", False: ", final state hash DIFFERS", None: ""}
        unfinished = f", {self.unfinished} unfinished" if self.unfinished else ""
        return (
            f"run {self.number} (from {self.started_from}): {self.requests} requests, "
            f"{self.matched} matching{unfinished}; {self.ending}{state[self.state_matched]}"
        )


@dataclass
class ReplayReport:
    requests: int = 0
    matched: int = 0
    mismatches: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: list[RunReport] = field(default_factory=list)
    restored_from_snapshot: bool = False  # a run starts from a rotated segment's snapshot

    @property
    def state_matched(self) -> bool | None:
        """Whether every run that recorded its final state ends in it (None: none did)."""
        recorded = [run.state_matched for run in self.runs if run.state_matched is not None]
        return all(recorded) if recorded else None

    @property
    def unfinished(self) -> int:
        return sum(run.unfinished for run in self.runs)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.mismatches and self.state_matched is True

    def summary(self) -> str:
        lines = [run.summary() for run in self.runs]
        crashed = sum(run.ending == CRASHED for run in self.runs)
        lines.append(
            f"runs verified: {len(self.runs)} "
            f"(restarts: {max(0, len(self.runs) - 1)}, after a crash: {crashed})"
        )
        lines.append(f"requests replayed: {self.requests}, responses matching: {self.matched}")
        if self.unfinished:
            lines.append(f"chats unfinished when their run ended: {self.unfinished}")
        if self.restored_from_snapshot:
            lines.append("started from the snapshot of the oldest kept segment")
        lines += [f"NOTE {n}" for n in self.notes]
        lines += [f"MISMATCH {m}" for m in self.mismatches]
        lines += [f"PROBLEM {p}" for p in self.problems]
        state = {True: "matches", False: "DIFFERS", None: "not recorded (no clean close)"}
        lines.append(f"final state hash: {state[self.state_matched]}")
        lines.append("REPLAY OK" if self.ok else "REPLAY FAILED")
        return "\n".join(lines)


class RecordedLLM(LLMBackend):
    """Serves each request's recorded output once the driver reaches its commit record."""

    name: ClassVar[str] = "recorded"
    can_logprobs = True  # a chat that had them is replayed (the record holds only its text)

    def __init__(self, outcomes: dict[str, Outcome]) -> None:
        self.outcomes = outcomes
        self.released: dict[str, trio.Event] = {}

    async def context_window(self, model: str, configured: int | None) -> int:
        """Room for any prompt: what did not fit the recorded backend's context is in the
        record as that backend's error, replayed as such."""
        return UNLIMITED_CONTEXT

    def release(self, request_id: str) -> None:
        self.released.setdefault(request_id, trio.Event()).set()

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        outcome = self.outcomes.get(request.request_id)
        if outcome is None:
            raise errors.BackendFailed(f"the journal holds no output for {request.request_id}")
        await self.released.setdefault(request.request_id, trio.Event()).wait()
        async for item in played(outcome):
            yield item


async def played(outcome: Outcome) -> AsyncGenerator[Generated, None]:
    """A recorded answer as the backend gave it: its text pieces and calls, then its finish or
    error."""
    for text in outcome.text:
        yield TextDelta(text)
    calls = outcome.tool_calls()
    if calls:
        yield ToolCalls(tuple(ToolCall(c["id"], **c["function"]) for c in calls))
    if outcome.error is not None:
        raise errors.rebuild(*outcome.error)
    assert outcome.finish is not None
    yield Finish(*outcome.finish)


@dataclass
class _Running:
    """One request being replayed: started at its chat record, finished at its commit."""

    chat: Chat
    accepted: trio.Event = field(default_factory=trio.Event)
    finished: trio.Event = field(default_factory=trio.Event)
    text: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    finish: Finished | None = None
    error: errors.Mem8Error | None = None

    def outcome(self) -> Outcome:
        return Outcome.of(self.text, self.finish, self.error, self.calls)


async def replay(directory: Path) -> ReplayReport:
    reading = read_journal(directory)
    report = ReplayReport(problems=list(reading.problems), notes=list(reading.notes))
    runs = _runs(reading.records)
    if not runs or runs[0][0].kind != "header":
        report.problems.append("the journal does not start with a header record")
        return report
    for number, records in enumerate(runs, 1):
        run = RunReport(number)
        report.runs.append(run)
        if records[-1].kind != "close":
            run.ending = CRASHED if number < len(runs) else "not closed"
        encoder = await _encoder(records[0].body.get("encoder"), run, report)
        if encoder is not None:
            await _replay_run(directory, records, run, report, encoder)
    if not reading.closed_cleanly and not report.problems:
        report.problems.append("the journal ends without a close record (crash or truncation)")
    return report


async def _encoder(name: str | None, run: RunReport, report: ReplayReport) -> Encoder | None:
    """The encoder the run used, as its header names it (None: a journal from before headers
    named it), or None with the problem reported."""
    try:
        return await trio.to_thread.run_sync(open_named, name, Settings().encoder_threads)
    except (ValueError, errors.Mem8Error) as error:
        report.problems.append(f"run {run.number} cannot be verified: its encoder: {error}")
        return None


def _runs(records: list[Record]) -> list[list[Record]]:
    """The records of each run of the server, in order (a journal written before runs were
    recorded is one run)."""
    runs: list[list[Record]] = []
    current: str | None = None
    for record in records:
        run = run_of(record)
        if not runs or (run is not None and run != current):
            runs.append([])
            current = run
        runs[-1].append(record)
    return runs


async def _replay_run(
    directory: Path, records: list[Record], run: RunReport, report: ReplayReport, encoder: Encoder
) -> None:
    """Replays one run from the snapshot it opens with (a journal's first run may have none:
    it started on an empty store)."""
    snapshot = None
    opening = records[1] if len(records) > 1 and records[1].kind in OPENINGS else None
    if opening is not None:
        try:
            snapshot = read_snapshot(directory, opening.body)
        except SnapshotMissing as error:
            report.problems.append(f"run {run.number} cannot be verified: {error}")
            return
        rotated = opening.kind == "snapshot"
        run.started_from = "a rotation's snapshot" if rotated else "its start snapshot"
        report.restored_from_snapshot |= rotated
    elif run.number > 1:
        report.problems.append(f"run {run.number} has no snapshot to start from")
        return
    with tempfile.TemporaryDirectory(prefix="mem8-replay-") as scratch:
        settings = _settings(records[0].body, Path(scratch), directory, snapshot)
        await _replay_in(settings, records, snapshot, run, report, encoder)
    report.requests += run.requests
    report.matched += run.matched
    unrecorded = sum(r.kind == "unrecorded" for r in records)
    if unrecorded:
        report.problems.append(f"run {run.number}: {unrecorded} records could not be journaled")


def _settings(
    header: dict[str, Any], scratch: Path, directory: Path, snapshot: dict[str, Any] | None
) -> Settings:
    """The recorded system's settings, on a scratch copy of the snapshot's store (if any)."""
    storage = scratch / "replay.db"
    if snapshot is not None and snapshot.get("memory", {}).get("store"):
        shutil.copyfile(directory / snapshot["memory"]["store"], storage)
    personas = {pid: Persona.from_wire(wire) for pid, wire in header["personas"].items()}
    grid = header.get("grid", {})
    return dataclasses.replace(
        Settings(personas=personas, journal="off", storage=str(storage)),
        **{key: value for key, value in grid.items() if key in ("grid_size", "grid_tiles")},
    )


async def _replay_in(
    settings: Settings,
    records: list[Record],
    snapshot: dict[str, Any] | None,
    run: RunReport,
    report: ReplayReport,
    encoder: Encoder,
) -> None:
    commits = {r.body["request_id"]: r.body for r in records if r.kind == "commit"}
    backend = RecordedLLM({rid: Outcome.from_map(body["outcome"]) for rid, body in commits.items()})
    clock = VirtualClock(records[0].body.get("started", 0.0))
    backends = dict.fromkeys(settings.personas, backend)
    async with open_system(
        settings, clock=clock, backends=backends, journal=False, encoder=encoder, resume=False
    ) as system:
        done_seq = await _restore(system, snapshot, report)
        driver = _Driver(system, clock, backend, commits, done_seq, run, report)
        async with trio.open_nursery() as nursery:
            await driver.drive(records, nursery)
        final = [r for r in records if r.kind == "state"]
        if final:
            run.state_matched = final[-1].body["digests"] == await system.state_digests()


async def _restore(system: System, snapshot: dict[str, Any] | None, report: ReplayReport) -> int:
    """Restores the snapshot a run opens with; the commits it already holds."""
    if snapshot is None:
        return 0
    for owner, state in snapshot.items():
        ref = system.memory if owner == "memory" else system.personas.get(owner)
        if ref is None:
            report.problems.append(f"the snapshot holds an unknown actor {owner}")
            continue
        await ref.ask(Restore(new_request_id(), state), Digest)
    grid = snapshot.get("memory", {}).get("grid")
    if grid:
        restore = GridField(new_request_id(), grid["current"], grid["previous"], grid["last_step"])
        await system.grid.ask(restore, Ack)
    seq: int = snapshot.get("memory", {}).get("seq", 0)
    return seq


# Records of what the memory actor kept outside chats, replayed by sending their message again.
KEPT = ("remember", "file", "file_read", "file_reread")


@dataclass
class _Driver:
    """Follows one run's records in the memory actor's order."""

    system: System
    clock: VirtualClock
    backend: RecordedLLM
    commits: dict[str, dict[str, Any]]
    done_seq: int  # commits the starting snapshot already holds
    run: RunReport
    report: ReplayReport
    running: dict[str, _Running] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # chats begun (a rotation copies open ones)

    async def drive(self, records: list[Record], nursery: trio.Nursery) -> None:
        for record in records:
            if record.kind == "chat":
                await self._begin(record, nursery)
            elif record.kind == "commit" and record.body["seq"] > self.done_seq:
                request = self.running.pop(record.body["request_id"], None)
                await _finish(request, record.body, self.backend, self.run, self.report)
            elif record.kind in KEPT and record.body["seq"] > self.done_seq:
                kept = from_map(record.body["message"])  # a file's bytes are not journaled
                if isinstance(kept, Remember | FileKeep | FileRead):
                    await self.system.memory.ask(kept, Remembered)
                elif isinstance(kept, FileReread):
                    await self.system.memory.ask(kept, Ack)
            elif record.kind == "file_forget":
                body = record.body
                forget_file = FileForget(
                    new_request_id(), body["tenant"], body["file_id"], record.at
                )
                await _forget(
                    self.system, forget_file, f"file_forget {body['file_id']}", self.report
                )
            elif record.kind == "stored":  # a stored completion's metadata changed, or deleted
                change = from_map(record.body["message"])
                # NotFound: it was stored in a run this journal no longer holds
                with contextlib.suppress(errors.NotFound):
                    await self.system.memory.ask(change, StoredPage)
            elif record.kind == "forget":
                body = record.body
                forget = MemoryForget(
                    new_request_id(), body["tenant"], body["memory_id"], record.at
                )
                await _forget(self.system, forget, f"forget {body['memory_id']}", self.report)

    async def _begin(self, record: Record, nursery: trio.Nursery) -> None:
        chat = _chat(record, self.report)
        if chat is None or chat.request_id in self.seen:
            return
        self.seen.add(chat.request_id)
        commit = self.commits.get(chat.request_id)
        if commit is None:
            self.run.unfinished += 1  # in flight when the run ended
            return
        if commit["seq"] <= self.done_seq:
            return  # already in the snapshot
        self.clock.set(chat.arrival)
        request = self.running[chat.request_id] = _Running(chat)
        nursery.start_soon(_run, self.system, request)
        with trio.fail_after(REQUEST_TIMEOUT):
            await request.accepted.wait()


async def _forget(
    system: System, forget: MemoryForget | FileForget, what: str, report: ReplayReport
) -> None:
    try:
        await system.memory.ask(forget, Ack)
    except errors.NotFound:
        report.mismatches.append(f"{what}: not found")


def _chat(record: Record, report: ReplayReport) -> Chat | None:
    try:
        chat = from_map(record.body["message"])
    except (MessageError, KeyError, TypeError) as error:
        report.problems.append(f"unreadable chat record: {error}")
        return None
    return chat if isinstance(chat, Chat) else None


async def _run(system: System, request: _Running) -> None:
    try:
        with await system.persona(request.chat.persona).open_stream(request.chat) as replies:
            async for reply in replies:
                if isinstance(reply, Accepted):
                    request.accepted.set()
                elif isinstance(reply, Token) and reply.index == 0:
                    request.text.append(reply.text)
                elif isinstance(reply, ToolCalled) and reply.index == 0:
                    request.calls.extend(json.loads(reply.calls))
                elif isinstance(reply, Done):
                    request.finish = Finished(
                        reply.finish_reason, reply.prompt_tokens, reply.completion_tokens
                    )
    except errors.Mem8Error as error:
        request.error = error
    finally:
        request.accepted.set()
        request.finished.set()


async def _finish(
    request: _Running | None,
    commit: dict[str, Any],
    backend: RecordedLLM,
    run: RunReport,
    report: ReplayReport,
) -> None:
    if request is None:
        report.problems.append(f"commit {commit['request_id']} has no chat record before it")
        return
    run.requests += 1
    backend.release(commit["request_id"])
    with trio.fail_after(REQUEST_TIMEOUT):
        await request.finished.wait()
    if request.outcome().digest() == commit["response_sha256"]:
        run.matched += 1
    else:
        report.mismatches.append(
            f"request {commit['request_id']} ({request.chat.persona}): response differs"
        )
