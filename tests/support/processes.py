"""`mem8 serve` as users run it: a real process on a free port, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def mem8_serve(
    folder: Path, *flags: str, env: dict[str, str], log: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """Serves folder's storage in a process group of its own (so a kill takes its children
    too); its output goes to `log`, else to a pipe read once it ends. The group is killed when
    the block ends."""
    environ = {**os.environ, "MEM8_STORAGE": str(folder / "mem8.db"), **env}
    with _output(log) as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mem8", "serve", *flags],
            cwd=folder,
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        kill_group(process)
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def _output(log: Path | None) -> Iterator[IO[str] | int]:
    """The log file, opened for appending (a restart adds to it), or a pipe."""
    if log is None:
        yield subprocess.PIPE
        return
    with log.open("a") as output:
        yield output


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL to the process and every process of its group."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def output_of(process: subprocess.Popen[str], log: Path | None, lines: int = 40) -> str:
    """What an ended server printed: its pipe, or the last lines of its log."""
    if log is None:
        return process.stdout.read() if process.stdout else ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_healthy(
    root: str, process: subprocess.Popen[str], timeout: float = 60, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"mem8 serve exited with code {process.returncode}: {output_of(process, log)}"
            )
        with suppress(httpx.TransportError):
            if httpx.get(root + "/health", timeout=1).text == "OK":
                return
        time.sleep(0.05)
    tail = output_of(process, log) if log is not None else ""
    raise AssertionError(f"mem8 serve did not become healthy within {timeout:g} s\n{tail}")
