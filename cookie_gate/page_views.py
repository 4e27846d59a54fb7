"""What the core tells the statistics: one `PageView` per HTML page served.

The core (the middleware and its responders) emits page views and never imports
`stats/`; whatever counts them implements `PageViews`. The one answer that flows
back is the visit counter's new `Set-Cookie`, because it must go out with the very
response that was counted.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol


class PageView(NamedTuple):
    """One HTML page served with a 2xx answer to a GET, as the request showed it.

    It holds the client's address and User-Agent in memory only: the statistics turn
    them into counts and (with `daily_visitor_hash`) a salted daily key, never store them.
    """

    at: float
    path: str
    host: bytes | None
    agent: bytes | None
    referrer: bytes | None
    #: The client's address as the server gave it, if it did.
    client: str | None
    #: Served over https, so a counter cookie set in reply must be `Secure`.
    secure: bool
    #: The visitor's choice allows analytics cookies (the counter cookie among them).
    analytics: bool
    #: The visit counter cookie's value the request carried, when analytics is allowed.
    counter: str | None


class PageViews(Protocol):
    """Whatever counts page views (`stats.recorder.Statistics`)."""

    def page_view(self, view: PageView) -> bytes | None:
        """Count `view`, off the request path; the counter's new `Set-Cookie` value, if it changed."""
