"""Whose memory a memory is, and which memories a request may see: one type, one rule.

The bottom layer: it imports nothing of mem8, so the grid, the store, the actors and the CLI
all filter the same way."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

# The persona of memories that belong to every persona of a scope (a file uploaded without one).
EVERY_PERSONA = ""


@functools.lru_cache(maxsize=1024)
def tenant_of(key: str) -> str:
    """The tenant a bearer key names while the server has no API keys: a hash of it (the key
    itself is never kept)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """Whose memory this is: the API key's tenant, its end user, and the persona."""

    tenant: str
    user: str
    persona: str


def seen_by(asked: str | None, persona: str) -> bool:
    """Whether a request for persona `asked` (None: any) sees memories of `persona`: its own,
    and those shared with every persona."""
    return asked is None or persona in (asked, EVERY_PERSONA)


@dataclass(frozen=True, slots=True)
class Audience:
    """Which scopes a recall, listing or search sees. None admits any tenant, user or persona;
    a persona also sees what is shared with every persona."""

    tenant: str | None
    user: str | None = None
    persona: str | None = None

    def admits(self, scope: Scope) -> bool:
        return (
            (self.tenant is None or scope.tenant == self.tenant)
            and (self.user is None or scope.user == self.user)
            and seen_by(self.persona, scope.persona)
        )
