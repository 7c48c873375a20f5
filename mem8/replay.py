"""Deterministic replay: a fresh system on a virtual clock re-runs a journal's requests against
the recorded backend outputs and checks every response and the final state hashes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mem8 import errors
from mem8.actors.journal import Record, read_journal
from mem8.actors.messages import Chat, Digest, Done, MessageError, Restore, Token, from_map
from mem8.actors.persona import Outcome
from mem8.backends.base import Finish, Generated, GenerationRequest, LLMBackend, TextDelta
from mem8.clock import VirtualClock
from mem8.config import Settings
from mem8.personas import Persona, Traits
from mem8.system import System, open_system


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
    """Serves each request's recorded output, looked up by request id."""

    name: ClassVar[str] = "recorded"

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Generated, None]:
        outcome = self.outcomes.get(request.request_id)
        if outcome is None:
            raise errors.BackendFailed(f"the journal holds no output for {request.request_id}")
        for text in outcome["text"]:
            yield TextDelta(text)
        if outcome["error"] is not None:
            raise errors.rebuild(*outcome["error"])
        yield Finish(*outcome["finish"])


async def replay(directory: Path) -> ReplayReport:
    reading = read_journal(directory)
    report = ReplayReport(problems=list(reading.problems))
    records = reading.records
    if not records or records[0].kind != "header":
        report.problems.append("the journal does not start with a header record")
        return report
    settings = Settings(personas=_personas(records[0].body), journal="off")
    backend = RecordedLLM()
    backend.outcomes = {
        r.body["request_id"]: r.body["outcome"] for r in records if r.kind == "commit"
    }
    clock = VirtualClock(records[0].body.get("started", 0.0))
    backends = dict.fromkeys(settings.personas, backend)
    async with open_system(settings, clock=clock, backends=backends, journal=False) as system:
        restored = await _restore(system, records, report)
        await _rerun(system, clock, records, restored, report)
        final = [r for r in records if r.kind == "state"]
        if final:
            report.state_matched = final[-1].body["digests"] == await system.state_digests()
    if not reading.closed_cleanly and not report.problems:
        report.problems.append("the journal ends without a close record (crash or truncation)")
    return report


def _personas(header: dict[str, Any]) -> dict[str, Persona]:
    personas = {}
    for pid, wire in header["personas"].items():
        personas[pid] = Persona(**{**wire, "traits": Traits(**wire["traits"])})
    return personas


async def _restore(system: System, records: list[Record], report: ReplayReport) -> dict[str, int]:
    """Restores the snapshot that opens the oldest kept segment; persona -> its commit seq."""
    if len(records) < 2 or records[1].kind != "snapshot":
        return {}
    report.restored_from_snapshot = True
    restored = {}
    for owner, state in records[1].body["states"].items():
        ref = system.personas.get(owner)
        if ref is None:
            report.problems.append(f"the snapshot holds an unknown persona {owner}")
            continue
        await ref.ask(Restore(uuid.uuid4().hex, state), Digest)
        restored[owner] = state["seq"]
    return restored


async def _rerun(
    system: System,
    clock: VirtualClock,
    records: list[Record],
    restored: dict[str, int],
    report: ReplayReport,
) -> None:
    chats: dict[str, Chat] = {}
    for record in records:
        if record.kind == "chat":
            try:
                chat = from_map(record.body["message"])
            except (MessageError, KeyError, TypeError) as error:
                report.problems.append(f"unreadable chat record: {error}")
                continue
            assert isinstance(chat, Chat)
            chats[chat.request_id] = chat
        elif record.kind == "commit" and record.body["seq"] > restored.get(
            record.body["persona"], 0
        ):
            await _rerun_one(system, clock, chats, record.body, report)


async def _rerun_one(
    system: System,
    clock: VirtualClock,
    chats: dict[str, Chat],
    commit: dict[str, Any],
    report: ReplayReport,
) -> None:
    request_id = commit["request_id"]
    chat = chats.pop(request_id, None)
    if chat is None:
        report.problems.append(f"commit {request_id} has no chat record before it")
        return
    report.requests += 1
    clock.set(chat.arrival)
    outcome = Outcome(text=[])
    try:
        with await system.persona(chat.persona).open_stream(chat) as replies:
            async for reply in replies:
                if isinstance(reply, Token):
                    outcome.text.append(reply.text)
                elif isinstance(reply, Done):
                    outcome.finish = Finish(
                        reply.finish_reason, reply.prompt_tokens, reply.completion_tokens
                    )
    except errors.Mem8Error as error:
        outcome.error = error
    if outcome.digest() == commit["response_sha256"]:
        report.matched += 1
    else:
        report.mismatches.append(f"request {request_id} ({chat.persona}): response differs")
