"""The proof-of-consent export: the consent log as CSV or JSON, for an admin to hand over.

GDPR Art. 7(1) asks a site to be able to demonstrate each consent. A row says who (a
random consent id, nothing that identifies a person), when, what was chosen, under which
policy version, how it came (`store.METHODS`), in which locale, whether Global Privacy
Control was on, and the digest of the banner shown (`cookie_gate.shown`), which with the
configuration of the day proves the words and cookie lists the choice was made on.

Rows are streamed, one store page at a time. Every cell is made safe to print on a
terminal, and a CSV cell that a spreadsheet would run as a formula (consent ids may start
with `-`) gets a leading `'` (`cookie_gate.terminal.spreadsheet_cell`).

An export is read a page at a time, each page a query of its own: it shows the rows
committed by the time each page is read. On a live PostgreSQL store a decision committed
after a page was read but with an earlier time than that page's last row (a slow
transaction) is not in this export; a later export has it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from cookie_gate.store import DecisionRecord
from cookie_gate.terminal import printable_json, spreadsheet_cell

COLUMNS = ("consent_id", "decided_at", "action", "categories", "policy_version", "gpc", "method", "locale", "shown")


def export_row(record: DecisionRecord) -> dict[str, Any]:
    """One decision as the export shows it: times in UTC ISO 8601, categories as a list."""
    return {
        "consent_id": record.consent_id,
        "decided_at": datetime.fromtimestamp(record.decided_at, UTC).isoformat().replace("+00:00", "Z"),
        "action": record.action,
        "categories": list(record.categories),
        "policy_version": record.policy_version,
        "gpc": record.gpc,
        "method": record.method,
        "locale": record.locale,
        "shown": record.shown,
    }


def write_csv(records: Iterable[DecisionRecord], out: TextIO) -> int:
    """Header and one line per decision (categories space-separated, gpc `true`/`false`); the count."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for record in records:
        row = export_row(record)
        row["categories"] = " ".join(row["categories"])
        row["gpc"] = "true" if row["gpc"] else "false"
        writer.writerow([spreadsheet_cell(str(row[column])) for column in COLUMNS])
        count += 1
    return count


def write_json(records: Iterable[DecisionRecord], out: TextIO) -> int:
    """A JSON array of objects, one decision a line; the count."""
    count = 0
    out.write("[")
    for record in records:
        out.write(",\n" if count else "\n")
        out.write(printable_json(json.dumps(export_row(record), ensure_ascii=False)))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
