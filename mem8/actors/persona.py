"""The persona actor: one per model id. A Chat begins at the memory actor (what it feels and
recalls), is judged for interest, answered by the LLM (or subconsciously), and committed."""

from __future__ import annotations

import logging
import math
from contextlib import aclosing
from dataclasses import dataclass

import trio

from mem8 import budget, errors, passages
from mem8.actors.messages import (
    Accepted,
    Ack,
    Begin,
    Begun,
    Chat,
    Commit,
    Done,
    Finished,
    Hit,
    Outcome,
    Percept,
    PersonaChange,
    RecalledMemory,
    Token,
    Turn,
    last_user_text,
)
from mem8.actors.percepts import encoded
from mem8.actors.runtime import Actor, ActorRef, Reply, handles
from mem8.backends.base import ChatMessage, Finish, GenerationRequest, LLMBackend, TextDelta
from mem8.emotion import modulation
from mem8.encoders.base import Encoder
from mem8.interest import Stimulus, interest, subconscious_reply
from mem8.memory import Emotion
from mem8.metrics import Metrics
from mem8.personas import Persona
from mem8.prompt import Recollection, memory_line, persona_prompt

log = logging.getLogger(__name__)
LONG_QUERY_CHARS = passages.PASSAGE_CHARS  # encoded at once beyond this, else only when asked
BACKEND_ERRORS = (errors.BackendUnavailable, errors.BackendFailed)


@dataclass
class Answer:
    """An answer as it is produced: the text pieces so far, then its Finish or its error."""

    text: list[str]
    finish: Finish | None = None
    error: errors.Mem8Error | None = None

    def outcome(self) -> Outcome:
        """The answer as the commit and the journal record it."""
        finish = self.finish
        finished = (
            None
            if finish is None
            else Finished(finish.finish_reason, finish.prompt_tokens, finish.completion_tokens)
        )
        return Outcome.of(self.text, finished, self.error)


@dataclass(frozen=True)
class Judgement:
    """What the persona made of a request before answering it."""

    interest: float
    conscious: bool
    recalled: list[str]


