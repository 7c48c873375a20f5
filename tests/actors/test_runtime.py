"""The actor runtime: ask/tell, timeouts, bounded mailboxes and restarts."""

from __future__ import annotations

from typing import ClassVar

import msgpack
import pytest
import trio
import trio.testing

from mem8 import errors
from mem8.actors.messages import (
    SCHEMA_VERSION,
    Ack,
    Chat,
    Digest,
    Message,
    MessageError,
    StateDigest,
    decode,
)
from mem8.actors.runtime import YIELD_EVERY, Actor, Reply, Supervisor, ask_each


class Counter(Actor):
    """Counts digests asked of it; the request id says how to misbehave."""

    handles: ClassVar[dict[type[Message], str]] = {StateDigest: "on_digest"}
    instances = 0

    def __init__(self) -> None:
        super().__init__()
        Counter.instances += 1
        self.count = 0

    async def on_digest(self, message: StateDigest, reply: Reply) -> None:
        if message.request_id == "crash":
            raise RuntimeError("bug")
        if message.request_id == "refuse":
            raise errors.InvalidRequest("no", param="x")
        if message.request_id == "hang":
            await trio.sleep_forever()
        self.count += 1
        await reply.send(Digest(message.request_id, "counter", str(self.count)))


def run(test: object) -> None:
    trio.run(test)  # type: ignore[arg-type]


def test_ask_gets_the_answer() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ref = Supervisor(nursery, ask_timeout=1, mailbox_size=4).start("c", Counter)
            assert (await ref.ask(StateDigest("a"), Digest)).sha256 == "1"
            assert (await ref.ask(StateDigest("b"), Digest)).sha256 == "2"
            nursery.cancel_scope.cancel()

    run(main)


def test_a_domain_error_reaches_the_caller_with_its_class() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ref = Supervisor(nursery, ask_timeout=1, mailbox_size=4).start("c", Counter)
            with pytest.raises(errors.InvalidRequest) as caught:
                await ref.ask(StateDigest("refuse"), Digest)
            assert caught.value.param == "x"
            nursery.cancel_scope.cancel()

    run(main)


def test_ask_times_out_instead_of_hanging() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ref = Supervisor(nursery, ask_timeout=0.2, mailbox_size=4).start("c", Counter)
            with trio.fail_after(5), pytest.raises(errors.ActorUnavailable, match="within"):
                await ref.ask(StateDigest("hang"), Digest)
            nursery.cancel_scope.cancel()

    run(main)


def test_a_crashing_actor_fails_the_ask_and_is_restarted_fresh() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=1, mailbox_size=4)
            ref = supervisor.start("c", Counter)
            await ref.ask(StateDigest("a"), Digest)
            before = Counter.instances
            with pytest.raises(errors.ActorUnavailable, match="failed handling"):
                await ref.ask(StateDigest("crash"), Digest)
            assert (await ref.ask(StateDigest("b"), Digest)).sha256 == "1"  # fresh state
            assert Counter.instances == before + 1
            assert supervisor.restarts["c"] == 1
            nursery.cancel_scope.cancel()

    run(main)


def test_a_full_mailbox_pushes_back() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ref = Supervisor(nursery, ask_timeout=0.2, mailbox_size=1).start("c", Counter)
            await ref.tell(StateDigest("hang"))  # taken: the actor is now stuck on it
            await trio.sleep(0.05)
            await ref.tell(StateDigest("a"))  # fills the one slot
            with trio.fail_after(5), pytest.raises(errors.Overloaded):
                await ref.tell(StateDigest("b"))
            nursery.cancel_scope.cancel()

    run(main)


class Apart(Actor):
    """Answers each digest in a task of its own; "slow" waits until released."""

    handles: ClassVar[dict[type[Message], str]] = {StateDigest: "on_digest"}

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()

    async def on_digest(self, message: StateDigest, reply: Reply) -> None:
        self.answer_apart(message, reply, lambda owned: self._answer(message, owned))

    async def _answer(self, message: StateDigest, reply: Reply) -> None:
        if message.request_id.startswith("slow"):
            await self.release.wait()
        if message.request_id == "release":
            self.release.set()
        if message.request_id == "refuse":
            raise errors.InvalidRequest("no", param="x")
        if message.request_id == "crash":
            raise RuntimeError("bug")
        await reply.send(Digest(message.request_id, "apart", message.request_id))


