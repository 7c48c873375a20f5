"""`mem8 keys ...`: the API keys a server accepts. A key's secret is shown once, when it is
made (the last line of the output), and only its SHA-256 is kept; the key's name is the tenant
its memories belong to, so a rotated key keeps them."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from mem8 import keys
from mem8.config import load_settings
from mem8.scope import tenant_of
from mem8.storage.keys import KeyRecord, KeyShelf
from mem8.storage.sqlite import MemoryStore


def add_commands(parser: argparse.ArgumentParser) -> None:
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("--storage", help="SQLite storage file (MEM8_STORAGE)")
    limits = argparse.ArgumentParser(add_help=False)
    limits.add_argument("--rpm", type=int, help="requests per minute (default: the server's)")
    limits.add_argument("--tpm", type=int, help="chat tokens per minute (default: the server's)")
    limits.add_argument("--streams", type=int, help="open streams at once (default: the server's)")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", parents=[storage, limits], help="make a key")
    create.add_argument("name", help="the key's name: the tenant its memories belong to")
    create.add_argument("--admin", action="store_true", help="may list tenants and their usage")
    create.add_argument(
        "--claim",
        metavar="OLD_KEY",
        help="move the memories and files made with OLD_KEY before keys existed to this key",
    )
    actions.add_parser("list", parents=[storage], help="the keys (never their secrets)")
    revoke = actions.add_parser("revoke", parents=[storage], help="stop accepting a key")
    revoke.add_argument("name")
    rotate = actions.add_parser("rotate", parents=[storage], help="a new secret, same tenant")
    rotate.add_argument("name")
    limit = actions.add_parser("limit", parents=[storage, limits], help="a key's own limits")
    limit.add_argument("name")
    parser.set_defaults(run=main)


def main(arguments: argparse.Namespace) -> int:
    settings = load_settings(overrides={"storage": arguments.storage})
    with MemoryStore.open(Path(settings.storage)) as store:
        shelf = store.keys
        if arguments.action == "create":
            return _create(shelf, arguments)
        if arguments.action == "list":
            _list(shelf.list())
        elif arguments.action == "revoke":
            shelf.revoke(arguments.name, time.time())
            print(f"revoked {arguments.name}: the server refuses it from its next request")
        elif arguments.action == "rotate":
            secret = keys.new_secret()
            shelf.rotate(arguments.name, keys.secret_hash(secret))
            print(f"rotated {arguments.name}: its old secret is refused from now on; the new one:")
            print(secret)
        else:
            shelf.limit(arguments.name, *_limits(arguments))
            print(f"limits of {arguments.name} set")
    return 0


def _create(shelf: KeyShelf, arguments: argparse.Namespace) -> int:
    name = keys.checked_name(arguments.name)
    secret = keys.new_secret()
    record = KeyRecord(
        name, keys.secret_hash(secret), arguments.admin, time.time(), None, *_limits(arguments)
    )
    shelf.add(record)
    print(f"created {'admin ' if arguments.admin else ''}key {name}")
    if arguments.claim:
        moved = shelf.claim(tenant_of(arguments.claim), name)
        print("claimed: " + ", ".join(f"{n} {table}" for table, n in moved.items()))
    print("its secret, shown only now (send it as the bearer API key):")
    print(secret)
    return 0


def _limits(arguments: argparse.Namespace) -> tuple[int | None, int | None, int | None]:
    return arguments.rpm, arguments.tpm, arguments.streams


def _list(records: list[KeyRecord]) -> None:
    if not records:
        print("no keys: the server is open (on loopback only)")
        return
    for r in records:
        made = datetime.fromtimestamp(r.created, UTC).strftime("%Y-%m-%d %H:%M")
        state = "revoked" if r.revoked is not None else "active"
        role = "admin" if r.admin else "user"
        limits = f"rpm {r.requests_per_minute or '-'} tpm {r.tokens_per_minute or '-'}"
        print(
            f"{r.name:24} {role:5} {state:7} made {made} UTC  {limits} streams {r.streams or '-'}"
        )
