"""Who is calling: the tenant (from the API key) and its end user (the request's `user`)."""

from __future__ import annotations

import functools
import hashlib

from quart import request

ANONYMOUS = "anonymous"


def caller(user: str) -> tuple[str, str]:
    """The tenant is a hash of the bearer key (keys are never stored); the user is as given."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return ANONYMOUS, user
    return tenant_of(key.strip()), user


@functools.lru_cache(maxsize=1024)
def tenant_of(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def conversation_key(tenant: str, user: str, persona: str, messages: list[dict[str, str]]) -> str:
    """The `x-mem8-conversation` header if given; else the conversation's opening user message
    identifies it (OpenAI clients resend the whole history with every request)."""
    named = request.headers.get("x-mem8-conversation", "").strip()
    opening = named or next((m["content"] for m in messages if m["role"] == "user"), "")
    digest = hashlib.sha256("\x00".join([tenant, user, persona, opening]).encode()).hexdigest()
    return digest[:24]
