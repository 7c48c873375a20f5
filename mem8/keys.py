"""API keys: who may call the server, as whom (the key's name is its tenant), with what limits.

`mem8 keys create NAME` makes a random secret, shows it once and keeps only its SHA-256. Once
any key exists, the server serves only requests that bear a valid, unrevoked one. The server
reads the keys through a KeyRing: its own read-only connection to the store's file, looked at
again whenever the file changed (SQLite's data_version), so a key the CLI creates, rotates or
revokes counts at the server's next request."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from mem8.errors import ConfigError
from mem8.storage.keys import KeyRecord

PREFIX = "mem8-"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Names a key cannot take: the tenants mem8 makes without keys.
RESERVED = re.compile(r"(key-.*|anonymous|sim)")


def new_secret() -> str:
    """A new key: 256 random bits, URL-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def checked_name(name: str) -> str:
    if not NAME.fullmatch(name) or RESERVED.fullmatch(name):
        raise ConfigError(
            f"a key's name is 1 to 64 letters, digits, '_', '.' or '-' (not 'key-...', "
            f"'anonymous' or 'sim'), not {name!r}"
        )
    return name


@dataclass(frozen=True)
class Caller:
    """Who a valid key says is calling."""

    tenant: str
    admin: bool
    requests_per_minute: int | None
    tokens_per_minute: int | None
    streams: int | None


class KeyRing:
    """The keys the server accepts, read from the store's file and kept up to date with it."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        self._seen = -1
        self._any = False
        self._all: list[KeyRecord] = []
        self._keys: dict[str, KeyRecord] = {}  # by hash, unrevoked

    def close(self) -> None:
        self._db.close()

    @property
    def required(self) -> bool:
        """Whether any key exists (revoked ones count: the server stays closed)."""
        self._refresh()
        return self._any

    def caller(self, secret: str) -> Caller | None:
        """Who the secret names, if it is a valid key; compared in constant time."""
        self._refresh()
        wanted = secret_hash(secret)
        found = None
        for known, record in self._keys.items():  # every key, whichever matches
            if hmac.compare_digest(known, wanted):
                found = record
        if found is None:
            return None
        return Caller(
            found.name,
            found.admin,
            found.requests_per_minute,
            found.tokens_per_minute,
            found.streams,
        )

    def records(self) -> list[KeyRecord]:
        """Every key (revoked ones too), by name."""
        self._refresh()
        return sorted(self._all, key=lambda r: r.name)

    def _refresh(self) -> None:
        with self._lock:
            version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
            if version == self._seen:
                return
            self._seen = version
            try:
                rows = self._db.execute(
                    "SELECT name, hash, admin, created, revoked, requests_per_minute, "
                    "tokens_per_minute, streams FROM keys"
                ).fetchall()
            except sqlite3.OperationalError:  # a store from before keys: none
                rows = []
            records = [KeyRecord(r[0], r[1], bool(r[2]), *r[3:]) for r in rows]
            self._any = bool(records)
            self._all = records
            self._keys = {r.hash: r for r in records if r.revoked is None}
