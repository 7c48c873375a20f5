"""Who is calling: the tenant (from the API key) and its end user (the request's `user`)."""

from __future__ import annotations

import hashlib

from quart import g, request

from mem8.scope import tenant_of

ANONYMOUS = "anonymous"


def caller(user: str) -> tuple[str, str]:
    """The tenant the gate admitted the request as (a key's name; with no keys in the store, a
    hash of the bearer key, which is never stored); the user is as given."""
    admitted = g.get("caller")
    if admitted is not None:
        return str(admitted.tenant), user
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return ANONYMOUS, user
    return tenant_of(key.strip()), user


def conversation_key(tenant: str, user: str, persona: str, messages: list[dict[str, str]]) -> str:
    """The `x-mem8-conversation` header if given; else the conversation's opening user message
    identifies it (OpenAI clients resend the whole history with every request)."""
    named = request.headers.get("x-mem8-conversation", "").strip()
    opening = named or next((m["content"] for m in messages if m["role"] == "user"), "")
    digest = hashlib.sha256("\x00".join([tenant, user, persona, opening]).encode()).hexdigest()
    return digest[:24]
