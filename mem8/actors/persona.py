"""The persona actor: one per model id; turns a Chat into a prompt, a generation and a commit."""

from __future__ import annotations

import hashlib
import logging
from contextlib import aclosing
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import msgpack
import trio

from mem8 import errors
from mem8.actors.messages import (
    Chat,
    Digest,
    Done,
    JournalAppend,
    Message,
    Restore,
    Snapshot,
    SnapshotState,
    StateDigest,
    Token,
)
from mem8.actors.runtime import Actor, ActorRef, Reply
from mem8.backends.base import ChatMessage, Finish, GenerationRequest, LLMBackend, TextDelta
from mem8.clock import Clock
from mem8.personas import Persona

log = logging.getLogger(__name__)


@dataclass
class PersonaState:
    """What a persona accumulates; `seq` numbers its commits (replay skips a snapshot's)."""

    seq: int = 0
    answered: int = 0
    failed: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_arrival: float = 0.0


@dataclass
class Outcome:
    """How one generation ended: text and Finish, or an error."""

    text: list[str]
    finish: Finish | None = None
    error: errors.Mem8Error | None = None

    def digest(self) -> str:
        """Identifies the response the client got; replay compares these."""
        if self.error is not None:
            summary: list[Any] = ["error", type(self.error).__name__, self.error.message]
        else:
            assert self.finish is not None
            summary = ["ok", "".join(self.text), *asdict(self.finish).values()]
        return hashlib.sha256(msgpack.packb(summary, use_bin_type=True)).hexdigest()

    def to_wire(self) -> dict[str, Any]:
        error = None if self.error is None else [type(self.error).__name__, self.error.message]
        finish = None if self.finish is None else list(asdict(self.finish).values())
        return {"text": self.text, "finish": finish, "error": error}


class PersonaActor(Actor):
    handles: ClassVar[dict[type[Message], str]] = {
        Chat: "on_chat",
        StateDigest: "on_state_digest",
        Snapshot: "on_snapshot",
        Restore: "on_restore",
    }

    def __init__(
        self, persona: Persona, backend: LLMBackend, clock: Clock, journal: ActorRef | None
    ) -> None:
        super().__init__()
        self.persona = persona
        self.backend = backend
        self.clock = clock
        self.journal = journal
        self.state = PersonaState()

    async def on_chat(self, chat: Chat, reply: Reply) -> None:
        await self._record("chat", {"message": msgpack.unpackb(chat.encode())}, chat.arrival)
        request = self._generation_request(chat)
        self.spawn(lambda: self._generate(chat, request, reply.detach()))

    def _generation_request(self, chat: Chat) -> GenerationRequest:
        messages = [ChatMessage("system", self.persona.system_prompt)]
        messages += [ChatMessage(m["role"], m["content"]) for m in chat.messages]
        temperature = self.persona.temperature if chat.temperature is None else chat.temperature
        return GenerationRequest(
            model=self.persona.model,
            messages=tuple(messages),
            temperature=temperature,
            top_p=chat.top_p,
            max_tokens=chat.max_tokens,
            stop=tuple(chat.stop),
            seed=chat.seed,
            request_id=chat.request_id,
        )

    async def _generate(self, chat: Chat, request: GenerationRequest, reply: Reply) -> None:
        outcome = Outcome(text=[])
        try:
            await self._stream(request, reply, outcome)
        except errors.Mem8Error as error:
            outcome.error = error
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            outcome.error = errors.GenerationCancelled("the client went away")
        except Exception as error:  # a backend bug must not take the persona down
            log.exception("backend %s failed", self.backend.name)
            outcome.error = errors.BackendFailed(f"{self.backend.describe(request.model)}: {error}")
        if outcome.finish is None and outcome.error is None:
            outcome.error = errors.BackendFailed(
                f"{self.backend.describe(request.model)} ended without finishing its answer"
            )
        with trio.CancelScope(shield=True):
            await self._commit(chat, outcome, reply)

    async def _stream(self, request: GenerationRequest, reply: Reply, outcome: Outcome) -> None:
        async with aclosing(self.backend.generate(request)) as generation:
            async for item in generation:
                if isinstance(item, TextDelta):
                    outcome.text.append(item.text)
                    await reply.send(Token(request.request_id, item.text))
                else:
                    outcome.finish = item

    async def _commit(self, chat: Chat, outcome: Outcome, reply: Reply) -> None:
        # State changes in one await-free block: the actor's own tasks never interleave here.
        state = self.state
        state.seq += 1
        state.last_arrival = max(state.last_arrival, chat.arrival)
        if outcome.error is None and outcome.finish is not None:
            state.answered += 1
            state.prompt_tokens += outcome.finish.prompt_tokens
            state.completion_tokens += outcome.finish.completion_tokens
        elif isinstance(outcome.error, errors.GenerationCancelled):
            state.cancelled += 1
        else:
            state.failed += 1
        body = {
            "request_id": chat.request_id,
            "persona": self.persona.id,
            "seq": state.seq,
            "outcome": outcome.to_wire(),
            "response_sha256": outcome.digest(),
        }
        await self._record("commit", body, self.clock.now())
        try:
            if outcome.error is not None:
                await reply.fail(outcome.error)
            else:
                assert outcome.finish is not None
                finish = outcome.finish
                await reply.send(
                    Done(
                        chat.request_id,
                        finish.finish_reason,
                        finish.prompt_tokens,
                        finish.completion_tokens,
                        self.backend.name,
                    )
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await reply.close()

    async def _record(self, kind: str, body: dict[str, Any], at: float) -> None:
        if self.journal is not None:
            await self.journal.tell(JournalAppend(kind, at, body))

    async def on_state_digest(self, message: StateDigest, reply: Reply) -> None:
        await reply.send(Digest(message.request_id, self.persona.id, state_sha256(self.export())))

    async def on_snapshot(self, message: Snapshot, reply: Reply) -> None:
        await reply.send(SnapshotState(message.request_id, self.persona.id, self.export()))

    async def on_restore(self, message: Restore, reply: Reply) -> None:
        self.state = PersonaState(**message.state)
        await reply.send(Digest(message.request_id, self.persona.id, state_sha256(self.export())))

    def export(self) -> dict[str, Any]:
        return asdict(self.state)


def state_sha256(state: dict[str, Any]) -> str:
    return hashlib.sha256(msgpack.packb(state, use_bin_type=True)).hexdigest()
