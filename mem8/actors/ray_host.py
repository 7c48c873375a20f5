"""Actors in Ray actor processes (MEM8_RUNTIME=ray): the scale-out boundary is the actor one.

On the head, RayPlacement runs each actor started with a recipe in a `Hosted` Ray actor, spread
over the cluster's nodes, and serves its mailbox from here: callers keep their ActorRef, its
bounds and timeouts. What crosses is each message's msgpack bytes, in order: an envelope
forwarded there, its replies relayed back, and the asks the hosted actor makes of the head's
actors (a persona's of memory) relayed the other way. The trio side never blocks on Ray: it
waits on an ObjectRef's future, woken through its trio token. A hosted actor that crashes, or a
worker that dies, fails the asks in flight with ActorUnavailable naming the actor, and the
head's supervisor restarts it in a fresh Ray actor by its usual rules. Ray is imported only
here, and only when a placement is made."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import itertools
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import trio

from mem8 import errors
from mem8.actors.messages import Failed, decode
from mem8.actors.runtime import (
    REPLY_BUFFER,
    ActorRef,
    Envelope,
    Payload,
    Recipe,
    run_actor,
)

T = TypeVar("T")
Batch = tuple[list[bytes], bool]  # replies, and whether the answer has ended
Callout = tuple[int, str, bytes, bool]  # the ask's number, the head actor, message, reply wanted


@contextlib.contextmanager
def joined(address: str) -> Iterator[None]:
    """In a Ray cluster: the one this process already joined, else the one at address (empty:
    a local one started here), left at the end."""
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(address=address or None, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


class RayPlacement:
    """Runs actors in Ray actors: SPREAD over the cluster's nodes, with no CPU reserved (a
    hosted actor mostly waits), one process each."""

    def __init__(self, ask_timeout: float, mailbox_size: int) -> None:
        self._ask_timeout = ask_timeout
        self._mailbox_size = mailbox_size
        self.hosted: dict[str, Any] = {}  # the Ray actor each name runs in now
        self._placed: defaultdict[str, trio.Event] = defaultdict(trio.Event)
        self._building: dict[str, Any] = {}  # a call that returns once the actor is built

    async def started(self, names: Iterable[str]) -> None:
        """Returns once the named actors run (or could not start: their supervisor then
        restarts them): their worker processes are up and the actors built."""
        import ray

        for name in names:
            await self._placed[name].wait()
            building = self._building.get(name)  # none: it could not be placed
            with contextlib.suppress(ray.exceptions.RayError):
                if building is not None:
                    await _settled(building.future())

    async def run(
        self,
        name: str,
        recipe: Recipe,
        mailbox: trio.MemoryReceiveChannel[Envelope],
        refs: Mapping[str, ActorRef],
    ) -> str | None:
        import ray

        try:
            hosted = _hosted().remote(name, recipe, self._ask_timeout, self._mailbox_size)
        except Exception as error:  # its recipe does not pickle, the cluster has gone
            return f"it could not be placed: {type(error).__name__}: {error}"
        finally:
            self._placed[name].set()
        self.hosted[name] = hosted
        self._building[name] = hosted.started.remote()
        link = _Link(name, hosted)
        try:
            return await link.serve(mailbox, refs, self._mailbox_size)
        finally:
            ray.kill(hosted)
            del self.hosted[name]


@functools.cache
def _hosted() -> Any:
    """Hosted as a Ray actor class, made once (Ray exports a class each time it is made)."""
    import ray

    return ray.remote(Hosted).options(scheduling_strategy="SPREAD", num_cpus=0, max_restarts=0)


class _Link:
    """The head's side of one hosted actor."""

    def __init__(self, name: str, hosted: Any) -> None:
        self.name = name
        self.hosted = hosted
        self.lost = f"{name}: it stopped"  # why an ask in flight fails, if it is cut short

    async def serve(
        self,
        mailbox: trio.MemoryReceiveChannel[Envelope],
        refs: Mapping[str, ActorRef],
        in_flight: int,
    ) -> str | None:
        """Forwards the mailbox until it closes (None) or the hosted actor ends (why)."""
        ended: str | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal ended
                try:
                    self.lost = f"{self.name}: {await self.call(self.hosted.ended)}"
                except errors.ActorUnavailable as error:
                    self.lost = error.message
                ended = self.lost
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            nursery.start_soon(self._serve_callouts, refs)
            # as many asks in flight as a mailbox holds: the hosted actor's is as bounded
            slots = trio.Semaphore(in_flight)
            async with trio.open_nursery() as asks:
                for seq in itertools.count():
                    await slots.acquire()
                    try:
                        envelope = await mailbox.receive()
                    except trio.EndOfChannel:
                        break
                    asks.start_soon(self._forward, seq, envelope, slots)
                asks.cancel_scope.cancel()  # stopping: as in-process, answers in flight end
            nursery.cancel_scope.cancel()
        return ended

    async def _forward(self, seq: int, envelope: Envelope, slots: trio.Semaphore) -> None:
        """Sends one envelope to the hosted actor and relays its replies to the caller."""
        channel = envelope.reply
        try:
            payload = _bytes(envelope.payload)
            replies, ended = await self.call(self.hosted.deliver, seq, payload, channel is not None)
            while channel is not None:
                for reply in replies:
                    await channel.send(reply)
                if ended:
                    break
                replies, ended = await self.call(self.hosted.replies, seq)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.hosted.drop.remote(seq)  # the caller went away: the actor's next send fails
        except errors.Mem8Error as error:
            _fail(envelope, error)
        except trio.Cancelled:
            _fail(envelope, errors.ActorUnavailable(self.lost))
            raise
        finally:
            if channel is not None:
                channel.close()
            slots.release()

    async def _serve_callouts(self, refs: Mapping[str, ActorRef]) -> None:
        """Relays the hosted actor's asks to the actors here, each in a task of its own."""
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    callouts: list[Callout] = await self.call(self.hosted.callouts)
                except errors.ActorUnavailable:
                    return  # the worker died: watch() reports it
                for call, target, payload, wanted in callouts:
                    nursery.start_soon(self._call_out, call, refs[target], payload, wanted)

    async def _call_out(self, call: int, ref: ActorRef, payload: bytes, wanted: bool) -> None:
        send, receive = trio.open_memory_channel[Payload](REPLY_BUFFER)
        with receive, contextlib.suppress(errors.ActorUnavailable):  # the worker died: watch()
            try:
                await ref.relay(payload, send if wanted else None)
            except errors.Mem8Error as error:
                send.close()
                await self.call(self.hosted.answer, call, [_failure(payload, error)], True)
                return
            if not wanted:
                send.close()
                return
            ended = False
            while not ended:
                replies, ended = await _gathered(receive)
                if not await self.call(self.hosted.answer, call, replies, ended):
                    return  # the asker went away: closing receive tells the actor here

    async def call(self, method: Any, *arguments: Any) -> Any:
        """A method of the hosted actor, awaited without blocking trio's loop; a dead worker
        (or any failure of the call) is ActorUnavailable naming the actor."""
        import ray

        try:
            return await _settled(method.remote(*arguments).future())
        except ray.exceptions.RayActorError as error:
            raise errors.ActorUnavailable(f"{self.name}: its Ray worker died") from error
        except ray.exceptions.RayError as error:  # a bug in Hosted: the ask fails, not the system
            raise errors.ActorUnavailable(f"{self.name}: {type(error).__name__}") from error