class PersonaActor(Actor):
    def __init__(
        self,
        persona: Persona,
        backend: LLMBackend,
        memory: ActorRef,
        memory_share: float,
        encoder: Encoder,
        metrics: Metrics,
    ) -> None:
        super().__init__()
        self.persona = persona
        self.backend = backend
        self.memory = memory
        self.memory_share = memory_share  # of the context, for recalled memories
        self.encoder = encoder
        self.metrics = metrics

    @handles(PersonaChange)
    async def on_change(self, message: PersonaChange, reply: Reply) -> None:
        """The profile changes for the chats that come after (not for those in flight)."""
        changed = Persona.from_wire(message.persona)
        if changed.id != self.persona.id:
            raise errors.InvalidRequest(f"{changed.id} is not {self.persona.id}")
        self.persona = changed
        await reply.send(Ack(message.request_id))

    @handles(Chat)
    async def on_chat(self, chat: Chat, reply: Reply) -> None:
        """Each chat is answered in its own task: the mailbox takes the next chat while this
        one waits for the memory actor, so concurrent chats reach it together."""
        self.answer_apart(chat, reply, lambda owned: self._answer(chat, owned))

    async def _answer(self, chat: Chat, reply: Reply) -> None:
        text = last_user_text(chat.messages)
        # The query is encoded here, never in the memory actor, which every chat waits on: a
        # long one at once, a short one only if the memory actor says the caller's scope holds
        # memories to recall (a chat in an empty scope costs no encoding).
        vector = (await self._embed([text]))[0] if len(text) > LONG_QUERY_CHARS else None
        begun = await self.memory.ask(
            Begin(chat.request_id, chat, chat.conversation, vector), Begun
        )
        if begun.vector_wanted:
            vector = (await self._embed([text]))[0]
            begin = Begin(chat.request_id, chat, chat.conversation, vector)
            begun = await self.memory.ask(begin, Begun)
        judgement = self._judge(chat, begun)
        recalled = [Hit(r.id, r.score) for r in begun.recalled]
        accepted = Accepted(
            chat.request_id, judgement.interest, judgement.conscious, begun.emotion, recalled
        )
        await reply.send(accepted)
        if not judgement.conscious and self.persona.below_threshold == "subconscious":
            await self._answer_subconsciously(chat, judgement, reply)
        else:
            await self._generate(chat, begun, judgement, reply)

    def _judge(self, chat: Chat, begun: Begun) -> Judgement:
        text = last_user_text(chat.messages)
        stimulus = Stimulus(
            text=text,
            emotion=Emotion(*begun.emotion),
            novelty=begun.novelty,
            addressed=self._addressed(text),
        )
        level = interest(self.persona.traits, stimulus).level
        conscious = level > self.persona.interest_threshold  # the spec: "if interest > 70%"
        return Judgement(level, conscious, [r.id for r in begun.recalled])

    def _addressed(self, text: str) -> bool:
        lowered = text.lower()
        first_name = self.persona.name.split()[-1].lower()
        return first_name in lowered or self.persona.id.lower() in lowered

    async def _generation_request(self, chat: Chat, begun: Begun) -> GenerationRequest:
        """The prompt, fitted to the backend's context (mem8.budget): the persona's prompt and
        tone, the memories recalled, the window's messages the client did not resend, the
        client's messages; and the reply's room."""
        emotion = Emotion(*begun.emotion)
        tone = modulation(emotion)
        present = set(chat.messages)
        window = [ChatMessage(m.role, m.content) for m in begun.window if m not in present]
        model = self.persona.model
        context = await self.backend.context_window(model, self.persona.context)
        recollections = [recollection(r) for r in begun.recalled]
        ask = budget.Ask(
            persona=persona_prompt(self.persona.system_prompt, tone.prompt),
            memories=[(r.id, memory_line(r, chat.arrival)) for r in recollections],
            window=window,
            messages=[ChatMessage(m.role, m.content) for m in chat.messages],
            context=context,
            reply=self.persona.max_tokens if chat.max_tokens is None else chat.max_tokens,
            memory_share=self.memory_share,
        )
        fitted = budget.fit(ask, self.backend.counter(model))
        if chat.temperature is not None:
            temperature = chat.temperature  # the caller's explicit choice is kept exactly
        else:
            temperature = min(2.0, max(0.0, self.persona.temperature + tone.temperature_delta))
        return GenerationRequest(
            model=model,
            messages=fitted.messages,
            temperature=temperature,
            top_p=chat.top_p,
            max_tokens=fitted.max_tokens,
            stop=tuple(chat.stop),
            seed=chat.seed,
            request_id=chat.request_id,
            context=context,
        )

    async def _answer_subconsciously(self, chat: Chat, judgement: Judgement, reply: Reply) -> None:
        text = subconscious_reply(judgement.interest)
        outcome = Answer([text], Finish("stop", 0, 0))
        try:
            await reply.send(Token(chat.request_id, text))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            outcome = Answer([text], error=errors.GenerationCancelled("the client went away"))
        with trio.CancelScope(shield=True):
            await self._commit(chat, judgement, outcome, reply, backend="subconscious")

    async def _generate(self, chat: Chat, begun: Begun, judgement: Judgement, reply: Reply) -> None:
        outcome = Answer(text=[])
        model = self.persona.model
        try:
            request = await self._generation_request(chat, begun)
            with self.metrics.backend_seconds.labels(self.backend.name).time():
                await self._stream(request, reply, outcome)
        except errors.Mem8Error as error:
            outcome.error = error
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            outcome.error = errors.GenerationCancelled("the client went away")
        except Exception as error:  # a backend bug must not take the persona down
            log.exception("backend %s failed", self.backend.name)
            outcome.error = errors.BackendFailed(f"{self.backend.describe(model)}: {error}")
        if outcome.finish is None and outcome.error is None:
            outcome.error = errors.BackendFailed(
                f"{self.backend.describe(model)} ended without finishing its answer"
            )
        if isinstance(outcome.error, BACKEND_ERRORS):
            self.metrics.backend_errors.labels(self.backend.name).inc()
        with trio.CancelScope(shield=True):
            await self._commit(chat, judgement, outcome, reply, backend=self.backend.name)

    async def _stream(self, request: GenerationRequest, reply: Reply, outcome: Answer) -> None:
        async with aclosing(self.backend.generate(request)) as generation:
            async for item in generation:
                if isinstance(item, TextDelta):
                    outcome.text.append(item.text)
                    await reply.send(Token(request.request_id, item.text))
                else:
                    outcome.finish = item

    async def _commit(
        self, chat: Chat, judgement: Judgement, outcome: Answer, reply: Reply, backend: str
    ) -> None:
        """Remembers (durably) before answering Done; a failure to remember fails the request."""
        exchange = [
            Turn("user", last_user_text(chat.messages)),
            Turn("assistant", "".join(outcome.text)),
        ]
        if reply.abandoned and outcome.error is None:  # told nothing, so nothing is kept
            outcome.error = errors.GenerationCancelled("the client went away")
        recorded = outcome.outcome()
        imprinted = judgement.conscious and recorded.error is None
        commit = Commit(
            chat.request_id,
            self.persona.id,
            chat.tenant,
            chat.user,
            chat.conversation,
            chat.arrival,
            exchange,
            judgement.conscious,
            judgement.interest,
            judgement.recalled,
            recorded,
            recorded.digest(),
            backend,
            await self._passages(chat, exchange) if imprinted else [],
            chat.idempotency,
            chat.keep,
        )
        try:  # storing is all the memory actor does with it: the answer waits for that
            await self.memory.ask(commit, Ack, timeout=math.inf)
        except errors.Mem8Error as error:
            outcome.error = outcome.error or error
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
                        backend,
                    )
                )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the caller went away: the answer's task closes the reply all the same

    async def _passages(self, chat: Chat, exchange: list[Turn]) -> list[Percept]:
        """Both sides of the exchange as passages with their vectors, encoded here so that a
        long message does not hold the memory actor, which every chat waits on."""
        said = [
            Percept(turn.content, f"chat:{chat.request_id}:{turn.role}", "text", chat.arrival)
            for turn in exchange
        ]
        return await encoded(self.encoder, said)

    async def _embed(self, texts: list[str]) -> list[bytes]:
        """The texts' encoder vectors as little-endian float32 bytes, from a worker thread."""
        vectors = await trio.to_thread.run_sync(self.encoder.embed_batch, texts)
        return [vector.astype("<f4").tobytes() for vector in vectors]


def recollection(recalled: RecalledMemory) -> Recollection:
    """A memory of Begun's recall, as the prompt shows it."""
    valence, arousal, dominance = recalled.emotion
    return Recollection(
        id=recalled.id,
        text=recalled.text,
        created=recalled.created,
        emotion=(valence, arousal, dominance),
        source=recalled.source,
        excerpt=recalled.excerpt,
        superseded=bool(recalled.superseded_by),
    )
