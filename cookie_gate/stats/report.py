"""The statistics report: what `cookie-gate stats` prints and the admin dashboard shows.

Everything is computed from counters at query time, so any period can be asked for.
Unique visitors over a period are exact without any identifier: each visit of a
visitor who accepted analytics carries the days since their previous visit, and a
visit is that visitor's first in the period exactly when the previous one falls
before the period began.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from cookie_gate.stats.clock import SiteClock, day_key
from cookie_gate.stats.referrer import stored_referrer
from cookie_gate.stats.writer import SHED_METRIC, SHED_ORDER
from cookie_gate.store.sql import DETAIL_TOP, DecisionCount, SQLStore
from cookie_gate.terminal import printable

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Matomo's buckets, so the figures compare with what admins know.
VISIT_NUMBER_BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (9, 14), (15, 25), (26, 50),
                        (51, 100), (101, 200), (201, 10**9))  # fmt: skip
GAP_BUCKETS = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 14), (15, 30), (31, 60), (61, 120),
               (121, 364), (365, 10**9))  # fmt: skip
TOP = DETAIL_TOP
#: The totals the comparison with the previous period covers.
COMPARED = ("pageviews", "entries", "visits", "visitors", "bots")
#: The hourly metrics the per-day series carries.
DAILY_METRICS = ("pageviews", "visits", "entries")
ACTIONS = ("accept_all", "reject_all", "custom", "withdraw")
#: The longest period the dashboard takes from a query (the CLI's admin may ask for more).
MAX_DAYS = 800
DEFAULT_DAYS = 30


def build_report(
    store: SQLStore,
    clock: SiteClock,
    *,
    now: float,
    days: int | None = None,
    since: date | None = None,
    until: date | None = None,
    compare: bool = False,
) -> dict[str, Any]:
    """The report for local days `since`..`until` (inclusive), or the `days` up to today.

    With `compare`, `previous` holds the totals of the equally long period just before,
    and `change` the difference of each total from it.
    """
    if since is None or until is None:
        today = clock.at(now).day
        span = DEFAULT_DAYS if days is None else days
        first, last = today - span + 1, today
    else:
        first, last = _ordinal(since), _ordinal(until)
    if last < first:
        raise ValueError("a report covers at least one day")
    report = _period_report(store, clock, first, last)
    if compare:
        span = last - first + 1
        before = _period_report(store, clock, first - span, first - 1)
        report["previous"] = {key: before[key] for key in COMPARED} | {
            "period": before["period"],
            "opt_in_rate": before["consent"]["opt_in_rate"],
            "decisions": sum(before["consent"]["decisions"].values()),
        }
        report["change"] = {key: report[key] - before[key] for key in COMPARED} | {
            "decisions": sum(report["consent"]["decisions"].values()) - report["previous"]["decisions"]
        }
    return report


def _ordinal(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _period_report(store: SQLStore, clock: SiteClock, first: int, last: int) -> dict[str, Any]:
    days = last - first + 1
    period_start = clock.midnight_after_months(first, 0).timestamp()
    period_end = clock.midnight_after_months(last + 1, 0).timestamp()
    rows = store.stats_rows(day_key(first), day_key(last), int(period_start), int(period_end))
    metrics: Counter[str] = Counter()
    by_hour = [0] * 24
    by_weekday = [0] * 7
    heatmap = [[0] * 24 for _ in WEEKDAYS]
    per_day = {day_key(day): Counter[str]() for day in range(first, last + 1)}
    for hour, metric, n in rows.hourly:
        metrics[metric] += n
        if metric in DAILY_METRICS and hour[:10] in per_day:
            per_day[hour[:10]][metric] += n
        if metric == "pageviews":
            weekday = date.fromisoformat(hour[:10]).weekday()
            by_hour[int(hour[11:13])] += n
            by_weekday[weekday] += n
            heatmap[weekday][int(hour[11:13])] += n
    daily: dict[str, Counter[str]] = {}
    visitors = 0
    for day, kind, value, n in rows.daily:
        daily.setdefault(kind, Counter())[value] += n
        if kind == "days_since_last":
            offset = (date.fromisoformat(day) - date.fromisoformat(day_key(first))).days
            if value == "new" or int(value) > offset:
                visitors += n
    detail: dict[str, Counter[str]] = {}
    for kind, value, n in rows.detail:
        if kind == "referrer":
            # Rows kept before IP addresses were bucketed show bucketed too. Only the top rows come
            # from the store, so such an old row outside them is not added to the bucket; they are
            # gone once the detail retention has passed since the upgrade.
            value = stored_referrer(value)
        detail.setdefault(kind, Counter())[value] += n
    return {
        "period": {"from": day_key(first), "to": day_key(last), "days": days, "timezone": clock.zone.key},
        "pageviews": metrics["pageviews"],
        "entries": metrics["entries"],
        "visits": metrics["visits"],
        "visitors": visitors,
        "bots": metrics["bots"],
        "bot_classes": _ranked(daily.get("bot", Counter())),
        "by_hour": by_hour,
        "by_weekday": dict(zip(WEEKDAYS, by_weekday, strict=True)),
        "by_weekday_hour": dict(zip(WEEKDAYS, heatmap, strict=True)),
        "daily": [{"day": day, **{m: counts[m] for m in DAILY_METRICS}} for day, counts in per_day.items()],
        "visit_frequency": {
            "new_visits": metrics["visits_new"],
            "returning_visits": metrics["visits_returning"],
            "visit_number": _bucketed(daily.get("visit_number", Counter()), VISIT_NUMBER_BUCKETS),
            "days_since_last_visit": _bucketed(daily.get("days_since_last", Counter()), GAP_BUCKETS),
            "visitor_weeks_with_at_least_n_visits": _ranks(daily.get("week_rank", Counter())),
            "visitor_months_with_at_least_n_visits": _ranks(daily.get("month_rank", Counter())),
        },
        "browsers": _ranked(daily.get("browser", Counter())),
        "os": _ranked(daily.get("os", Counter())),
        "devices": _ranked(daily.get("device", Counter())),
        "pages": [{"path": p, "pageviews": n} for p, n in detail.get("path", Counter()).most_common(TOP)],
        "referrers": [{"host": h, "entries": n} for h, n in detail.get("referrer", Counter()).most_common(TOP)],
        "consent": _consent(rows.decisions, clock, list(per_day)),
        "without_consent_daily_hash": {
            "visitor_days": metrics["hashed_visitors"],
            "visits": metrics["hashed_visits"],
        },
        "analytics_pageviews": metrics["analytics_pageviews"],
        "dropped_events": metrics["dropped"],
        # Counted in the totals, but this detail of theirs was shed while the store was down.
        "shed": {kind: metrics[SHED_METRIC + kind] for kind in SHED_ORDER},
    }


def _ranked(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _bucketed(counts: Mapping[str, int], buckets: Iterable[tuple[int, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    numbers = {int(k): n for k, n in counts.items() if k.isdigit()}
    for low, high in buckets:
        label = str(low) if low == high else f"{low}+" if high >= 10**9 else f"{low}-{high}"
        out[label] = sum(n for k, n in numbers.items() if low <= k <= high)
    return out


def _ranks(counts: Mapping[str, int]) -> dict[str, int]:
    """The k-th visit of a period happens once per visitor who came at least k times in it."""
    return {str(k): counts[str(k)] for k in sorted(int(k) for k in counts)}


def _consent(decisions: Iterable[DecisionCount], clock: SiteClock, days: list[str]) -> dict[str, Any]:
    """Decisions by kind, per category how many accepted it and at what rate, and the same per day.

    The opt-in rate of a category is the share of choices (every decision but a withdrawal)
    that accepted it.
    """
    actions: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    per_day = {day: (Counter[str](), Counter[str]()) for day in days}
    gpc = 0
    for row in decisions:
        day_actions, day_accepted = per_day.setdefault(clock.at(row.bucket).day_key, (Counter(), Counter()))
        actions[row.action] += row.n
        day_actions[row.action] += row.n
        gpc += row.n if row.gpc else 0
        if row.action != "withdraw":
            for category in row.categories.split():
                accepted[category] += row.n
                day_accepted[category] += row.n
    return {
        "decisions": {k: actions[k] for k in ACTIONS},
        "accepted": dict(sorted(accepted.items())),
        "with_gpc": gpc,
        "opt_in_rate": _rates(accepted, actions),
        "by_day": [
            {
                "day": day,
                **{k: day_actions[k] for k in ACTIONS},
                "accepted": dict(sorted(day_accepted.items())),
                "opt_in_rate": _rates(day_accepted, day_actions),
            }
            for day, (day_actions, day_accepted) in sorted(per_day.items())
            if day in days
        ],
    }


def _rates(accepted: Mapping[str, int], actions: Mapping[str, int]) -> dict[str, float]:
    choices = sum(n for action, n in actions.items() if action != "withdraw")
    return {category: round(n / choices, 4) for category, n in sorted(accepted.items())} if choices else {}


# -- the human view ------------------------------------------------------------------------------


def format_report(report: Mapping[str, Any], width: int = 40) -> str:
    period = report["period"]
    frequency = report["visit_frequency"]
    lines = [
        f"cookie_gate statistics  {period['from']} .. {period['to']}  ({period['days']} days, {period['timezone']})",
        "",
        f"  page views {report['pageviews']:>10,}   entries {report['entries']:>8,}   bots {report['bots']:>8,}"
        " (not counted)",
        f"  visits     {report['visits']:>10,}   new {frequency['new_visits']:>12,}   returning "
        f"{frequency['returning_visits']:>4,}",
        f"  visitors   {report['visitors']:>10,}   (visits and visitors: visitors who accepted analytics)",
    ]
    hashed = report["without_consent_daily_hash"]
    if hashed["visitor_days"]:
        lines.append(
            f"  without consent (daily hash): {hashed['visitor_days']:,} visitor-days, {hashed['visits']:,} visits"
        )
    if report["dropped_events"]:
        lines.append(f"  dropped under overload: {report['dropped_events']:,} events")
    if any(report["shed"].values()):
        shed = ", ".join(f"{kind.replace('_', ' ')} {n:,}" for kind, n in report["shed"].items() if n)
        lines.append(f"  detail shed while the store was down (totals kept): {shed}")
    lines += _section("Page views by hour of day", {f"{h:02d}": n for h, n in enumerate(report["by_hour"])}, width)
    lines += _section("Page views by weekday", report["by_weekday"], width)
    lines += _section("Visits by visit number", frequency["visit_number"], width)
    lines += _section("Days since the previous visit", frequency["days_since_last_visit"], width)
    lines += _section(
        "Visitor-weeks with at least n visits (a visitor counts once per week)",
        frequency["visitor_weeks_with_at_least_n_visits"],
        width,
    )
    lines += _section(
        "Visitor-months with at least n visits (a visitor counts once per month)",
        frequency["visitor_months_with_at_least_n_visits"],
        width,
    )
    for title, key in (("Browsers", "browsers"), ("Operating systems", "os"), ("Devices", "devices")):
        lines += _section(title, dict(list(report[key].items())[:8]), width)
    lines += _section("Top pages", {p["path"]: p["pageviews"] for p in report["pages"][:10]}, width)
    lines += _section("Referrers", {r["host"]: r["entries"] for r in report["referrers"][:10]}, width)
    consent = report["consent"]
    lines += ["", "Consent decisions"]
    lines.append("  " + "   ".join(f"{k.replace('_', ' ')} {n:,}" for k, n in consent["decisions"].items()))
    if consent["accepted"]:
        lines.append("  accepted: " + ", ".join(f"{printable(k)} {n:,}" for k, n in consent["accepted"].items()))
    lines.append(f"  sent with Global Privacy Control: {consent['with_gpc']:,}")
    return "\n".join(lines)


def _section(title: str, values: Mapping[str, int], width: int) -> list[str]:
    lines = ["", title]
    if not values or not any(values.values()):
        return [*lines, "  (none)"]
    # Labels are paths, referrers and browser names visitors sent: control characters are escaped.
    labels = {printable(k): n for k, n in values.items()}
    label_width = max(len(k) for k in labels)
    peak = max(values.values())
    for label, n in labels.items():
        bar = "█" * round(width * n / peak) if peak else ""
        lines.append(f"  {label:<{label_width}} {bar:<{width}} {n:,}")
    return lines
