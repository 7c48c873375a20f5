"""The persona actor: one per model id. A Chat begins at the memory actor (what it feels and
recalls), is judged for interest, answered by the LLM (or subconsciously), and committed."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import trio

from mem8 import budget, errors, passages
from mem8.actors.messages import (
    Accepted,
    Ack,
    AnswerShape,
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
    ToolCalled,
    Turn,
    last_user_text,
)
from mem8.actors.percepts import encoded, query_vector
from mem8.actors.runtime import Actor, ActorRef, Reply, handles
from mem8.backends.base import (
    ChatMessage,
    Finish,
    GenerationRequest,
    LLMBackend,
    ResponseFormat,
    TextDelta,
    Tool,
    ToolCall,
    ToolCalls,
)
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
    """An answer as it is produced: the text pieces and the tool calls so far, then its Finish
    or its error; with n > 1, the first sample's (the one remembered), the others' finish
    reasons and tokens beside it."""

    text: list[str]
    calls: list[ToolCall] = field(default_factory=list)
    finish: Finish | None = None
    error: errors.Mem8Error | None = None
    reasons: list[str] = field(default_factory=list)  # every sample's finish reason
    completion_tokens: int = 0  # every sample's

    def outcome(self) -> Outcome:
        """The answer as the commit and the journal record it."""
        finish = self.finish
        finished = (
            None
            if finish is None
            else Finished(finish.finish_reason, finish.prompt_tokens, finish.completion_tokens)
        )
        calls = [_call_shape(call) for call in self.calls]
        return Outcome.of(self.text, finished, self.error, calls)

    def told(self) -> str:
        """The answer as the persona remembers it: its text, then the calls it made."""
        return " ".join(part for part in ("".join(self.text), told(self.calls)) if part)


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
        vector = await self._query(text) if len(text) > LONG_QUERY_CHARS else None
        begun = await self.memory.ask(
            Begin(chat.request_id, chat, chat.conversation, vector), Begun
        )
        if begun.vector_wanted:
            vector = await self._query(text)
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
        present = resent(chat.messages)
        window = [chat_message(m) for m in begun.window if m not in present]
        model = self.persona.model
        context = await self.backend.context_window(model, self.persona.context)
        recollections = [recollection(r) for r in begun.recalled]
        ask = budget.Ask(
            persona=persona_prompt(self.persona.system_prompt, tone.prompt),
            memories=[(r.id, memory_line(r, chat.arrival)) for r in recollections],
            window=window,
            messages=[chat_message(m) for m in chat.messages],
            context=context,
            reply=self.persona.max_tokens if chat.max_tokens is None else chat.max_tokens,
            memory_share=self.memory_share,
        )
        fitted = budget.fit(ask, self.backend.counter(model))
        if chat.temperature is not None:
            temperature = chat.temperature  # the caller's explicit choice is kept exactly
        else:
            temperature = min(2.0, max(0.0, self.persona.temperature + tone.temperature_delta))
        shape = chat.shape or AnswerShape()
        if shape.logprobs and not self.backend.can_logprobs:
            raise errors.InvalidRequest(
                f"logprobs are not available from this persona's backend, "
                f"{self.backend.describe(model)}"
                + (f" ({self.backend.logprobs_hint})" if self.backend.logprobs_hint else ""),
                param="logprobs",
            )
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
            tools=tuple(Tool(**tool) for tool in json.loads(shape.tools)),
            tool_choice=shape.tool_choice,
            parallel_tool_calls=shape.parallel_tool_calls,
            response_format=_response_format(shape.response_format),
            logprobs=shape.logprobs,
            top_logprobs=shape.top_logprobs,
        )

    async def _answer_subconsciously(self, chat: Chat, judgement: Judgement, reply: Reply) -> None:
        text = subconscious_reply(judgement.interest)
        outcome = Answer([text], finish=Finish("stop", 0, 0))
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
                await self._samples(request, chat.shape or AnswerShape(), reply, outcome)
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

    async def _samples(
        self, request: GenerationRequest, shape: AnswerShape, reply: Reply, outcome: Answer
    ) -> None:
        """The n answers asked for, one after another, each with its own seed; only the
        first is the persona's own (remembered)."""
        first = request
        for index in range(shape.n):
            if index:
                seed = (first.seed or 0) + index  # another draw, reproducible if seeded
                request = dataclasses.replace(first, seed=seed)
            sample = outcome if index == 0 else Answer(text=[])
            await self._stream(request, reply, sample, index)
            if sample.finish is None:
                if index:  # the first's is checked as every answer's is
                    raise errors.BackendFailed(f"answer {index} ended without finishing")
                return
            outcome.reasons.append(sample.finish.finish_reason)
            outcome.completion_tokens += sample.finish.completion_tokens

    async def _stream(
        self, request: GenerationRequest, reply: Reply, outcome: Answer, index: int
    ) -> None:
        async with aclosing(self.backend.generate(request)) as generation:
            async for item in generation:
                if isinstance(item, TextDelta):
                    outcome.text.append(item.text)
                    logprobs = _logprobs_json(item) if request.logprobs else None
                    await reply.send(Token(request.request_id, item.text, index, logprobs))
                elif isinstance(item, ToolCalls):
                    outcome.calls.extend(item.calls)
                    calls = json.dumps([_call_shape(call) for call in item.calls])
                    await reply.send(ToolCalled(request.request_id, calls, index))
                else:
                    outcome.finish = item

    async def _commit(
        self, chat: Chat, judgement: Judgement, outcome: Answer, reply: Reply, backend: str
    ) -> None:
        """Remembers (durably) before answering Done; a failure to remember fails the request."""
        exchange = [
            Turn("user", asked(chat.messages)),
            Turn("assistant", outcome.told()),
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
                        outcome.completion_tokens or finish.completion_tokens,
                        backend,
                        outcome.reasons if len(outcome.reasons) > 1 else [],
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

    async def _query(self, text: str) -> bytes:
        """The query's vector as little-endian float32 bytes, from worker threads."""
        return (await query_vector(self.encoder, text)).astype("<f4").tobytes()


def chat_message(turn: Turn) -> ChatMessage:
    """A conversation's turn as the backend reads it, tool calls and answers included."""
    calls = tuple(
        ToolCall(call["id"], call["function"]["name"], call["function"]["arguments"])
        for call in json.loads(turn.tool_calls or "[]")
    )
    return ChatMessage(turn.role, turn.content, calls, turn.tool_call_id or "", turn.name or "")


def resent(turns: list[Turn]) -> set[Turn]:
    """The turns the client sent, and each as the window remembers it (a call told as text,
    a user's message with the tool results after it), so the window adds neither again."""
    present = set(turns)
    for i, turn in enumerate(turns):
        if turn.tool_calls:
            said = turn.content + told(chat_message(turn).tool_calls)
            present.add(Turn("assistant", said))
        if turn.role == "tool" and (i + 1 == len(turns) or turns[i + 1].role != "tool"):
            present.add(Turn("user", asked(turns[: i + 1])))
    return present


def told(calls: Sequence[ToolCall]) -> str:
    """Tool calls as the persona remembers having made them."""
    return "; ".join(f"called {call.name}({call.arguments})" for call in calls)


def asked(turns: list[Turn]) -> str:
    """What the persona remembers being asked: the user's last message, and what the tools it
    called answered since (their results are part of the exchange)."""
    last_user = max((i for i, turn in enumerate(turns) if turn.role == "user"), default=-1)
    results = [
        f"{turn.name or 'a tool'} returned {turn.content}"
        for turn in turns[last_user + 1 :]
        if turn.role == "tool"
    ]
    return "\n".join([last_user_text(turns), *results]).strip()


def _call_shape(call: ToolCall) -> dict[str, Any]:
    """A call in OpenAI's tool_calls shape."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _logprobs_json(delta: TextDelta) -> str:
    """A piece's tokens in OpenAI's logprobs.content shape."""
    return json.dumps(
        [
            {
                "token": item.token,
                "logprob": item.logprob,
                "bytes": list(item.token.encode("utf-8")),
                "top_logprobs": [
                    {"token": top.token, "logprob": top.logprob, "bytes": list(top.token.encode())}
                    for top in item.top
                ],
            }
            for item in delta.logprobs
        ]
    )


def _response_format(described: str | None) -> ResponseFormat | None:
    if described is None:
        return None
    return ResponseFormat(**json.loads(described))


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
