"""Who may call, and how much: API keys and per-key limits, before any /v1 route.

With no key in the store the server is open (a bearer key only names its tenant, as before
keys existed; mem8 then serves loopback only, unless told --insecure). Once a key exists every
/v1 request needs a valid, unrevoked one (else 401 invalid_api_key), and its tenant is the key's
name. Each tenant may make `requests_per_minute` requests and use `tokens_per_minute` chat
tokens in any minute and keep `streams_per_key` streams open (0: no limit; a key's own limits
override the server's): past them a 429 rate_limit_exceeded with Retry-After, and every answer
carries OpenAI's x-ratelimit-* headers. Usage is counted per tenant since the server started.

The dashboard's data (/dashboard/api/...) shows every tenant: it needs an admin key once keys
exist (401 without a valid one, 403 for a normal one), and without keys a loopback client (a
server told --insecure serves others the API, not everyone's memories)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from quart import Response, g, request

from mem8 import errors
from mem8.http.edge import is_loopback
from mem8.http.errors import render
from mem8.keys import Caller
from mem8.scope import tenant_of
from mem8.system import System

WINDOW = 60.0  # seconds: limits are per minute, over a sliding window
GUARDED = "/v1/"
ADMIN_ONLY = "/dashboard/api/"


@dataclass
class Usage:
    """One tenant's requests and tokens: the last minute's (for limits) and all since start."""

    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    streams: int = 0
    total_requests: int = 0
    total_tokens: int = 0

    def forget_before(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW:
            self.tokens.popleft()

    def tokens_used(self) -> int:
        return sum(n for _, n in self.tokens)


@dataclass(frozen=True)
class Limits:
    requests: int  # 0: none
    tokens: int
    streams: int


class Gate:
    def __init__(self, system: System) -> None:
        self.system = system
        self.settings = system.settings
        self.usage: dict[str, Usage] = {}

    # --- before and after a request ---

    async def admit(self) -> Response | None:
        """None to go on; else the refusal (401, 403, 429), which closes the connection (its
        body was not read)."""
        try:
            if request.path.startswith(ADMIN_ONLY):
                self._admit_admin()
            elif request.path.startswith(GUARDED):
                caller = self._caller()
                g.caller = caller
                self.count(caller)
        except errors.Mem8Error as error:
            response = render(error)
            response.headers["Connection"] = "close"
            self._sign(response)
            return response
        return None

    def _admit_admin(self) -> None:
        if not self.system.keys.required:
            if not is_loopback(request.remote_addr or ""):
                raise errors.PermissionDenied(
                    "Without API keys the dashboard answers only on this machine: create an "
                    "admin key with `mem8 keys create NAME --admin`"
                )
            return
        if not self._caller().admin:
            raise errors.PermissionDenied(
                "The dashboard needs an admin key (`mem8 keys create NAME --admin`)"
            )

    async def sign(self, response: Response) -> Response:
        if request.path.startswith(GUARDED) and "caller" in g:
            self._sign(response)
        return response

    def admit_admin(self, what: str) -> None:
        """For a route outside /v1 that, once keys exist, only an admin key may use (401
        without a valid key, 403 for another); open without keys, on loopback only."""
        if not self.system.keys.required:
            return
        caller = self._caller()
        g.caller = caller
        if not caller.admin:
            raise errors.PermissionDenied(f"{what} needs an admin key")

    def _caller(self) -> Caller:
        return self.caller_for(request.headers.get("Authorization", ""))

    def caller_for(self, header: str) -> Caller:
        """Who an Authorization header's bearer key is (401 once keys exist and it is none);
        /v1 and /mcp alike."""
        scheme, _, secret = header.partition(" ")
        secret = secret.strip() if scheme.lower() == "bearer" else ""
        keys = self.system.keys
        if not keys.required:  # open: the key, if any, only names the tenant
            tenant = tenant_of(secret) if secret else "anonymous"
            return Caller(tenant, False, None, None, None)
        caller = keys.caller(secret) if secret else None
        if caller is None:
            shown = f"{secret[:8]}...{secret[-4:]}" if len(secret) > 12 else "(none)"
            raise errors.InvalidApiKey(
                f"Incorrect API key provided: {shown}. Create one with `mem8 keys create NAME`."
            )
        return caller

    def limits(self, caller: Caller) -> Limits:
        settings = self.settings
        return Limits(
            _own(caller.requests_per_minute, settings.requests_per_minute),
            _own(caller.tokens_per_minute, settings.tokens_per_minute),
            _own(caller.streams, settings.streams_per_key),
        )

    def count(self, caller: Caller) -> None:
        """One request of the caller's, refused (429) past its per-minute limits."""
        now = trio.current_time()
        usage = self.usage.setdefault(caller.tenant, Usage())
        usage.forget_before(now)
        limits = self.limits(caller)
        if limits.requests and len(usage.requests) >= limits.requests:
            wait = usage.requests[0] + WINDOW - now
            raise errors.RateLimited(
                f"Rate limit reached for {caller.tenant} on requests per minute: limit "
                f"{limits.requests}, used {len(usage.requests)}. Try again in {math.ceil(wait)}s.",
                retry_after=wait,
            )
        if limits.tokens and usage.tokens_used() >= limits.tokens:
            wait = usage.tokens[0][0] + WINDOW - now
            raise errors.RateLimited(
                f"Rate limit reached for {caller.tenant} on tokens per minute: limit "
                f"{limits.tokens}, used {usage.tokens_used()}. Try again in {math.ceil(wait)}s.",
                retry_after=wait,
                kind="tokens",
            )
        usage.requests.append(now)
        usage.total_requests += 1

    def _sign(self, response: Response) -> None:
        """OpenAI's x-ratelimit-* headers, for the limits that are set."""
        caller: Caller | None = g.get("caller")
        if caller is None:
            return
        usage = self.usage.get(caller.tenant, Usage())
        now = trio.current_time()
        limits = self.limits(caller)
        if limits.requests:
            reset = usage.requests[0] + WINDOW - now if usage.requests else 0.0
            response.headers["x-ratelimit-limit-requests"] = str(limits.requests)
            left = max(0, limits.requests - len(usage.requests))
            response.headers["x-ratelimit-remaining-requests"] = str(left)
            response.headers["x-ratelimit-reset-requests"] = _duration(reset)
        if limits.tokens:
            reset = usage.tokens[0][0] + WINDOW - now if usage.tokens else 0.0
            response.headers["x-ratelimit-limit-tokens"] = str(limits.tokens)
            left = max(0, limits.tokens - usage.tokens_used())
            response.headers["x-ratelimit-remaining-tokens"] = str(left)
            response.headers["x-ratelimit-reset-tokens"] = _duration(reset)

    # --- what routes tell it ---

    def caller(self) -> Caller:
        """The request's caller, as admitted."""
        found: Caller = g.caller
        return found

    def spent(self, tenant: str, tokens: int) -> None:
        """A chat's prompt and reply tokens, counted against its tenant's minute."""
        usage = self.usage.setdefault(tenant, Usage())
        usage.tokens.append((trio.current_time(), tokens))
        usage.total_tokens += tokens

    def hold_stream(self, caller: Caller) -> Callable[[], None]:
        """A stream's slot, held until the returned function is called (once); refused past
        the key's limit."""
        usage = self.usage.setdefault(caller.tenant, Usage())
        limit = self.limits(caller).streams
        if limit and usage.streams >= limit:
            raise errors.RateLimited(
                f"Rate limit reached for {caller.tenant} on concurrent streams: limit {limit}. "
                "Try again when one of them ends.",
                retry_after=1.0,
            )
        usage.streams += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                usage.streams -= 1

        return release


def _own(own: int | None, server: int) -> int:
    return server if own is None else own


def _duration(seconds: float) -> str:
    """OpenAI's reset format: "6m0s", "1.5s", "20ms"."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"
