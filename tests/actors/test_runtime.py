"""The actor runtime: ask/tell, timeouts, bounded mailboxes and restarts."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mem8 import errors
from mem8.actors.messages import (
    Ack,
    Digest,
    StateDigest,
)
from mem8.actors.runtime import YIELD_EVERY, Actor, Reply, Supervisor, ask_each, handles
from mem8.storage.sqlite import StorageError


class Counter(Actor):
    """Counts digests asked of it; the request id says how to misbehave."""

    instances = 0

    def __init__(self) -> None:
        super().__init__()
        Counter.instances += 1
        self.count = 0

    @handles(StateDigest)
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


def test_an_actor_given_up_on_is_down_with_why() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(nursery, ask_timeout=1, mailbox_size=4, max_restarts=2)
            ref = supervisor.start("c", Counter)
            for _ in range(3):
                assert supervisor.down == {}
                with pytest.raises(errors.ActorUnavailable):
                    await ref.ask(StateDigest("crash"), Digest)
            await trio.testing.wait_all_tasks_blocked()
            assert set(supervisor.down) == {"c"}
            assert "failed 3 times" in supervisor.down["c"]
            assert "state_digest: RuntimeError: bug" in supervisor.down["c"]
            with pytest.raises(errors.ActorUnavailable, match="not running"):
                await ref.ask(StateDigest("a"), Digest)
            nursery.cancel_scope.cancel()

    run(main)


def test_a_full_mailbox_pushes_back() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ref = Supervisor(nursery, ask_timeout=0.2, mailbox_size=1).start("c", Counter)
            await ref.tell(StateDigest("hang"))
            await trio.testing.wait_all_tasks_blocked()  # taken: the actor is stuck on it
            await ref.tell(StateDigest("a"))  # fills the one slot
            with trio.fail_after(5), pytest.raises(errors.Overloaded):
                await ref.tell(StateDigest("b"))
            nursery.cancel_scope.cancel()

    run(main)


class Apart(Actor):
    """Answers each digest in a task of its own; "slow" waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()

    @handles(StateDigest)
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


class Storing(Actor):
    """Fails the way a store that refused a write does."""

    @handles(StateDigest)
    async def on_digest(self, message: StateDigest, reply: Reply) -> None:
        raise StorageError("the disk is full")


def test_a_storage_error_crossing_an_actor_keeps_its_class_and_status() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for wire in ("objects", "msgpack"):
                supervisor = Supervisor(nursery, ask_timeout=1, mailbox_size=4, wire=wire)
                ref = supervisor.start(f"store-{wire}", Storing)
                with pytest.raises(StorageError, match="disk is full") as caught:
                    await ref.ask(StateDigest("s"), Digest)
                assert caught.value.status == 500
            nursery.cancel_scope.cancel()

    run(main)


def test_an_unknown_error_name_comes_back_as_an_unavailable_actor() -> None:
    rebuilt = errors.rebuild("NoSuchError", "gone", "p")
    assert type(rebuilt) is errors.ActorUnavailable
    assert (rebuilt.message, rebuilt.param) == ("gone", "p")


class Recounting(Counter):
    """Overrides its parent's handler without marking it again: the override answers."""

    async def on_digest(self, message: StateDigest, reply: Reply) -> None:
        await reply.send(Digest(message.request_id, "recounting", "again"))


def test_an_override_of_a_handler_takes_its_place() -> None:
    assert Recounting.handlers[StateDigest] is Recounting.on_digest
    assert Counter.handlers[StateDigest] is Counter.on_digest

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            ref = Supervisor(nursery, ask_timeout=1, mailbox_size=4).start("r", Recounting)
            assert (await ref.ask(StateDigest("a"), Digest)).sha256 == "again"
            nursery.cancel_scope.cancel()

    run(main)


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


def test_the_old_map_of_handler_names_is_refused_loudly() -> None:
    with pytest.raises(TypeError, match="@handles"):

        class Old(Actor):
            handles = (StateDigest, "on_digest")  # type: ignore[assignment]
