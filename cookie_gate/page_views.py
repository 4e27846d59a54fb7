"""What the core tells the statistics: each HTML page it served, as the `Request` it read.

The core (the middleware and its responders) reports page views and never imports
`stats/`; whatever counts them implements `PageViews`. The request is handed over as the
record the core already made (`request.Request`: the visit, the time, the headers), so a
page view costs no second record on the request path. The one answer that flows back is
the visit counter's new `Set-Cookie`, because it must go out with the very response that
was counted.
"""

from __future__ import annotations

from typing import Protocol

from cookie_gate.asgi import Scope
from cookie_gate.request import Request


class PageViews(Protocol):
    """Whatever counts page views (`stats.recorder.Statistics`)."""

    def page_view(self, request: Request, scope: Scope) -> bytes | None:
        """Count the HTML page a 2xx answer to a GET served, off the request path.

        Returns the visit counter's new `Set-Cookie` value, when the visitor allows
        analytics and the count changed. The client's address and User-Agent stay in
        memory: the statistics turn them into counts (and, with `daily_visitor_hash`, a
        salted daily key), never store them.
        """
