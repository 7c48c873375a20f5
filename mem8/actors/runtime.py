"""The actor runtime: trio tasks with bounded mailboxes, ask/tell, and a restarting supervisor."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import trio

from mem8 import errors
from mem8.actors.messages import Failed, Message, decode

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)
A = TypeVar("A", bound="Actor")
REPLY_BUFFER = 32
YIELD_EVERY = 16  # envelopes an actor with a backlog takes before it lets other tasks run
Payload = Message | bytes
Wire = Literal["objects", "msgpack"]


@dataclass(frozen=True, slots=True)
class Envelope:
    payload: Payload
    reply: trio.MemorySendChannel[Payload] | None


def new_request_id() -> str:
    """A fresh id for a request or an internal ask: every id in the system is minted here."""
    return os.urandom(8).hex()


def pack(message: Message, wire: Wire) -> Payload:
    """What crosses an actor boundary: the frozen message itself between actors of one process
    ("objects"), its msgpack bytes where they could be in different processes ("msgpack")."""
    return message.encode() if wire == "msgpack" else message


def unpack(payload: Payload) -> Message:
    return decode(payload) if isinstance(payload, bytes) else payload


class Reply:
    """The channel an actor answers an ask on; a closed reply means the caller went away."""

    def __init__(
        self, channel: trio.MemorySendChannel[Payload] | None, request_id: str, wire: Wire
    ) -> None:
        self._channel = channel
        self.request_id = request_id
        self.wire = wire
        self.detached = False

    def hand_over(self) -> Reply:
        """This reply, now owned by another task (closed when that task's answer ends)."""
        self.detached = True
        return Reply(self._channel, self.request_id, self.wire)

    @property
    def wanted(self) -> bool:
        return self._channel is not None

    @property
    def abandoned(self) -> bool:
        """Whether the caller of an ask has stopped waiting for it (timed out, went away)."""
        channel = self._channel
        return channel is not None and channel.statistics().open_receive_channels == 0

    async def send(self, message: Message) -> None:
        """Sends one message; raises trio.BrokenResourceError when the caller has gone."""
        if self._channel is None:
            return
        payload = pack(message, self.wire)
        try:  # room in the buffer: no trip through the scheduler
            self._channel.send_nowait(payload)
        except trio.WouldBlock:
            await self._channel.send(payload)

    async def fail(self, error: errors.Mem8Error) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.send(self._failure(error))

    def fail_now(self, error: errors.Mem8Error) -> None:
        """Fails the ask without waiting (for a cancelled answer): if the buffer is full, the
        caller reads the end of the replies instead, which it reports as unfinished."""
        if self._channel is not None:
            with contextlib.suppress(
                trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError
            ):
                self._channel.send_nowait(pack(self._failure(error), self.wire))

    def _failure(self, error: errors.Mem8Error) -> Failed:
        return Failed(self.request_id, type(error).__name__, error.message, error.param)

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.close()  # synchronous: closing needs no trip through the scheduler


Handler = Callable[[A, M, "Reply"], Awaitable[None]]
_HANDLED = "_mem8_handles"  # the attribute on a handler naming the message class it takes


def handles(kind: type[M]) -> Callable[[Handler[A, M]], Handler[A, M]]:
    """Marks an actor's method as its handler of `kind` messages (mypy checks it takes them)."""

    def mark(method: Handler[A, M]) -> Handler[A, M]:
        setattr(method, _HANDLED, kind)
        return method

    return mark


class Actor:
    """State lives in the subclass; `handlers` maps each message class to the method marked
    `@handles` for it (an override of a marked method, marked or not, takes its place)."""

    handlers: ClassVar[dict[type[Message], Callable[[Any, Any, Reply], Awaitable[None]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "handles" in vars(cls):  # the old spelling: a map to names, which nothing would read
            raise TypeError(f"{cls.__name__}: mark handlers with @handles(Message) instead")
        names: dict[type[Message], str] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                kind = getattr(value, _HANDLED, None)
                if kind is not None:
                    names[kind] = name
        cls.handlers = {kind: getattr(cls, name) for kind, name in names.items()}

    def __init__(self) -> None:
        self.nursery: trio.Nursery | None = None
        self.name = type(self).__name__  # the supervisor's name for it, once started

    async def started(self) -> None:
        """Runs once each time the actor (re)starts, before its first message."""

    async def dispatch(self, message: Message, reply: Reply) -> None:
        handler = self.handlers.get(type(message))
        if handler is None:
            raise errors.InvalidRequest(f"{type(self).__name__} does not handle {message.type}")
        await handler(self, message, reply)

    def spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        """Runs work in the background for as long as this actor lives."""
        assert self.nursery is not None, "spawn() before the actor started"
        self.nursery.start_soon(work)

    def answer_apart(
        self, message: Message, reply: Reply, answer: Callable[[Reply], Awaitable[None]]
    ) -> None:
        """Answers message in a task of its own, so the mailbox moves on while the answer
        waits (on another actor, a backend). For answers that change no actor state: any
        failure goes to its caller alone (a bug is logged), and the actor is not restarted,
        so the other answers in flight go on."""
        owned = reply.hand_over()
        self.spawn(lambda: _answering(self.name, message, owned, lambda: answer(owned), False))


class ActorRef:
    """The only handle others get: send messages, never touch state."""

    def __init__(
        self,
        name: str,
        mailbox: trio.MemorySendChannel[Envelope],
        ask_timeout: float,
        wire: Wire = "objects",
    ) -> None:
        self.name = name
        self._mailbox = mailbox
        self.ask_timeout = ask_timeout
        self.wire = wire

    @property
    def waiting(self) -> int:
        """Messages in the mailbox, not yet taken."""
        return self._mailbox.statistics().current_buffer_used

    async def tell(self, message: Message) -> None:
        await self._deliver(Envelope(pack(message, self.wire), None))

    async def ask(self, message: Message, reply_type: type[M], timeout: float | None = None) -> M:
        """Sends message and waits for its single reply of reply_type."""
        with await self.open_stream(message, timeout) as replies:
            return _checked(self.name, await anext(replies, None), reply_type)

    async def open_stream(
        self, message: Message, first_timeout: float | None = None, idle_timeout: float = math.inf
    ) -> ReplyStream:
        """Sends message; the stream yields its replies, the first within first_timeout (the
        ask timeout by default), then each within idle_timeout."""
        send, receive = trio.open_memory_channel[Payload](REPLY_BUFFER)
        timeout = self.ask_timeout if first_timeout is None else first_timeout
        try:  # the actor holds the only send end: its closing it ends the stream
            await self._deliver(Envelope(pack(message, self.wire), send))
        except BaseException:
            send.close()
            receive.close()
            raise
        return ReplyStream(self.name, receive, timeout, idle_timeout)

    async def relay(self, payload: Payload, reply: trio.MemorySendChannel[Payload] | None) -> None:
        """Delivers a message packed elsewhere (an ask from an actor in another process), its
        replies to `reply`, which the actor closes when its answer ends."""
        await self._deliver(Envelope(payload, reply))

    async def _deliver(self, envelope: Envelope) -> None:
        try:  # the common case, room in the mailbox, needs no timer
            self._mailbox.send_nowait(envelope)
            return
        except trio.WouldBlock:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise errors.ActorUnavailable(f"{self.name} is not running") from error
        with trio.move_on_after(self.ask_timeout) as scope:
            try:
                await self._mailbox.send(envelope)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                raise errors.ActorUnavailable(f"{self.name} is not running") from error
        if scope.cancelled_caught:
            raise errors.Overloaded(f"{self.name}'s mailbox stayed full for {self.ask_timeout:g} s")


class ReplyStream:
    """An ask's replies as they come; a Failed reply is raised as its mem8 error. Closing it
    tells the actor that the caller has gone (its next send fails)."""

    def __init__(
        self, actor: str, receive: trio.MemoryReceiveChannel[Payload], first: float, idle: float
    ) -> None:
        self._actor = actor
        self._receive = receive
        self._timeout = first
        self._idle = idle

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> Message:
        try:  # a reply already waiting needs no timer
            raw = self._receive.receive_nowait()
        except trio.WouldBlock:
            raw = await self._wait()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        self._timeout = self._idle
        answer = unpack(raw)
        if isinstance(answer, Failed):
            raise errors.rebuild(answer.error, answer.message, answer.param)
        return answer

    async def _wait(self) -> Payload:
        with trio.move_on_after(self._timeout) as scope:
            try:
                return await self._receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise StopAsyncIteration from None
        assert scope.cancelled_caught
        raise errors.ActorUnavailable(f"{self._actor} did not answer within {self._timeout:g} s")

    def close(self) -> None:
        self._receive.close()

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class Recipe:
    """How another process builds an actor: `build` (picklable, run there) makes it from refs
    to the actors of this process it talks to, given by the names in `refs`."""

    build: Callable[[Mapping[str, ActorRef]], Awaitable[Actor]]
    refs: tuple[str, ...] = ()


class Placement(Protocol):
    """Where the actors with a recipe run: another process (mem8.actors.ray_host: Ray's)."""

    async def run(
        self,
        name: str,
        recipe: Recipe,
        mailbox: trio.MemoryReceiveChannel[Envelope],
        refs: Mapping[str, ActorRef],
    ) -> str | None:
        """Serves the mailbox from there until it closes (None) or the actor fails (how)."""

    async def started(self, names: Iterable[str]) -> None:
        """Returns once the named actors run there (starting a process takes a while)."""


class Supervisor:
    """Runs actors in one nursery and restarts one that raises, failing only its pending ask.
    With a placement, the actors started with a recipe run where it puts them, and are
    restarted by the same rules."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        ask_timeout: float,
        mailbox_size: int,
        max_restarts: int = 5,
        restart_window: float = 60.0,
        wire: Wire = "objects",
        placement: Placement | None = None,
    ) -> None:
        self._nursery = nursery
        self._wire = wire
        self.placement = placement
        self._ask_timeout = ask_timeout
        self._mailbox_size = mailbox_size
        self._max_restarts = max_restarts
        self._restart_window = restart_window
        self.refs: dict[str, ActorRef] = {}
        self.placed: list[str] = []  # the actors run where the placement put them
        self.restarts: dict[str, int] = {}
        self.down: dict[str, str] = {}  # the actors given up on, with their last failure

    def start(
        self,
        name: str,
        factory: Callable[[], Actor],
        on_restart: Callable[[], Awaitable[None]] | None = None,
        recipe: Recipe | None = None,
    ) -> ActorRef:
        """Starts the actor (from its recipe where the placement puts it, if both are given);
        after each restart, on_restart runs in a task of its own (for state another actor must
        give back to the fresh one)."""
        send, receive = trio.open_memory_channel[Envelope](self._mailbox_size)
        ref = ActorRef(name, send, self._ask_timeout, self._wire)
        self.refs[name] = ref
        self.restarts[name] = 0
        placement = self.placement
        if recipe is not None and placement is not None:
            self.placed.append(name)

        def run() -> Awaitable[str | None]:
            if recipe is not None and placement is not None:
                return placement.run(name, recipe, receive, self.refs)
            return run_actor(name, factory(), receive)

        self._nursery.start_soon(self._supervise, name, run, receive, on_restart)
        return ref

    def mailboxes(self) -> dict[str, int]:
        """Each actor's messages waiting, by name."""
        return {name: ref.waiting for name, ref in self.refs.items()}

    async def _supervise(
        self,
        name: str,
        run: Callable[[], Awaitable[str | None]],
        mailbox: trio.MemoryReceiveChannel[Envelope],
        on_restart: Callable[[], Awaitable[None]] | None,
    ) -> None:
        recent: list[float] = []
        async with mailbox:
            while True:
                crashed = await run()
                if crashed is None:
                    return
                now = trio.current_time()
                recent = [t for t in recent if now - t < self._restart_window] + [now]
                self.restarts[name] += 1
                if len(recent) > self._max_restarts:
                    self.down[name] = (
                        f"failed {len(recent)} times in {self._restart_window:g} s; last: {crashed}"
                    )
                    log.error(
                        "actor %s failed %d times in %g s; giving up",
                        name,
                        len(recent),
                        self._restart_window,
                    )
                    return
                log.warning("actor %s restarted (restart %d)", name, self.restarts[name])
                if on_restart is not None:
                    self._nursery.start_soon(on_restart)


async def run_actor(
    name: str, actor: Actor, mailbox: trio.MemoryReceiveChannel[Envelope]
) -> str | None:
    """Runs the actor until its mailbox closes (None) or a handler raises (what failed)."""
    crashed: str | None = None
    try:
        async with trio.open_nursery() as nursery:
            actor.nursery, actor.name = nursery, name
            await actor.started()
            taking = _Taking(mailbox)
            while (envelope := await taking.next()) is not None:
                await _handle(name, actor, envelope)
            nursery.cancel_scope.cancel()
    except* _Crash as group:
        crashed = "; ".join(str(error) for error in group.exceptions)
    return crashed


class _Crash(Exception):
    """A handler's bug, said as what it was handling and the error."""


class _Taking:
    """An actor's mailbox read in turn. A waiting envelope is taken without a trip through the
    scheduler (the handlers are the actor's checkpoints), but every YIELD_EVERY-th one yields, so a
    backlog of await-free handlers cannot hold the event loop; and a cancelled actor (one of
    its tasks crashed, or it is stopping) takes nothing more: its backlog waits for the next."""

    def __init__(self, mailbox: trio.MemoryReceiveChannel[Envelope]) -> None:
        self._mailbox = mailbox
        self._taken = 0

    async def next(self) -> Envelope | None:
        """The next envelope, or None once the mailbox is closed."""
        self._taken += 1
        if self._taken % YIELD_EVERY == 0:
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()
        try:
            return self._mailbox.receive_nowait()
        except trio.WouldBlock:
            pass
        except trio.EndOfChannel:
            return None
        try:
            return await self._mailbox.receive()
        except trio.EndOfChannel:
            return None


async def _handle(name: str, actor: Actor, envelope: Envelope) -> None:
    message = unpack(envelope.payload)
    wire: Wire = "msgpack" if isinstance(envelope.payload, bytes) else "objects"
    reply = Reply(envelope.reply, getattr(message, "request_id", ""), wire)
    await _answering(name, message, reply, lambda: actor.dispatch(message, reply), True)


async def _answering(
    name: str,
    message: Message,
    reply: Reply,
    answer: Callable[[], Awaitable[None]],
    restart_on_bug: bool,
) -> None:
    """Runs a handler (or an answer handed to its own task): how an answer fails, and the
    reply closed at the end unless it was handed on. A bug fails the caller, then restarts
    the actor if restart_on_bug; an answer cancelled mid-way (its actor restarting or
    stopping) fails its caller too, rather than ending the replies as if finished."""
    try:
        await answer()
    except errors.Mem8Error as error:
        await reply.fail(error)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the caller went away mid-answer: nothing to tell it
    except trio.Cancelled:
        reply.fail_now(errors.ActorUnavailable(f"{name} stopped while handling {message.type}"))
        raise
    except Exception as error:
        log.exception("actor %s crashed on %s", name, message.type)
        await reply.fail(errors.ActorUnavailable(f"{name} failed handling {message.type}: {error}"))
        if restart_on_bug:
            raise _Crash(f"{message.type}: {type(error).__name__}: {error}") from error
    finally:
        if not reply.detached:
            await reply.close()


_Key = TypeVar("_Key")


async def ask_each(
    asks: dict[_Key, tuple[ActorRef, Message]], reply_type: type[M]
) -> dict[_Key, M]:
    """Asks several actors at once: every message is delivered before the first answer is
    awaited (so no task per actor is needed); their single replies by key. A reply not of
    reply_type (or none) is ActorUnavailable naming the actor, as in ActorRef.ask."""
    streams: list[tuple[_Key, str, ReplyStream]] = []
    try:
        for key, (actor, message) in asks.items():
            streams.append((key, actor.name, await actor.open_stream(message)))
        answers: dict[_Key, M] = {}
        for key, name, stream in streams:
            answers[key] = _checked(name, await anext(stream, None), reply_type)
        return answers
    finally:
        for _, _, stream in streams:
            stream.close()


def _checked(actor: str, answer: Message | None, reply_type: type[M]) -> M:
    """The one reply an ask waits for, if it is of the type asked for."""
    if isinstance(answer, reply_type):
        return answer
    if answer is None:
        raise errors.ActorUnavailable(f"{actor} closed the ask without an answer")
    raise errors.ActorUnavailable(f"{actor} answered {answer.type}, not {reply_type.type}")
