"""Every table the dashboard shows, as rows, and as CSV or JSON to download.

The tables are derived from the report (and the cookie inventory) only, so an export
always says what the page says. Text a visitor controls (paths, referrers, browser and
cookie names) is made safe as everywhere else (`cookie_gate.terminal`): in CSV control
and bidi characters are escaped and a cell a spreadsheet would run as a formula gets a
leading `'`; in JSON they are `\\u` escapes, which decode to the same value.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cookie_gate.classify import TRUNCATED
from cookie_gate.consent import NECESSARY
from cookie_gate.stats.report import ACTIONS, WEEKDAYS
from cookie_gate.terminal import printable_json, spreadsheet_cell

#: An inventory row: (name, category, filed by, first seen day, last seen day).
InventoryRow = tuple[str, str, str, str, str]
Cell = str | int | float
SUSPECTED = "suspected tracker"


@dataclass(frozen=True, slots=True)
class Table:
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]

    def records(self) -> list[dict[str, Cell]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


#: Builds one table from the report, the cookie inventory and `opt_in_categories`.
Builder = Callable[[Mapping[str, Any], Sequence[InventoryRow], Sequence[str]], Table]


def _counts(column: str, values: Mapping[str, int]) -> Table:
    return Table((column, "count"), [(label, n) for label, n in values.items()])


def _daily(report: Mapping[str, Any], inventory: Sequence[InventoryRow], categories: Sequence[str]) -> Table:
    return Table(("day", "pageviews", "visits", "entries"), [tuple(day.values()) for day in report["daily"]])


def _heatmap(report: Mapping[str, Any], inventory: Sequence[InventoryRow], categories: Sequence[str]) -> Table:
    return Table(
        ("weekday", *(f"{hour:02d}" for hour in range(24))),
        [(weekday, *report["by_weekday_hour"][weekday]) for weekday in WEEKDAYS],
    )


def _consent_daily(report: Mapping[str, Any], inventory: Sequence[InventoryRow], categories: Sequence[str]) -> Table:
    return Table(
        ("day", *ACTIONS, *(f"accepted {c}" for c in categories), *(f"opt-in rate {c}" for c in categories)),
        [
            (
                day["day"],
                *(day[action] for action in ACTIONS),
                *(day["accepted"].get(c, 0) for c in categories),
                *(day["opt_in_rate"].get(c, 0.0) for c in categories),
            )
            for day in report["consent"]["by_day"]
        ],
    )


def _opt_in(report: Mapping[str, Any], inventory: Sequence[InventoryRow], categories: Sequence[str]) -> Table:
    consent = report["consent"]
    previous = report.get("previous", {}).get("opt_in_rate", {})
    return Table(
        ("category", "accepted", "opt-in rate", "previous opt-in rate"),
        [(c, consent["accepted"].get(c, 0), consent["opt_in_rate"].get(c, 0.0), previous.get(c, 0.0))
         for c in categories],
    )  # fmt: skip


def opt_in_categories(report: Mapping[str, Any], configured: Iterable[str]) -> list[str]:
    """The categories the page and the exports show an opt-in rate for: every configured one (at 0
    when nobody accepted it) and any other the log holds (a category since removed), configured
    first; never `necessary`, which every choice accepts."""
    known = set(configured)
    seen = set(report["consent"]["accepted"]) | known
    return sorted(seen - {NECESSARY}, key=lambda c: (c not in known, c))


def _cookies(report: Mapping[str, Any], inventory: Sequence[InventoryRow], categories: Sequence[str]) -> Table:
    return Table(("cookie", "category", "filed by", "first seen", "last seen"), list(sorted_inventory(inventory)))


def sorted_inventory(inventory: Sequence[InventoryRow]) -> list[InventoryRow]:
    """Suspected trackers first, then by category and name; the truncation marker left out."""
    return sorted(
        (row for row in inventory if row[0] != TRUNCATED),
        key=lambda row: (not row[2].startswith(SUSPECTED), row[1], row[0]),
    )


def _simple(key: str, column: str) -> Builder:
    return lambda report, inventory, categories: _counts(column, report[key])


def _frequency(key: str, column: str) -> Builder:
    return lambda report, inventory, categories: _counts(column, report["visit_frequency"][key])


#: Every table by the name its export URL uses.
TABLES: dict[str, Builder] = {
    "daily": _daily,
    "pages": lambda r, i, c: Table(("path", "pageviews"), [(p["path"], p["pageviews"]) for p in r["pages"]]),
    "referrers": lambda r, i, c: Table(("host", "entries"), [(p["host"], p["entries"]) for p in r["referrers"]]),
    "browsers": _simple("browsers", "browser"),
    "os": _simple("os", "system"),
    "devices": _simple("devices", "device"),
    "by_hour": lambda r, i, c: Table(("hour", "pageviews"), [(f"{h:02d}", n) for h, n in enumerate(r["by_hour"])]),
    "by_weekday": _simple("by_weekday", "weekday"),
    "by_weekday_hour": _heatmap,
    "visit_number": _frequency("visit_number", "visit number"),
    "days_since_last_visit": _frequency("days_since_last_visit", "days"),
    "visitor_weeks": _frequency("visitor_weeks_with_at_least_n_visits", "at least n visits"),
    "visitor_months": _frequency("visitor_months_with_at_least_n_visits", "at least n visits"),
    "consent_daily": _consent_daily,
    "opt_in": _opt_in,
    "cookies": _cookies,
}


def table(
    name: str, report: Mapping[str, Any], inventory: Sequence[InventoryRow], configured: Iterable[str] = ()
) -> Table:
    """Table `name`; `configured` are the site's categories, as the page has them."""
    return TABLES[name](report, inventory, opt_in_categories(report, configured))


def as_csv(data: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(data.columns)
    writer.writerows([_neutralised(cell) for cell in row] for row in data.rows)
    return out.getvalue().encode("utf-8")


def as_json(data: Table) -> bytes:
    return printable_json(json.dumps(data.records(), ensure_ascii=False)).encode("utf-8")


def _neutralised(cell: Cell) -> Cell:
    return spreadsheet_cell(cell) if isinstance(cell, str) else cell
