"""Where the gateway keeps what must outlive a process: the log of consent decisions.

Stores are synchronous and thread-safe; the gateway calls them from worker threads
so a slow disk or a busy database never stalls the event loop. The URL picks the
backend: `sqlite:///path` (default, embedded) or `postgresql://...` (shared by many
app instances).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cookie_gate.store.sql import SQLStore

logger = logging.getLogger("cookie_gate.store")

#: How a decision reached the gateway, the `method` of each logged row:
#: `banner`, the banner's script (its JSON says `"via": "banner"`); `form`, a plain HTML form
#: post (the banner or the settings panel without JavaScript, or any form of the site's);
#: `api`, any other JSON post (the site's own code); `withdrawal`, a withdrawal by any of them.
#: Rows logged before schema version 2 have an empty method, locale and shown digest.
METHODS = ("banner", "form", "api", "withdrawal")


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One logged decision. It carries no IP address, no User-Agent, nothing to identify
    a person: the consent id is random and lives only in the visitor's own cookie.

    `shown` is the digest of the banner in `locale` (`cookie_gate.shown`): with the
    configuration of the day it proves the texts and cookie lists the choice was made on.
    """

    consent_id: str
    decided_at: int
    action: str
    categories: tuple[str, ...]
    policy_version: str
    gpc: bool
    method: str = ""
    locale: str = ""
    shown: str = ""


class StoreError(RuntimeError):
    """The store could not be reached or written; the message never holds a secret."""


def open_store(url: str, *, timeout: float = 2.0) -> SQLStore:
    """The store for `url`, not yet connected. `timeout` bounds each connect and statement
    of a networked store (a hung server must not hold a shutdown)."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from cookie_gate.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        from cookie_gate.store.postgres import PostgresStore

        return PostgresStore(url, timeout=timeout)
    raise StoreError(f"unsupported store URL scheme {scheme!r}")


def check_store(store: SQLStore) -> str | None:
    """Open the store and write and remove a probe row: None when that works, else the problem."""
    try:
        store.probe()
    except StoreError as error:
        return str(error)
    return None


def warn_if_store_fails(store: SQLStore) -> None:
    """The start-up check: one WARNING when the store cannot be opened or written. The site
    keeps serving; consent decisions answer 503 and statistics are held until it works."""
    problem = check_store(store)
    if problem is not None:
        logger.warning(
            "cookie_gate store check failed at start-up (pages are still served, nothing is written "
            "until the store works; run `cookie-gate check-config`): %s",
            problem,
        )


def start_store_check(store: SQLStore) -> None:
    """Run the start-up check on a thread of its own, off the request path."""
    threading.Thread(target=warn_if_store_fails, args=(store,), name="cookie-gate-store-check", daemon=True).start()
