"""The actor runtime: trio tasks with bounded mailboxes, ask/tell, and a restarting supervisor."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeVar

import trio

from mem8 import errors
from mem8.actors.messages import Failed, Message, decode

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)
REPLY_BUFFER = 32
Payload = Message | bytes
Wire = Literal["objects", "msgpack"]


@dataclass(frozen=True, slots=True)
class Envelope:
    payload: Payload
    reply: trio.MemorySendChannel[Payload] | None


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

    def detach(self) -> Reply:
        """Hands the reply to a background task, which must close it; the handler returns."""
        self.detached = True
        return self

    @property
    def wanted(self) -> bool:
        return self._channel is not None

    async def send(self, message: Message) -> None:
        """Sends one message; raises trio.BrokenResourceError when the caller has gone."""
        if self._channel is not None:
            payload = pack(message, self.wire)
            try:  # room in the reply buffer, the common case: no trip through the scheduler
                self._channel.send_nowait(payload)
            except trio.WouldBlock:
                await self._channel.send(payload)

    async def fail(self, error: errors.Mem8Error) -> None:
        failure = Failed(self.request_id, type(error).__name__, error.message, error.param)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.send(failure)

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.close()  # a memory channel closes at once: no checkpoint needed


class Actor:
    """State lives in the subclass; `handlers` maps each message class to its coroutine."""

    handles: ClassVar[dict[type[Message], str]] = {}

    def __init__(self) -> None:
        self.nursery: trio.Nursery | None = None

    async def started(self) -> None:
        """Runs once each time the actor (re)starts, before its first message."""

    async def dispatch(self, message: Message, reply: Reply) -> None:
        method_name = self.handles.get(type(message))
        if method_name is None:
            raise errors.InvalidRequest(f"{type(self).__name__} does not handle {message.type}")
        await getattr(self, method_name)(message, reply)

    def spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        """Runs work in the background for as long as this actor lives."""
        assert self.nursery is not None, "spawn() before the actor started"
        self.nursery.start_soon(work)


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

    async def tell(self, message: Message) -> None:
        await self._deliver(Envelope(pack(message, self.wire), None))

    async def ask(self, message: Message, reply_type: type[M], timeout: float | None = None) -> M:
        """Sends message and waits for its single reply of reply_type."""
        with await self.open_stream(message, timeout) as replies:
            async for answer in replies:
                if isinstance(answer, reply_type):
                    return answer
                raise errors.ActorUnavailable(
                    f"{self.name} answered {answer.type}, not {reply_type.type}"
                )
        raise errors.ActorUnavailable(f"{self.name} closed the ask without an answer")

    async def open_stream(
        self, message: Message, first_timeout: float | None = None, idle_timeout: float = math.inf
    ) -> ReplyStream:
        """Sends message; the stream yields its replies, the first within first_timeout (the
        ask timeout by default), then each within idle_timeout."""
        send, receive = trio.open_memory_channel[Payload](REPLY_BUFFER)
        timeout = self.ask_timeout if first_timeout is None else first_timeout
        try:
            with send:  # the actor holds the clone; closing this one needs no checkpoint
                await self._deliver(Envelope(pack(message, self.wire), send.clone()))
        except BaseException:
            receive.close()
            raise
        return ReplyStream(self.name, receive, timeout, idle_timeout)

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


class Supervisor:
    """Runs actors in one nursery and restarts one that raises, failing only its pending ask."""

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        ask_timeout: float,
        mailbox_size: int,
        max_restarts: int = 5,
        restart_window: float = 60.0,
        wire: Wire = "objects",
    ) -> None:
        self._nursery = nursery
        self._wire = wire
        self._ask_timeout = ask_timeout
        self._mailbox_size = mailbox_size
        self._max_restarts = max_restarts
        self._restart_window = restart_window
        self.refs: dict[str, ActorRef] = {}
        self.restarts: dict[str, int] = {}

    def start(self, name: str, factory: Callable[[], Actor]) -> ActorRef:
        send, receive = trio.open_memory_channel[Envelope](self._mailbox_size)
        ref = ActorRef(name, send, self._ask_timeout, self._wire)
        self.refs[name] = ref
        self.restarts[name] = 0
        self._nursery.start_soon(self._supervise, name, factory, receive)
        return ref

    async def _supervise(
        self, name: str, factory: Callable[[], Actor], mailbox: trio.MemoryReceiveChannel[Envelope]
    ) -> None:
        recent: list[float] = []
        async with mailbox:
            while True:
                crashed = await self._run_once(name, factory(), mailbox)
                if not crashed:
                    return
                now = trio.current_time()
                recent = [t for t in recent if now - t < self._restart_window] + [now]
                self.restarts[name] += 1
                if len(recent) > self._max_restarts:
                    log.error(
                        "actor %s failed %d times in %g s; giving up",
                        name,
                        len(recent),
                        self._restart_window,
                    )
                    return
                log.warning("actor %s restarted (restart %d)", name, self.restarts[name])

    async def _run_once(
        self, name: str, actor: Actor, mailbox: trio.MemoryReceiveChannel[Envelope]
    ) -> bool:
        """Runs the actor until its mailbox closes (False) or a handler raises (True)."""
        crashed = False
        try:
            async with trio.open_nursery() as nursery:
                actor.nursery = nursery
                await actor.started()
                async for envelope in mailbox:
                    await _handle(name, actor, envelope)
                nursery.cancel_scope.cancel()
        except* _Crash:
            crashed = True
        return crashed


class _Crash(Exception):
    pass


async def _handle(name: str, actor: Actor, envelope: Envelope) -> None:
    message = unpack(envelope.payload)
    wire: Wire = "msgpack" if isinstance(envelope.payload, bytes) else "objects"
    reply = Reply(envelope.reply, getattr(message, "request_id", ""), wire)
    try:
        await actor.dispatch(message, reply)
    except errors.Mem8Error as error:
        await reply.fail(error)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the caller went away mid-answer: nothing to tell it
    except Exception as error:
        log.exception("actor %s crashed on %s", name, message.type)
        await reply.fail(errors.ActorUnavailable(f"{name} failed handling {message.type}: {error}"))
        raise _Crash from error
    finally:
        if not reply.detached:
            await reply.close()