def test_an_answer_apart_frees_the_mailbox_and_fails_only_its_caller() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=1, mailbox_size=4)
            ref = supervisor.start("apart", Apart)
            slow = await ref.open_stream(StateDigest("slow"))
            with pytest.raises(errors.InvalidRequest) as caught:
                await ref.ask(StateDigest("refuse"), Digest)
            assert caught.value.param == "x"
            with pytest.raises(errors.ActorUnavailable, match="apart failed handling"):
                await ref.ask(StateDigest("crash"), Digest)
            # The slow answer waits for a later message: only a free mailbox can deliver it,
            # and the crash beside it neither cancelled it nor restarted the actor.
            assert (await ref.ask(StateDigest("release"), Digest)).sha256 == "release"
            with slow:
                assert [m.sha256 async for m in slow] == ["slow"]  # type: ignore[attr-defined]
            assert supervisor.restarts["apart"] == 0
            nursery.cancel_scope.cancel()

    run(main)


def test_an_answer_cut_short_by_its_actor_stopping_fails_its_caller() -> None:
    async def main() -> None:
        async with trio.open_nursery() as outer:
            actors = await outer.start(_nursery_until_cancelled)
            ref = Supervisor(actors, ask_timeout=1, mailbox_size=4).start("apart", Apart)
            slow = await ref.open_stream(StateDigest("slow"))
            await trio.testing.wait_all_tasks_blocked()
            actors.cancel_scope.cancel()  # the system stopping mid-answer
            with slow, pytest.raises(errors.ActorUnavailable, match="stopped while handling"):
                await anext(slow)
            outer.cancel_scope.cancel()

    run(main)


async def _nursery_until_cancelled(
    task_status: trio.TaskStatus[trio.Nursery] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


def test_a_backlog_of_await_free_handlers_yields_to_other_tasks() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ref = Supervisor(nursery, ask_timeout=1, mailbox_size=256).start("c", Counter)
            for i in range(200):
                await ref.tell(StateDigest(f"t{i}"))
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await trio.lowlevel.checkpoint()

            nursery.start_soon(tick)
            assert (await ref.ask(StateDigest("last"), Digest)).sha256 == "201"
            assert ticks >= 200 // YIELD_EVERY  # the ticker ran during the backlog
            nursery.cancel_scope.cancel()

    run(main)


def test_messages_round_trip() -> None:
    chat = Chat("r1", "p", "t", "u", 1.5, [{"role": "user", "content": "hi"}], temperature=0.2)
    assert decode(chat.encode()) == chat


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xc1", "not a msgpack message"),
        (msgpack.packb([1, 2]), "must be a map"),
        (msgpack.packb({"type": "nope", "v": SCHEMA_VERSION}), "unknown message type"),
        (
            msgpack.packb({"type": "token", "v": 99, "request_id": "r", "text": "t"}),
            "schema version",
        ),
        (
            msgpack.packb({"type": "token", "v": SCHEMA_VERSION, "request_id": "r"}),
            "missing fields",
        ),
        (
            msgpack.packb({"type": "token", "v": SCHEMA_VERSION, "request_id": "r", "text": 3}),
            "token.text",
        ),
    ],
)
def test_invalid_messages_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(MessageError, match=problem):
        decode(body)


def test_ask_each_asks_every_actor_and_checks_each_reply() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=1, mailbox_size=4)
            one, two = supervisor.start("one", Counter), supervisor.start("two", Counter)
            asks = {1: (one, StateDigest("a")), 2: (two, StateDigest("b"))}
            answers = await ask_each(asks, Digest)
            assert {key: a.request_id for key, a in answers.items()} == {1: "a", 2: "b"}
            with pytest.raises(errors.ActorUnavailable, match="two answered digest, not ack"):
                await ask_each({2: (two, StateDigest("c"))}, Ack)
            nursery.cancel_scope.cancel()

    run(main)
