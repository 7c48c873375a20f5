"""A lean HTTP/1.1 load generator on raw keep-alive sockets: sequential and closed-loop.

It runs in its own process, so its CPU never competes with the server's GIL; one selector
thread drives every connection, which keeps the client far cheaper per request than the server."""

from __future__ import annotations

import selectors
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

Check = Callable[[bytes], str | None]  # a 200's body -> what is wrong with it, or None
RECEIVE_BYTES = 65536
STALL_SECONDS = 30.0  # a server silent this long is stuck, not slow


class ProtocolError(Exception):
    """A response this client cannot frame (no Content-Length, bad status line)."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=STALL_SECONDS)
        # Blocking mode (a Python-level timeout would add a poll() before every recv); the
        # kernel's receive timeout still turns a stuck server into an error.
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _seconds(STALL_SECONDS))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def post(self, path: str, body: bytes) -> bytes:
        """The raw bytes of one POST of a JSON body; built once, sent many times."""
        head = (
            f"POST {path} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Content-Type: application/json\r\n"
            "Accept: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("ascii") + body


def _seconds(value: float) -> bytes:
    return struct.pack("ll", int(value), int(value % 1 * 1e6))


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    close: bool  # the server ends the connection after this response


def take_response(buffer: bytearray) -> HttpResponse | None:
    """Removes one complete response from the front of buffer, or returns None if incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    status, length, close = _head(bytes(buffer[:end]))
    total = end + 4 + length
    if len(buffer) < total:
        return None
    body = bytes(buffer[end + 4 : total])
    del buffer[:total]
    return HttpResponse(status, body, close)


def _head(raw: bytes) -> tuple[int, int, bool]:
    lines = raw.lower().split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError) as error:
        raise ProtocolError(f"bad status line {lines[0][:80]!r}") from error
    length: int | None = None
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip() == b"close"
    if length is None:
        raise ProtocolError("a response without Content-Length")
    return status, length, close