async def _settled(future: concurrent.futures.Future[T]) -> T:
    """The future's result, waited for in trio: its callback wakes the loop. A cancelled wait
    leaves the future to finish unheard."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_: object) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    await done.wait()
    return future.result()


async def _gathered(receive: trio.MemoryReceiveChannel[Payload]) -> Batch:
    """The replies waiting (at least one, unless the answer ended), as bytes."""
    replies: list[bytes] = []
    try:
        replies.append(_bytes(await receive.receive()))
        while True:
            replies.append(_bytes(receive.receive_nowait()))
    except trio.WouldBlock:
        return replies, False
    except trio.EndOfChannel:
        return replies, True


def _bytes(payload: Payload) -> bytes:
    return payload if isinstance(payload, bytes) else payload.encode()


def _failure(payload: Payload, error: errors.Mem8Error) -> bytes:
    message = decode(payload) if isinstance(payload, bytes) else payload
    request_id = getattr(message, "request_id", "")
    return Failed(request_id, type(error).__name__, error.message, error.param).encode()


def _fail(envelope: Envelope, error: errors.Mem8Error) -> None:
    if envelope.reply is not None:
        with contextlib.suppress(
            trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            envelope.reply.send_nowait(_failure(envelope.payload, error))


class Hosted:
    """A Ray actor hosting one mem8 actor, in a trio loop on a thread of its own: Ray calls its
    methods on asyncio, and each runs its work in that loop."""

    def __init__(self, name: str, recipe: Recipe, ask_timeout: float, mailbox_size: int) -> None:
        self._name = name
        self._recipe = recipe
        self._ask_timeout = ask_timeout
        self._mailbox, self._taken = trio.open_memory_channel[Envelope](mailbox_size)
        self._outgoing, self._callouts = trio.open_memory_channel[Callout](mailbox_size)
        self._asks: dict[int, trio.MemoryReceiveChannel[Payload]] = {}  # by forwarded number
        self._calls: dict[int, trio.MemorySendChannel[Payload]] = {}  # the asks of head actors
        self._call_numbers = itertools.count()
        self._next = 0  # the number of the envelope whose turn it is to enter the mailbox
        self._turn = trio.Event()  # set when the next envelope's turn comes
        self._built, self._ended = trio.Event(), trio.Event()
        self._why = ""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=trio.run, args=(self._serve, ready), name=f"mem8 {name}", daemon=True
        )
        self._thread.start()
        ready.wait()

    async def _serve(self, ready: threading.Event) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            ready.set()
            refs = {target: self._ref_to(target) for target in self._recipe.refs}
            try:
                actor = await self._recipe.build(refs)
            except Exception as error:
                self._end(f"it could not start: {type(error).__name__}: {error}")
                return
            finally:
                self._built.set()
            crashed = await run_actor(self._name, actor, self._taken)
            self._end(f"it crashed: {crashed}" if crashed else "it stopped")

    def _end(self, why: str) -> None:
        self._why = why
        self._ended.set()

    def _ref_to(self, target: str) -> ActorRef:
        """A ref to an actor of the head: its mailbox here is read into the callouts."""
        send, receive = trio.open_memory_channel[Envelope](0)
        self._nursery.start_soon(self._call_out, target, receive)
        return ActorRef(target, send, self._ask_timeout, "msgpack")

    async def _call_out(self, target: str, mailbox: trio.MemoryReceiveChannel[Envelope]) -> None:
        async for envelope in mailbox:
            call = next(self._call_numbers)
            if envelope.reply is not None:
                self._calls[call] = envelope.reply
            payload = _bytes(envelope.payload)
            await self._outgoing.send((call, target, payload, envelope.reply is not None))

    def _in_trio(self, work: Callable[..., Awaitable[T]], *arguments: Any) -> Awaitable[T]:
        """Runs work in the trio loop; an asyncio future of its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        async def settle() -> None:
            try:
                future.set_result(await work(*arguments))
            except Exception as error:
                future.set_exception(error)

        self._token.run_sync_soon(self._nursery.start_soon, settle)
        return asyncio.wrap_future(future)

    # --- what the head calls ---

    async def deliver(self, seq: int, payload: bytes, wanted: bool) -> Batch:
        """Puts envelope number seq in the mailbox after those before it (Ray may run the
        calls in any order); its first replies."""
        return await self._in_trio(self._deliver, seq, payload, wanted)

    async def replies(self, seq: int) -> Batch:
        return await self._in_trio(self._replies, seq)

    async def drop(self, seq: int) -> None:
        await self._in_trio(self._drop, seq)

    async def callouts(self) -> list[Callout]:
        """The asks of head actors waiting (at least one)."""
        return await self._in_trio(self._waiting_callouts)

    async def answer(self, call: int, replies: list[bytes], ended: bool) -> bool:
        """Replies to an ask of a head actor; whether its asker still listens."""
        return await self._in_trio(self._answer, call, replies, ended)

    async def started(self) -> None:
        """Waits until the hosted actor is built (or could not be)."""
        await self._in_trio(self._built.wait)

    async def ended(self) -> str:
        """Waits until the hosted actor stops or crashes: why."""
        return await self._in_trio(self._wait_ended)

    # --- their work, in the trio loop ---

    async def _deliver(self, seq: int, payload: bytes, wanted: bool) -> Batch:
        send: trio.MemorySendChannel[Payload] | None = None
        if wanted:
            send, self._asks[seq] = trio.open_memory_channel[Payload](REPLY_BUFFER)
        while seq != self._next:
            await self._turn.wait()
        try:
            await self._mailbox.send(Envelope(payload, send))
        finally:
            self._next += 1
            self._turn.set()
            self._turn = trio.Event()
        return await self._replies(seq) if wanted else ([], True)

    async def _replies(self, seq: int) -> Batch:
        receive = self._asks[seq]
        replies, ended = await _gathered(receive)
        if ended:
            del self._asks[seq]
        return replies, ended

    async def _drop(self, seq: int) -> None:
        receive = self._asks.pop(seq, None)
        if receive is not None:
            receive.close()

    async def _waiting_callouts(self) -> list[Callout]:
        callouts = [await self._callouts.receive()]
        with contextlib.suppress(trio.WouldBlock):
            while True:
                callouts.append(self._callouts.receive_nowait())
        return callouts

    async def _answer(self, call: int, replies: list[bytes], ended: bool) -> bool:
        channel = self._calls.get(call)
        if channel is None:
            return False
        try:
            for reply in replies:
                await channel.send(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            ended = True
        if ended:
            channel.close()
            del self._calls[call]
        return channel.statistics().open_receive_channels > 0

    async def _wait_ended(self) -> str:
        await self._ended.wait()
        return self._why
