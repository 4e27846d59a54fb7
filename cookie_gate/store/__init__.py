"""Where the gateway keeps what must outlive a process: the log of consent decisions.

Stores are synchronous and thread-safe; the gateway calls them from worker threads
so a slow disk or a busy database never stalls the event loop. The URL picks the
backend: `sqlite:///path` (default, embedded) or `postgresql://...` (shared by many
app instances).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cookie_gate.store.sql import SQLStore


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One logged decision. It carries no IP address, no User-Agent, nothing to identify
    a person: the consent id is random and lives only in the visitor's own cookie."""

    consent_id: str
    decided_at: int
    action: str
    categories: tuple[str, ...]
    policy_version: str
    gpc: bool


class StoreError(RuntimeError):
    """The store could not be reached or written; the message never holds a secret."""


def open_store(url: str) -> SQLStore:
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from cookie_gate.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        from cookie_gate.store.postgres import PostgresStore

        return PostgresStore(url)
    raise StoreError(f"unsupported store URL scheme {scheme!r}")