@dataclass
class Problems:
    """Every response that was not a 200 with the expected body, counted by what was wrong."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, problem: str) -> None:
        self.counts[problem] += 1

    def judge(self, response: HttpResponse, check: Check) -> None:
        if response.status != 200:
            self.add(f"HTTP {response.status}: {response.body[:200]!r}")
            return
        problem = check(response.body)
        if problem is not None:
            self.add(problem)

    def merge(self, other: Problems) -> None:
        self.counts.update(other.counts)


@dataclass
class Run:
    """What one route got in one run: completions, their latencies and what went wrong."""

    seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    problems: Problems = field(default_factory=Problems)
    reconnects: int = 0  # the server closed a keep-alive connection (keep_alive_max_requests)
    client_cpu: float = 0.0  # share of one core this process used while it ran

    @property
    def completed(self) -> int:
        return len(self.latencies_ns)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0


def sequential(target: Target, request: bytes, count: int, check: Check) -> Run:
    """One connection, one request at a time: each latency is a full round trip."""
    run = Run()
    sock = target.connect()
    buffer = bytearray()
    started, cpu = time.perf_counter(), time.process_time()
    try:
        for _ in range(count):
            sock = _sequential_one(target, sock, buffer, request, check, run)
    finally:
        sock.close()
    _finish(run, started, cpu)
    return run


def _sequential_one(
    target: Target,
    sock: socket.socket,
    buffer: bytearray,
    request: bytes,
    check: Check,
    run: Run,
) -> socket.socket:
    """Sends one request and times it; returns the socket to use next (a new one if closed)."""
    try:
        sent = time.perf_counter_ns()
        sock.sendall(request)
        response = _receive(sock, buffer)
        run.latencies_ns.append(time.perf_counter_ns() - sent)
    except (OSError, ProtocolError) as error:
        run.problems.add(f"connection: {error}")
        return _reconnect(target, sock, buffer, run)
    run.problems.judge(response, check)
    return _reconnect(target, sock, buffer, run) if response.close else sock


def _receive(sock: socket.socket, buffer: bytearray) -> HttpResponse:
    while True:
        response = take_response(buffer)
        if response is not None:
            return response
        chunk = sock.recv(RECEIVE_BYTES)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-response")
        buffer += chunk


def _reconnect(target: Target, sock: socket.socket, buffer: bytearray, run: Run) -> socket.socket:
    sock.close()
    buffer.clear()
    run.reconnects += 1
    return target.connect()


def _finish(run: Run, started: float, cpu: float) -> None:
    run.seconds = time.perf_counter() - started
    run.client_cpu = (time.process_time() - cpu) / run.seconds if run.seconds else 0.0


@dataclass
class _Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    sent_ns: int = 0


def closed_loop(
    target: Target, request: bytes, connections: int, seconds: float, check: Check
) -> Run:
    """`connections` keep-alive connections, each sending its next request as soon as the last
    is answered, for `seconds`; only responses completed within the window count."""
    run = Run()
    with selectors.DefaultSelector() as selector:
        for _ in range(connections):
            connection = _Connection(target.connect())
            selector.register(connection.sock, selectors.EVENT_READ, connection)
        started, cpu = time.perf_counter(), time.process_time()
        deadline = time.perf_counter_ns() + int(seconds * 1e9)
        for key in list(selector.get_map().values()):
            _send(key.data, request)
        while selector.get_map():
            ready = selector.select(STALL_SECONDS)
            if not ready:
                raise TimeoutError(f"no response for {STALL_SECONDS:g} s: the server is stuck")
            for key, _ in ready:
                _on_readable(selector, key, target, request, deadline, check, run)
        run.seconds = seconds
        run.client_cpu = (time.process_time() - cpu) / (time.perf_counter() - started)
    return run


def _send(connection: _Connection, request: bytes) -> None:
    connection.sent_ns = time.perf_counter_ns()
    connection.sock.sendall(request)  # a few hundred bytes into an empty buffer: never blocks


def _on_readable(
    selector: selectors.BaseSelector,
    key: selectors.SelectorKey,
    target: Target,
    request: bytes,
    deadline: int,
    check: Check,
    run: Run,
) -> None:
    connection: _Connection = key.data
    try:
        response = _read_some(connection)
    except (OSError, ProtocolError) as error:
        run.problems.add(f"connection: {error}")
        _replace(selector, connection, target, request, deadline, run)
        return
    if response is None:
        return
    now = time.perf_counter_ns()
    if now <= deadline:
        run.latencies_ns.append(now - connection.sent_ns)
        run.problems.judge(response, check)
    if response.close:
        _replace(selector, connection, target, request, deadline, run)
    elif now < deadline:
        _send(connection, request)
    else:
        _retire(selector, connection)


def _read_some(connection: _Connection) -> HttpResponse | None:
    chunk = connection.sock.recv(RECEIVE_BYTES)
    if not chunk:
        raise ConnectionError("the server closed the connection mid-response")
    connection.buffer += chunk
    return take_response(connection.buffer)


def _replace(
    selector: selectors.BaseSelector,
    connection: _Connection,
    target: Target,
    request: bytes,
    deadline: int,
    run: Run,
) -> None:
    """Swaps a connection the server closed for a new one, which carries on if time is left."""
    _retire(selector, connection)
    run.reconnects += 1
    if time.perf_counter_ns() >= deadline:
        return
    fresh = _Connection(target.connect())
    selector.register(fresh.sock, selectors.EVENT_READ, fresh)
    _send(fresh, request)


def _retire(selector: selectors.BaseSelector, connection: _Connection) -> None:
    selector.unregister(connection.sock)
    connection.sock.close()


@dataclass
class Burst:
    """What a burst of connections got: each connection's latency, or what went wrong."""

    opened: int = 0
    open_seconds: float = 0.0  # how long opening them all took
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # connect, reset, closed, timeout


def burst(target: Target, request: bytes, connections: int, timeout: float) -> Burst:
    """Opens `connections` connections, then sends one request on each, all at once, and
    waits up to `timeout` seconds for every answer."""
    result = Burst()
    started = time.perf_counter()
    socks = [sock for _ in range(connections) if (sock := _open(target, result)) is not None]
    result.opened, result.open_seconds = len(socks), time.perf_counter() - started
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            _send_burst(selector, sock, request, result)
        _collect(selector, time.monotonic() + timeout, result)
    return result


def _open(target: Target, result: Burst) -> socket.socket | None:
    try:
        return target.connect()
    except OSError as error:
        result.failures[f"connect: {type(error).__name__}"] += 1
        return None


def _send_burst(
    selector: selectors.BaseSelector, sock: socket.socket, request: bytes, result: Burst
) -> None:
    connection = _Connection(sock)
    try:
        _send(connection, request)
    except OSError as error:
        result.failures[f"send: {type(error).__name__}"] += 1
        sock.close()
        return
    selector.register(sock, selectors.EVENT_READ, connection)


def _collect(selector: selectors.BaseSelector, deadline: float, result: Burst) -> None:
    while selector.get_map() and (left := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(left):
            connection: _Connection = key.data
            if _burst_answer(connection, result):
                _retire(selector, connection)
    for key in list(selector.get_map().values()):
        result.failures["no answer in time"] += 1
        _retire(selector, key.data)


def _burst_answer(connection: _Connection, result: Burst) -> bool:
    """Reads what arrived; True once the connection is answered or failed."""
    try:
        response = _read_some(connection)
    except (OSError, ProtocolError) as error:
        result.failures[f"receive: {type(error).__name__}"] += 1
        return True
    if response is None:
        return False
    result.latencies_ns.append(time.perf_counter_ns() - connection.sent_ns)
    result.statuses[response.status] += 1
    return True
