"""Deterministic replay: a fresh system on a virtual clock re-runs a journal's requests against
the recorded backend outputs, in the order the memory actor took them, and checks every
response and the final state hashes."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import trio

from mem8 import errors
from mem8.actors.journal import Record, read_journal
from mem8.actors.messages import (
    Accepted,
    Ack,
    Chat,
    Digest,
    Done,
    FileForget,
    FileKeep,
    Finished,
    GridField,
    MemoryForget,
    MessageError,
    Outcome,
    Remember,
    Remembered,
    Restore,
    Token,
    from_map,
)
from mem8.actors.runtime import new_request_id
from mem8.backends.base import Finish, Generated, GenerationRequest, LLMBackend, TextDelta
from mem8.clock import VirtualClock
from mem8.config import Settings
from mem8.personas import Persona
from mem8.system import System, open_system

REQUEST_TIMEOUT = 60.0
UNLIMITED_CONTEXT = 1 << 30


@dataclass
class ReplayReport:
    requests: int = 0
    matched: int = 0
    mismatches: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    state_matched: bool | None = None  # None: the journal holds no final state to compare
    restored_from_snapshot: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and not self.mismatches and self.state_matched is True

    def summary(self) -> str:
        lines = [f"requests replayed: {self.requests}, responses matching: {self.matched}"]
        if self.restored_from_snapshot:
            lines.append("started from the snapshot of the oldest kept segment")
        lines += [f"MISMATCH {m}" for m in self.mismatches]
        lines += [f"PROBLEM {p}" for p in self.problems]
        state = {True: "matches", False: "DIFFERS", None: "not recorded (no clean close)"}
        lines.append(f"final state hash: {state[self.state_matched]}")
        lines.append("REPLAY OK" if self.ok else "REPLAY FAILED")
        return "\n".join(lines)


class RecordedLLM(LLMBackend):
    """Serves each request's recorded output once the driver reaches its commit record."""

    name: ClassVar[str] = "recorded"

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
        for text in outcome.text:
            yield TextDelta(text)
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
    finish: Finished | None = None
    error: errors.Mem8Error | None = None

    def outcome(self) -> Outcome:
        return Outcome.of(self.text, self.finish, self.error)


async def replay(directory: Path) -> ReplayReport:
    reading = read_journal(directory)
    report = ReplayReport(problems=list(reading.problems))
    records = reading.records
    if not records or records[0].kind != "header":
        report.problems.append("the journal does not start with a header record")
        return report
    snapshot = (
        records[1].body["states"] if len(records) > 1 and records[1].kind == "snapshot" else None
    )
    with tempfile.TemporaryDirectory(prefix="mem8-replay-") as scratch:
        settings = _settings(records[0].body, Path(scratch), directory, snapshot)
        await _replay_in(settings, records, snapshot, report)
    if not reading.closed_cleanly and not report.problems:
        report.problems.append("the journal ends without a close record (crash or truncation)")
    return report


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
    settings: Settings, records: list[Record], snapshot: dict[str, Any] | None, report: ReplayReport
) -> None:
    commits = {r.body["request_id"]: r.body for r in records if r.kind == "commit"}
    backend = RecordedLLM({rid: Outcome.from_map(body["outcome"]) for rid, body in commits.items()})
    clock = VirtualClock(records[0].body.get("started", 0.0))
    backends = dict.fromkeys(settings.personas, backend)
    async with open_system(settings, clock=clock, backends=backends, journal=False) as system:
        done_seq = await _restore(system, snapshot, report)
        async with trio.open_nursery() as nursery:
            await _drive(system, clock, backend, records, commits, done_seq, nursery, report)
        final = [r for r in records if r.kind == "state"]
        if final:
            report.state_matched = final[-1].body["digests"] == await system.state_digests()


async def _restore(system: System, snapshot: dict[str, Any] | None, report: ReplayReport) -> int:
    """Restores the snapshot opening the oldest kept segment; the commits it already holds."""
    if snapshot is None:
        return 0
    report.restored_from_snapshot = True
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


async def _drive(
    system: System,
    clock: VirtualClock,
    backend: RecordedLLM,
    records: list[Record],
    commits: dict[str, dict[str, Any]],
    done_seq: int,
    nursery: trio.Nursery,
    report: ReplayReport,
) -> None:
    running: dict[str, _Running] = {}
    for record in records:
        if record.kind == "chat":
            chat = _chat(record, report)
            commit = commits.get(chat.request_id) if chat else None
            if chat is None or commit is None or commit["seq"] <= done_seq:
                continue  # unfinished when the journal ended, or already in the snapshot
            clock.set(chat.arrival)
            request = running[chat.request_id] = _Running(chat)
            nursery.start_soon(_run, system, request)
            with trio.fail_after(REQUEST_TIMEOUT):
                await request.accepted.wait()
        elif record.kind == "commit" and record.body["seq"] > done_seq:
            await _finish(
                running.pop(record.body["request_id"], None), record.body, backend, report
            )
        elif record.kind in ("remember", "file") and record.body["seq"] > done_seq:
            kept = from_map(record.body["message"])  # a file's bytes are not journaled
            if isinstance(kept, Remember | FileKeep):
                await system.memory.ask(kept, Remembered)
        elif record.kind == "file_forget":
            body = record.body
            forget_file = FileForget(new_request_id(), body["tenant"], body["file_id"], record.at)
            await _forget(system, forget_file, f"file_forget {body['file_id']}", report)
        elif record.kind == "forget":
            body = record.body
            forget = MemoryForget(new_request_id(), body["tenant"], body["memory_id"], record.at)
            await _forget(system, forget, f"forget {body['memory_id']}", report)


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
                elif isinstance(reply, Token):
                    request.text.append(reply.text)
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
    request: _Running | None, commit: dict[str, Any], backend: RecordedLLM, report: ReplayReport
) -> None:
    if request is None:
        report.problems.append(f"commit {commit['request_id']} has no chat record before it")
        return
    report.requests += 1
    backend.release(commit["request_id"])
    with trio.fail_after(REQUEST_TIMEOUT):
        await request.finished.wait()
    if request.outcome().digest() == commit["response_sha256"]:
        report.matched += 1
    else:
        report.mismatches.append(
            f"request {commit['request_id']} ({request.chat.persona}): response differs"
        )
