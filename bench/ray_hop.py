"""What a Ray hop costs per message: the median round trip of an ask to an actor that answers at
once, in-process (objects, then msgpack at the hop) and in a Ray actor (MEM8_RUNTIME=ray's
placement on a local cluster started here), in the same run; and Ray's own floor, a bare call
of a Ray actor's method, for scale.

Run: ./scripts/manage.sh bench ray_hop [--asks N] [--cpus N]"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Mapping

import trio

from mem8.actors.messages import Ack, StateDigest
from mem8.actors.ray_host import RayPlacement
from mem8.actors.runtime import (
    Actor,
    ActorRef,
    Placement,
    Recipe,
    Reply,
    Supervisor,
    Wire,
    handles,
    new_request_id,
)

MAILBOX = 64


class Echo(Actor):
    """Answers at once: all a round trip to it measures is the hop."""

    @handles(StateDigest)
    async def on_ask(self, message: StateDigest, reply: Reply) -> None:
        await reply.send(Ack(message.request_id))


async def echo(refs: Mapping[str, ActorRef]) -> Actor:
    return Echo()


class Floor:
    """A Ray actor's method that does nothing: Ray's own round trip."""

    def ping(self) -> None:
        return None


async def round_trips(asks: int, wire: Wire, placement: Placement | None) -> list[float]:
    """Seconds of each ask, one after another, after a first (the actor's start) untimed."""
    seconds = []
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor(
            nursery, ask_timeout=60.0, mailbox_size=MAILBOX, wire=wire, placement=placement
        )
        ref = supervisor.start("echo", Echo, recipe=Recipe(echo))
        await ref.ask(StateDigest(new_request_id()), Ack)
        for _ in range(asks):
            started = time.perf_counter()
            await ref.ask(StateDigest(new_request_id()), Ack)
            seconds.append(time.perf_counter() - started)
        nursery.cancel_scope.cancel()
    return seconds


def ray_floor(asks: int) -> list[float]:
    import ray

    floor = ray.remote(Floor).options(num_cpus=0).remote()
    ray.get(floor.ping.remote())
    seconds = []
    for _ in range(asks):
        started = time.perf_counter()
        ray.get(floor.ping.remote())
        seconds.append(time.perf_counter() - started)
    ray.kill(floor)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=2000, help="asks timed per hop (2000)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    arguments = parser.parse_args(argv)
    import ray

    ray.init(num_cpus=arguments.cpus, include_dashboard=False, log_to_driver=False)
    try:
        placement = RayPlacement(ask_timeout=60.0, mailbox_size=MAILBOX)
        medians = {
            "in-process (objects)": trio.run(round_trips, arguments.asks, "objects", None),
            "in-process (msgpack)": trio.run(round_trips, arguments.asks, "msgpack", None),
            "Ray actor (msgpack)": trio.run(round_trips, arguments.asks, "objects", placement),
            "bare ray.get of a method": ray_floor(arguments.asks),
        }
    finally:
        ray.shutdown()
    local = statistics.median(medians["in-process (objects)"])
    print(f"median ask round trip, {arguments.asks} asks each, one at a time:")
    for hop, seconds in medians.items():
        median = statistics.median(seconds)
        print(f"  {hop:26} {median * 1e6:9.1f} us  x{median / local:8.1f}")


if __name__ == "__main__":
    main()
