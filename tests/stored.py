"""What a SQLite store holds, read as an operator's `sqlite3` shell would: a connection of the test's own.

Tests look at the file rather than at the store object's connection, so they check what
really reached disk and stay out of the store's locking.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any


def read_store(path: str | Path, statement: str) -> list[tuple[Any, ...]]:
    """The rows `statement` reads from the SQLite file at `path`."""
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(statement).fetchall()


def stored_paths(path: str | Path) -> list[tuple[str, int]]:
    """(path, count) of every page-view path the statistics kept, all days, sorted by path."""
    return sorted(read_store(path, "SELECT value, n FROM cookie_gate_detail WHERE kind = 'path'"))
