"""Time in the site's own time zone, cut into the buckets the statistics count by.

Days, weeks and months must start at the site's midnight, not UTC's, or a Seoul
site's evening visits would land on the next day. Converting a timestamp through
zoneinfo costs microseconds, so the buckets are cached per minute.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

_EPOCH = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class Moment:
    minute: int  # UTC minutes since the epoch: the resolution of the 30-minute visit rule
    day: int  # local days since 1970-01-01
    week: int  # local Monday-based weeks since the epoch
    month: int  # year * 12 + month - 1, local
    hour_key: str  # "2026-12-01T14", local
    day_key: str  # "2026-12-01", local

    @property
    def weekday(self) -> int:
        """0 is Monday; 1970-01-01 was a Thursday."""
        return (self.day + 3) % 7


def day_key(day: int) -> str:
    return date.fromordinal(day + _EPOCH).isoformat()


class SiteClock:
    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self._by_minute = functools.lru_cache(maxsize=4096)(self._moment)

    def at(self, timestamp: float) -> Moment:
        return self._by_minute(int(timestamp // 60))

    def _moment(self, minute: int) -> Moment:
        local = datetime.fromtimestamp(minute * 60, self.zone)
        day = local.date().toordinal() - _EPOCH
        return Moment(
            minute=minute,
            day=day,
            week=(day + 3) // 7,
            month=local.year * 12 + local.month - 1,
            hour_key=local.strftime("%Y-%m-%dT%H"),
            day_key=local.date().isoformat(),
        )

    def midnight_after_months(self, day: int, months: int) -> datetime:
        """Local midnight `months` calendar months after `day` (clamped to the month's end)."""
        start = date.fromordinal(day + _EPOCH)
        month_index = start.year * 12 + start.month - 1 + months
        year, month = divmod(month_index, 12)
        last_day = (date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1) - timedelta(days=1)).day
        return datetime(year, month + 1, min(start.day, last_day), tzinfo=self.zone)
