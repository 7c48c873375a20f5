"""A sweep's runs as Ray tasks (`mem8 sim sweep --runtime ray`): on a running cluster, or on a
local one started for the sweep and stopped after it. Each task calls the same `run_job` as a
local worker process, so the sweep's document is the same. Ray (the `ray` extra) is imported
only when a sweep asks for it.

On a cluster of several machines every node needs mem8 installed and the scenario, the files it
perceives and the sweep's directory at the same paths (a shared filesystem): a task runs where
Ray puts it and writes its run there."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from mem8.errors import ConfigError
from mem8.sim.sweep import Finished, Job, Place, run_job

CONNECT_SECONDS = 5.0  # Ray itself retries an address that does not answer for minutes
INSTALL = "pip install 'mem8[ray]'"


@contextmanager
def on_ray(address: str | None, jobs: int | None) -> Iterator[Place]:
    """Runs on the cluster at `address` (HOST:PORT, or `auto`: the one started on this machine
    with `ray start`), at most `jobs` at once if given; without an address, on a local cluster
    of `jobs` CPUs (else this machine's cores). Connected on entry, so that Ray's absence or an
    address that does not answer is told before anything runs; disconnected on exit (a local
    cluster stopped)."""
    ray = _imported()
    with _connected(ray, address, jobs):

        def place(todo: Sequence[Job]) -> Finished:
            # Absolute paths: a task's working directory is not the caller's on another node.
            todo = [
                dataclasses.replace(job, scenario=job.scenario.resolve(), out=job.out.resolve())
                for job in todo
            ]
            # No retry: a run's directory is made once, so a retried run would fail on it.
            remote = ray.remote(num_cpus=1, max_retries=0)(run_job)
            yield from _finished(ray, remote, todo, jobs or len(todo))

        yield place


def _imported() -> ModuleType:
    try:
        import ray
    except ImportError as error:
        raise ConfigError(f"--runtime ray needs Ray, which is not installed: {INSTALL}") from error
    return ray


@contextmanager
def _connected(ray: ModuleType, address: str | None, jobs: int | None) -> Iterator[None]:
    """This process as a driver of the cluster, disconnected after (a local cluster stopped)."""
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address is None:
            cpus = jobs or os.cpu_count() or 1
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
        else:
            _check_reachable(address)
            ray.init(address=address, **quiet)
    except (OSError, RuntimeError, ValueError) as error:  # ConnectionError is an OSError
        where = "a local Ray cluster" if address is None else f"--ray-address {address}"
        raise ConfigError(f"{where}: {_one_line(error)}") from error
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A HOST:PORT address must accept a connection within CONNECT_SECONDS."""
    if address == "auto":
        return  # Ray reads the local cluster's address from its own files, and says if none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address}: must be HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise ConfigError(
            f"--ray-address {address}: no Ray cluster answers there ({error})"
        ) from error


def _finished(ray: ModuleType, remote: Any, todo: Sequence[Job], limit: int) -> Finished:
    """Each job's figures as its task finishes, at most `limit` tasks submitted at a time."""
    queued = iter(enumerate(todo))
    waiting: dict[Any, int] = {}
    while True:
        for i, job in itertools.islice(queued, limit - len(waiting)):
            waiting[remote.remote(job)] = i
        if not waiting:
            return
        (ready,), _ = ray.wait(list(waiting), num_returns=1)
        i = waiting.pop(ready)
        yield i, ray.get(ready)


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
