"""The dashboard as one server-rendered page: totals with deltas, charts, tables, cookies, health.

Laid out like Plausible's and GoatCounter's one-page dashboards: the period and its
selector on top, the totals compared with the previous period, the series over time,
then the breakdowns. It is a plain document: no script, a GET form for the period, one
stylesheet allowed by its hash, and a grid that folds to one column on a phone.
Everything a visitor controls is escaped twice over: control characters as visible
escapes (`printable`), then HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from cookie_gate.asgi import style_csp
from cookie_gate.classify import TRUNCATED
from cookie_gate.dashboard.charts import NARROW, Series, columns, heatmap
from cookie_gate.dashboard.exports import SUSPECTED, InventoryRow, opt_in_categories, sorted_inventory
from cookie_gate.dashboard.query import PRESETS, DashboardQuery
from cookie_gate.dashboard.texts import LOCALES, TEXTS
from cookie_gate.stats.report import ACTIONS, COMPARED, WEEKDAYS
from cookie_gate.terminal import printable

STYLE = (
    ":root{color-scheme:light dark;--fg:#1a1a1a;--muted:#555;--line:#d8d8d8;--bg:#fff;--card:#f6f7f9;"
    "--s0:#2f5fbf;--s1:#d0642a;--s2:#2d8a57;--s3:#8a4fb5;--up:#1d6b3f;--down:#a3332b}"
    "@media (prefers-color-scheme:dark){:root{--fg:#eee;--muted:#b4b4b4;--line:#3a3d44;--bg:#16181c;--card:#1f2227;"
    "--s0:#7aa5ff;--s1:#f29a63;--s2:#62c78e;--s3:#c89cf0;--up:#7fd6a3;--down:#ff9b92}}"
    "*{box-sizing:border-box}body{font:15px/1.45 system-ui,'Apple SD Gothic Neo','Malgun Gothic','Noto Sans KR',"
    "sans-serif;margin:0 auto;max-width:72rem;"
    "padding:1rem;color:var(--fg);background:var(--bg)}a{color:var(--s0)}"
    "h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.05rem;margin:0 0 .6rem}"
    "header p{margin:.3rem 0;color:var(--muted)}nav{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:end;"
    "margin:.8rem 0}nav form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}"
    "label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted)}"
    "input,button{font:inherit;padding:.25rem .4rem}"
    ".totals{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.6rem;margin:1rem 0;"
    "padding:0;list-style:none}.totals li{background:var(--card);padding:.6rem .8rem;border-radius:.4rem}"
    ".totals b{display:block;font-size:1.6rem}.totals span{display:block;font-size:.85rem;color:var(--muted)}"
    ".up{color:var(--up)}.down{color:var(--down)}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,22rem),1fr));gap:1rem}"
    "section{background:var(--card);padding:.8rem;border-radius:.4rem;min-width:0}section.wide{grid-column:1/-1}"
    "table{border-collapse:collapse;width:100%}td,th{padding:.2rem .4rem;text-align:start;vertical-align:top;"
    "border-bottom:1px solid var(--line);overflow-wrap:anywhere}td.n,th.n{text-align:end;white-space:nowrap}"
    "meter{width:100%;height:.8rem}td.m{width:35%}"
    "svg.chart{width:100%;height:auto;display:block}svg .axis{font-size:11px;fill:var(--muted)}"
    "svg line.grid{stroke:var(--line)}svg .line{fill:none;stroke-width:2}"
    "svg .s0{fill:var(--s0);stroke:var(--s0)}svg .s1{fill:var(--s1);stroke:var(--s1)}"
    "svg .s2{fill:var(--s2);stroke:var(--s2)}svg .s3{fill:var(--s3);stroke:var(--s3)}"
    "svg .line.s0,svg .line.s1,svg .line.s2,svg .line.s3{fill:none}"
    ".h0{fill:var(--line)}.h1{fill:var(--s0);opacity:.25}.h2{fill:var(--s0);opacity:.45}"
    ".h3{fill:var(--s0);opacity:.65}.h4{fill:var(--s0);opacity:.85}.h5{fill:var(--s0)}"
    ".legend{list-style:none;padding:0;margin:.4rem 0 0;display:flex;flex-wrap:wrap;gap:.3rem 1rem;font-size:.85rem}"
    ".key{display:inline-block;width:.8rem;height:.8rem;margin-inline-end:.3rem;vertical-align:-.1rem}"
    ".key.s0{background:var(--s0)}.key.s1{background:var(--s1)}.key.s2{background:var(--s2)}"
    ".key.s3{background:var(--s3)}"
    ".export{font-size:.85rem;margin:.4rem 0 0;color:var(--muted)}.note{font-size:.85rem;color:var(--muted)}"
    "@media (max-width:40rem){table.stack thead{display:none}table.stack tr{display:block;padding:.3rem 0;"
    "border-bottom:1px solid var(--line)}table.stack td,table.stack th{display:inline-block;border:0;"
    "padding:.1rem .4rem}}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dd{margin:0;overflow-wrap:anywhere}"
)
CSP = style_csp(STYLE, "frame-ancestors 'none'; form-action 'self'")


@dataclass(frozen=True)
class DashboardView:
    """Everything one rendering of the page needs; `category_labels` maps a category to its label."""

    report: Mapping[str, Any]
    inventory: Sequence[InventoryRow]
    health: Mapping[str, Any]
    query: DashboardQuery
    locale: str
    category_labels: Mapping[str, str]
    #: The nonce of an outer CSP (the app's), put on the style element so that policy allows it too.
    nonce: str | None = None


def _v(value: object) -> str:
    """A value a visitor may control, safe inside HTML text or a quoted attribute."""
    return escape(printable(str(value)))


class _Page:
    def __init__(self, view: DashboardView) -> None:
        self.view = view
        self.t = TEXTS[view.locale]
        self.report = view.report

    def export(self, *tables: str) -> str:
        """Download links of the tables a section shows, each as CSV and JSON, with this view's period."""
        link = self.view.query.link()
        lines = []
        for name in tables:
            links = " · ".join(
                f'<a href="admin/export/{name}.{kind}{link}">{kind.upper()}</a>' for kind in ("csv", "json")
            )
            title = f"{escape(self.t[name])}: " if len(tables) > 1 else ""
            lines.append(f"{title}{links}")
        return f'<p class="export">{escape(self.t["export"])}: {"<br>".join(lines)}</p>'

    def render(self) -> str:
        t, view = self.t, self.view
        nonce = f' nonce="{escape(view.nonce)}"' if view.nonce else ""
        body = "".join(
            (
                self.header(),
                '<main><p class="note">',
                escape(t["consent_note"]),
                "</p>",
                self.totals(),
                '<div class="grid">',
                self.per_day(),
                self.heat(),
                self.consent(),
                self.opt_in(),
                self.frequency(),
                self.ranked("pages", t["page"], {p["path"]: p["pageviews"] for p in self.report["pages"]}),
                self.ranked("referrers", t["referrer"], {r["host"]: r["entries"] for r in self.report["referrers"]}),
                self.ranked("browsers", t["browser"], self.report["browsers"]),
                self.ranked("os", t["system"], self.report["os"]),
                self.ranked("devices", t["device"], self.report["devices"]),
                self.cookies(),
                self.health(),
                "</div></main>",
            )
        )
        return (
            f'<!doctype html><html lang="{view.locale}"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{escape(t["title"])}</title>'
            f"<style{nonce}>{STYLE}</style></head><body>{body}</body></html>"
        )

    def header(self) -> str:
        t, query, period = self.t, self.view.query, self.report["period"]
        other = next(locale for locale in LOCALES if locale != self.view.locale)
        text = t["range"].format(
            first=period["from"], last=period["to"], days=period["days"], timezone=period["timezone"]
        )
        previous = self.report.get("previous", {}).get("period")
        compared = (
            f"<p>{escape(t['compared'].format(first=previous['from'], last=previous['to']))}</p>" if previous else ""
        )
        lang_field = f'<input type="hidden" name="lang" value="{query.lang}">' if query.lang else ""
        presets = "".join(
            f'<a href="{query.link(days=days)}">{escape(t["last_days"].format(days=days))}</a>' for days in PRESETS
        )
        return (
            f"<header><h1>{escape(t['title'])}</h1><p>{_v(text)}</p>{compared}"
            f'<nav aria-label="{escape(t["period"])}"><form method="get" action="">'
            f'<label>{escape(t["from"])}<input type="date" name="from" value="{period["from"]}" required></label>'
            f'<label>{escape(t["to"])}<input type="date" name="to" value="{period["to"]}" required></label>'
            f"{lang_field}<button>{escape(t['show'])}</button></form>{presets}"
            f'<a href="admin/stats.json{query.link()}">{escape(t["all_json"])}</a>'
            f'<a href="{query.link(lang=other)}" lang="{other}" hreflang="{other}">{escape(t["language"])}</a>'
            "</nav></header>"
        )

    def totals(self) -> str:
        report, t = self.report, self.t
        previous = report.get("previous", {})
        current = {key: report[key] for key in COMPARED} | {"decisions": sum(report["consent"]["decisions"].values())}
        items = []
        for key, now in current.items():
            delta = ""
            if previous:
                before = previous[key]
                diff = now - before
                relative = f" ({diff / before:+.0%})" if before else ""
                css = "up" if diff > 0 else "down" if diff < 0 else ""
                delta = (
                    f'<span class="{css}">{diff:+,}{relative} · {escape(t["previous"])} {before:,}</span>'
                    if before or diff
                    else f"<span>{escape(t['previous'])} 0</span>"
                )
            items.append(f"<li><b>{now:,}</b><span>{escape(t[key])}</span>{delta}</li>")
        return f'<ul class="totals">{"".join(items)}</ul>'

    def per_day(self) -> str:
        t, daily = self.t, self.report["daily"]
        labels = [d["day"][5:] for d in daily]
        views = [d["pageviews"] for d in daily]
        summary = t["chart_per_day"].format(
            first=self.report["period"]["from"], last=self.report["period"]["to"], total=f"{sum(views):,}",
            peak=f"{max(views, default=0):,}",
        )  # fmt: skip
        chart = columns(
            labels,
            [Series(t["pageviews"], views, 0)],
            [Series(t["visits"], [d["visits"] for d in daily], 1)],
            summary=summary,
        )
        return f'<section class="wide"><h2>{escape(t["per_day"])}</h2>{chart}{self.export("daily")}</section>'

    def heat(self) -> str:
        t, values = self.t, self.report["by_weekday_hour"]
        names = [t[w] for w in WEEKDAYS]
        rows = [values[w] for w in WEEKDAYS]
        peak, weekday, hour = max(
            ((n, w, h) for w, row in enumerate(rows) for h, n in enumerate(row)), default=(0, 0, 0)
        )
        summary = t["chart_heatmap"].format(weekday=names[weekday], hour=f"{hour:02d}", peak=f"{peak:,}")
        return (
            f'<section class="wide"><h2>{escape(t["heatmap"])}</h2>{heatmap(names, rows, summary=summary)}'
            f'<p class="note">{escape(t["heatmap_note"])}</p>'
            f"{self.export('by_weekday_hour', 'by_hour', 'by_weekday')}</section>"
        )

    def consent(self) -> str:
        t, consent = self.t, self.report["consent"]
        days = consent["by_day"]
        bars = [Series(t[action], [d[action] for d in days], i) for i, action in enumerate(ACTIONS)]
        total = sum(consent["decisions"].values())
        summary = t["chart_bars"].format(
            title=t["consent_per_day"], summary=", ".join(f"{t[a]} {consent['decisions'][a]:,}" for a in ACTIONS)
        )
        chart = columns([d["day"][5:] for d in days], bars, summary=summary) if total else f"<p>{escape(t['none'])}</p>"
        gpc = escape(t["with_gpc"].format(n=f"{consent['with_gpc']:,}"))
        return (
            f'<section class="wide"><h2>{escape(t["consent_per_day"])}</h2>{chart}<p class="note">{gpc}</p>'
            f"{self.export('consent_daily')}</section>"
        )

    def categories(self) -> list[str]:
        return opt_in_categories(self.report, self.view.category_labels)

    def opt_in(self) -> str:
        t, consent = self.t, self.report["consent"]
        previous = self.report.get("previous", {}).get("opt_in_rate", {})
        names = self.categories()
        labels = {c: self.view.category_labels.get(c, c) for c in names}
        rows = "".join(
            f'<tr><th scope="row">{_v(labels[c])}</th><td class="n">{consent["accepted"].get(c, 0):,}</td>'
            f'<td class="n">{consent["opt_in_rate"].get(c, 0.0):.1%}</td>'
            f'<td class="n">{previous.get(c, 0.0):.1%}</td></tr>'
            for c in names
        )
        head = (
            f'<tr><th scope="col">{escape(t["category"])}</th><th scope="col" class="n">{escape(t["count"])}</th>'
            f'<th scope="col" class="n">{escape(t["rate"])}</th>'
            f'<th scope="col" class="n">{escape(t["previous"])}</th></tr>'
        )
        days = consent["by_day"]
        lines = [Series(labels[c], [d["opt_in_rate"].get(c, 0.0) for d in days], i) for i, c in enumerate(names[:4])]
        chart = ""
        if sum(consent["decisions"].values()) and lines:
            summary = t["chart_rates"].format(categories=", ".join(labels[c] for c in names[:4]))
            chart = f"<h3>{escape(t['opt_in_per_day'])}</h3>" + columns(
                [d["day"][5:] for d in days], [], lines, summary=summary, percent=True, width=NARROW
            )
        return (
            f"<section><h2>{escape(t['opt_in'])}</h2><table>{head}{rows}</table>"
            f'<p class="note">{escape(t["opt_in_note"])}</p>{chart}{self.export("opt_in")}</section>'
        )

    def frequency(self) -> str:
        t, frequency = self.t, self.report["visit_frequency"]
        charts = []
        for key, name in (
            ("visit_number", "visit_number"),
            ("days_since_last_visit", "days_since_last_visit"),
            ("visitor_weeks_with_at_least_n_visits", "visitor_weeks"),
            ("visitor_months_with_at_least_n_visits", "visitor_months"),
        ):
            values = frequency[key]
            summary = t["chart_bars"].format(
                title=t[name], summary=", ".join(f"{label}: {n:,}" for label, n in values.items()) or t["none"]
            )
            chart = columns(list(values), [Series(t[name], list(values.values()))], summary=summary, width=NARROW)
            charts.append(f"<h3>{escape(t[name])}</h3>{chart}{self.export(name)}")
        return f"<section><h2>{escape(t['frequency'])}</h2>{''.join(charts)}</section>"

    def ranked(self, name: str, column: str, values: Mapping[str, int]) -> str:
        t = self.t
        peak = max(max(values.values(), default=0), 1)
        # <meter> draws the bar without a style attribute, which the page's CSP would block.
        rows = "".join(
            f'<tr><th scope="row">{_v(label)}</th><td class="m"><meter min="0" max="{peak}" value="{n}">{n:,}'
            f'</meter></td><td class="n">{n:,}</td></tr>'
            for label, n in values.items()
        )
        count = escape(t["count"])
        head = f'<tr><th scope="col">{escape(column)}</th><td></td><th scope="col" class="n">{count}</th></tr>'
        table = f"<table>{head}{rows}</table>" if rows else f"<p>{escape(t['none'])}</p>"
        return f"<section><h2>{escape(t[name])}</h2>{table}{self.export(name)}</section>"

    def cookies(self) -> str:
        t, inventory = self.t, self.view.inventory
        truncated = [row for row in inventory if row[0] == TRUNCATED]
        rows = sorted_inventory(inventory)
        lines = "".join(
            f'<tr><th scope="row">{_v(name)}</th><td>{_v(category)}</td>'
            f"<td>{'<strong>' if source.startswith(SUSPECTED) else ''}{_v(source)}"
            f"{'</strong>' if source.startswith(SUSPECTED) else ''}</td>"
            f'<td class="n">{_v(first)}</td><td class="n">{_v(last)}</td></tr>'
            for name, category, source, first, last in rows
        )
        note = f"<p>{escape(t['truncated'].format(reason=printable(truncated[0][2])))}</p>" if truncated else ""
        example = '<code>[categories.necessary] cookies = ["name"]</code>'
        head = "".join(
            f'<th scope="col"{" class=n" if key in ("first_seen", "last_seen") else ""}>{escape(t[key])}</th>'
            for key in ("cookie", "category", "filed_by", "first_seen", "last_seen")
        )
        table = (
            f'<table class="stack"><thead><tr>{head}</tr></thead>{lines}</table>'
            if lines
            else f"<p>{escape(t['none'])}</p>"
        )
        return (
            f'<section class="wide"><h2>{escape(t["cookies"].format(n=len(rows)))}</h2>{note}'
            f'<p class="note">{escape(t["cookies_note"]).format(example=example)}</p>{table}'
            f"{self.export('cookies')}</section>"
        )

    def health(self) -> str:
        t, health, report = self.t, self.view.health, self.report
        state = (
            escape(t["store_ok"])
            if health["store_reachable"]
            else f"<strong>{_v(t['store_down'].format(problem=health['store_problem']))}</strong>"
        )
        facts = [
            (t["schema"], f"{health['schema_version']} / {health['schema_version_expected']}"),
        ]
        if health["statistics"]:
            facts += [
                (t["last_flush"], health["last_flush"] or t["never"]),
                (t["queue_depth"], f"{health['queue_depth']:,}"),
                (t["held_counters"], f"{health['held_counters']:,}"),
                (t["dropped_events"], f"{health['dropped_events']:,}"),
            ]
            if health["last_flush_error"]:
                facts.append((t["last_flush_error"], health["last_flush_error"]))
            shed = ", ".join(f"{kind.replace('_', ' ')} {n:,}" for kind, n in health["shed"].items() if n)
            if shed:
                facts.append((t["shed"], shed))
        # What this period's counts miss: page views dropped under overload, detail shed while the store was down.
        losses = {"page views dropped": report["dropped_events"]}
        losses.update({f"{kind.replace('_', ' ')} shed": n for kind, n in report["shed"].items()})
        lost = ", ".join(f"{label} {n:,}" for label, n in losses.items() if n)
        if lost:
            facts.append((t["losses"], lost))
        listed = "".join(f"<dt>{_v(name)}</dt><dd>{_v(value)}</dd>" for name, value in facts)
        off = "" if health["statistics"] else f"<p>{escape(t['statistics_off'])}</p>"
        return f"<section><h2>{escape(t['health'])}</h2><p>{state}</p>{off}<dl>{listed}</dl></section>"


def render(view: DashboardView) -> str:
    return _Page(view).render()
