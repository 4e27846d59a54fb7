"""The gateway's own cookies, named where both the core and the statistics can read them.

The consent cookie's name is configured (`cookie_name`); the visit counter's name and
lifetime are fixed. The core files the counter as analytics, hands its value to the
statistics and declares it in the cookie declaration; `stats.counter` writes it. The
names live here, below both, so that the core never imports `stats/`.
"""

from __future__ import annotations

#: The visit counter cookie of visitors who accepted analytics (`stats.counter`).
COUNTER_COOKIE = "cookie_gate_visits"
#: The counter expires this many months after it was first set, however often it is rewritten.
COUNTER_LIFETIME_MONTHS = 13
#: The counter counts visits, so it is filed, declared and refused as analytics.
COUNTER_CATEGORY = "analytics"
