"""The wall clock, as one callable handed to every part that needs the time.

Consent expiry, decision stamps, statistics buckets, retention and the report's
"today" all ask the `Clock` the middleware was given instead of calling
`time.time()` themselves. Production passes nothing and gets `time.time`; a test
passes a fixed or stepping clock, so no result depends on the hour the suite runs.
"""

from __future__ import annotations

from collections.abc import Callable

#: Seconds since the Unix epoch, UTC, like `time.time()`.
Clock = Callable[[], float]
