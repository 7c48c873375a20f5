"""What every table of the store beside the memories is reached through: the store's one
connection for reads, and its write transaction (durable before it returns)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

Write = Callable[[], AbstractContextManager[sqlite3.Connection]]


class Shelf:
    """Reads and durable writes (one transaction each) of one table."""

    def __init__(self, db: sqlite3.Connection, write: Write) -> None:
        self._db = db
        self._write = write
