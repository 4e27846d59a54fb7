"""What the dashboard's query string may ask for, checked before any work is done.

Every value is the requester's (an admin, but a browser can be tricked into any link),
so each is held to a small grammar: ASCII `YYYY-MM-DD` dates, a bounded period, a
known language, table and format. Anything else is a `BadQuery` whose reason the
endpoint sends back with a 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qs

from cookie_gate.dashboard.texts import LOCALES
from cookie_gate.stats.report import DEFAULT_DAYS, MAX_DAYS

#: More parameters than this is not a dashboard link.
MAX_FIELDS = 16
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
PRESETS = (7, 30, 90)


class BadQuery(ValueError):
    """A query value the dashboard refuses; `str()` is the reason sent with the 400."""


@dataclass(frozen=True, slots=True)
class DashboardQuery:
    """The period asked for (explicit dates, or the last `days` up to today) and the language."""

    days: int = DEFAULT_DAYS
    since: date | None = None
    until: date | None = None
    lang: str | None = None

    def link(self, **changes: str | int) -> str:
        """The query string of this view with some parameters changed, for the page's links."""
        if "days" in changes or self.since is None or self.until is None:
            params: dict[str, str | int] = {"days": self.days}
        else:
            params = {"from": self.since.isoformat(), "to": self.until.isoformat()}
        if self.lang is not None:
            params["lang"] = self.lang
        params.update(changes)
        return "?" + "&amp;".join(f"{key}={value}" for key, value in params.items())


def parse_query(query: bytes) -> DashboardQuery:
    try:
        fields = parse_qs(query.decode("latin-1"), max_num_fields=MAX_FIELDS)
    except ValueError as error:
        raise BadQuery(f"the query string is malformed or has more than {MAX_FIELDS} fields") from error
    values = {key: texts[-1] for key, texts in fields.items()}  # a repeated parameter: the last one counts
    lang = values.get("lang")
    if lang is not None and lang not in LOCALES:
        raise BadQuery(f"lang must be one of {', '.join(LOCALES)}")
    first, last = values.get("from", ""), values.get("to", "")
    if first or last:
        since, until = _day("from", first), _day("to", last)
        if until < since:
            raise BadQuery("to must not be before from")
        if (until - since).days + 1 > MAX_DAYS:
            raise BadQuery(f"a period covers at most {MAX_DAYS} days")
        return DashboardQuery((until - since).days + 1, since, until, lang)
    text = values.get("days", str(DEFAULT_DAYS))
    # ASCII digits only (str.isdigit also takes "²", which int() refuses), and few of them: int()
    # refuses thousands.
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_DAYS))) or not 1 <= int(text) <= MAX_DAYS:
        raise BadQuery(f"days must be a whole number from 1 to {MAX_DAYS}")
    return DashboardQuery(int(text), lang=lang)


def _day(name: str, text: str) -> date:
    if not _DATE.fullmatch(text):
        raise BadQuery(f"{name} must be a date written YYYY-MM-DD (both from and to, or neither)")
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise BadQuery(f"{name} is not a calendar date") from error
    if not 1971 <= day.year <= 9000:
        raise BadQuery(f"{name} must fall in the years 1971 to 9000")
    return day
