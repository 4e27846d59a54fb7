"""The cookie declaration for a privacy policy, and the PIPA Art. 30(1)7 disclosure.

One builder (`build_declaration`) turns the configuration and the cookie inventory
into a `Declaration`; the renderers (`to_json`, `to_csv`, `to_markdown`, `to_html`)
only lay that record out, so every format says the same. `cookie-gate cookies
--format` prints it and `GET /_cookie_gate/declaration` serves it.

Only what is known goes in. The gateway knows the attributes of its own two cookies
because it sets them; the inventory records no attributes of other cookies, so they
are left blank rather than guessed. Every name the inventory holds was seen on this
site's own requests or responses, which makes it a first-party cookie; a pattern the
site declared that was never seen is marked so.

Inventory names come from visitors (anyone can send any cookie name), so the builder
writes every character a terminal or a reader could be fooled by as a visible escape
(`terminal.printable`), and each renderer escapes for its own format: HTML with
`html.escape`, Markdown with backslashes, CSV cells that a spreadsheet would read as
a formula with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from html import escape

from cookie_gate.catalog import NameMatcher, builtin_catalog
from cookie_gate.classify import TRUNCATED, UNDECLARED
from cookie_gate.config import Category, Config, localized
from cookie_gate.consent import NECESSARY
from cookie_gate.own_cookies import COUNTER_COOKIE, COUNTER_LIFETIME_MONTHS
from cookie_gate.page_texts import DECLARATION, words
from cookie_gate.terminal import formula_safe, printable

#: An inventory row as `SQLStore.inventory()` returns it: name, category, source, first seen, last seen.
InventoryRow = tuple[str, str, str, str, str]
#: The table's columns, in order; their headings are the locale's `col_<field>` words.
COLUMNS = ("name", "category", "purpose", "lifetime", "party", "attributes", "first_seen", "last_seen")
FORMATS = ("md", "csv", "json", "html")


@dataclass(frozen=True)
class DeclaredCookie:
    """One row of the declaration table; `attributes` is empty when nothing was recorded."""

    name: str
    category: str
    category_label: str
    purpose: str
    lifetime: str
    party: str
    attributes: str
    first_seen: str
    last_seen: str
    #: Who filed it: "gateway", "site", "catalogue", "generic", "unknown" or the heuristic's verdict.
    filed_by: str


@dataclass(frozen=True)
class Purpose:
    """One category as the disclosure explains it."""

    category: str
    label: str
    purpose: str
    cookies: tuple[str, ...]
    retention: str
    refusal: str


@dataclass(frozen=True)
class Declaration:
    locale: str
    title: str
    headings: Mapping[str, str]
    cookies: tuple[DeclaredCookie, ...]
    notes: tuple[str, ...]
    disclosure_title: str
    disclosure_text: str
    purposes_title: str
    purposes: tuple[Purpose, ...]
    refusal_title: str
    refusal: tuple[str, ...]
    #: The visitor's own page, named in `refusal`; the HTML and Markdown make it a link.
    visitor_page: str

    @property
    def words(self) -> Mapping[str, str]:
        return words(DECLARATION, self.locale)


def build_declaration(config: Config, inventory: Iterable[InventoryRow], locale: str) -> Declaration:
    """The declaration of `config`'s categories and the cookies seen, in `locale` (English fills gaps)."""
    w = words(DECLARATION, locale)
    categories = {c.name: c for c in config.categories}
    order = {name: index for index, name in enumerate(config.category_names)}

    def text(field: Mapping[str, str]) -> str:
        return localized(field, locale)

    def label(category: str) -> str:
        if category == UNDECLARED:
            return w["undeclared"]
        known = categories.get(category)
        return text(known.label) if known else printable(category)

    def purpose(category: str) -> str:
        known = categories.get(category)
        return text(known.description) if known else ""

    def lifetime(category: str) -> str:
        known = categories.get(category)
        return (text(known.retention) if known else "") or w["not_declared"]

    rows: list[InventoryRow] = list(inventory)
    seen = {row[0]: row for row in rows if row[0] != TRUNCATED}
    # The attributes the gateway itself sets on its two cookies (endpoints.py, stats/recorder.py).
    always_secure = config.cookie_name.lower().startswith(("__host-", "__secure-"))
    consent_attributes = ["HttpOnly", "SameSite=Lax", "Path=/"]
    if config.cookie_domain:
        consent_attributes.append(f"Domain={config.cookie_domain}")
    consent_attributes.append("Secure" if always_secure else w["secure_on_https"])
    own = {
        config.cookie_name: (
            NECESSARY,
            w["purpose_consent"],
            w["days_or_session"].format(days=config.consent_lifetime_days),
            "; ".join(consent_attributes),
        )
    }
    if config.statistics:
        own[COUNTER_COOKIE] = (
            "analytics",
            w["purpose_counter"],
            w["months_from_first"].format(months=COUNTER_LIFETIME_MONTHS),
            f"HttpOnly; SameSite=Lax; Path=/; {w['secure_on_https']}",
        )
    cookies: list[DeclaredCookie] = []
    for name, (category, why, lasts, attributes) in own.items():
        found = seen.get(name)
        cookies.append(
            DeclaredCookie(
                name=name,
                category=category,
                category_label=label(category),
                purpose=why,
                lifetime=lasts,
                party=w["first_party"],
                attributes=attributes,
                first_seen=found[3] if found else "",
                last_seen=found[4] if found else "",
                filed_by="gateway",
            )
        )
    for name, row in seen.items():
        if name in own:
            continue
        category, source = row[1], row[2]
        cookies.append(
            DeclaredCookie(
                name=printable(name),
                category=printable(category),
                category_label=label(category),
                purpose=purpose(category),
                lifetime=lifetime(category),
                party=w["first_party"],
                attributes="",
                first_seen=printable(row[3]),
                last_seen=printable(row[4]),
                filed_by=printable(source),
            )
        )
    for declared in config.categories:
        for pattern in _unseen_patterns(declared, seen):
            cookies.append(
                DeclaredCookie(
                    name=pattern,
                    category=declared.name,
                    category_label=label(declared.name),
                    purpose=purpose(declared.name),
                    lifetime=lifetime(declared.name),
                    party=w["not_seen"],
                    attributes="",
                    first_seen="",
                    last_seen="",
                    filed_by="site",
                )
            )
    cookies.sort(key=lambda c: (c.filed_by != "gateway", order.get(c.category, len(order)), c.name))
    notes = tuple(w["truncated"].format(reason=printable(row[2])) for row in rows if row[0] == TRUNCATED)[:1]
    page = f"{config.mount_path}/me"
    purposes = tuple(
        Purpose(
            c.name,
            text(c.label),
            text(c.description),
            c.cookies,
            text(c.retention) or w["not_declared"],
            text(c.refusal),
        )
        for c in config.categories
    )
    return Declaration(
        locale=locale,
        title=w["title"],
        headings={column: w[f"col_{column}"] for column in COLUMNS},
        cookies=tuple(cookies),
        notes=notes,
        disclosure_title=w["pipa_title"],
        disclosure_text=w["pipa_what"],
        purposes_title=w["pipa_why"],
        purposes=purposes,
        refusal_title=w["pipa_refuse"],
        refusal=(
            w["pipa_banner"].format(page=page),
            w["pipa_browser"],
            w["pipa_necessary"],
            w["pipa_choice"].format(days=config.consent_lifetime_days),
        ),
        visitor_page=page,
    )


def public_inventory(config: Config, inventory: Iterable[InventoryRow]) -> list[InventoryRow]:
    """`inventory` as a public page may show it: a name verbatim only when an exact rule names it.

    A prefix or suffix rule (`_ga_*`, the catalogue's `AMCV_`, Rails' `*_session`) files
    names whose rest any visitor chose (`_ga_Visit-evil.example`), so every name such a
    rule files is folded into one row named by the pattern, seen from the earliest
    first sighting to the latest last one. The gateway's own names and exact names (the
    site's, the catalogue's) stay as they are; the admin's command shows every name.
    """
    site = _site_matcher(config)
    catalogue = builtin_catalog()
    own = {config.cookie_name, COUNTER_COOKIE}
    folded: dict[str, InventoryRow] = {}
    for row in inventory:
        name, category, source, first, last = row
        shown = name if name in own or name == TRUNCATED else _pattern(site if source == "site" else catalogue, name)
        if shown is None:
            continue  # no rule files it any more: nobody vouches for the name
        earlier = folded.get(shown)
        if earlier is None:
            folded[shown] = (shown, category, source, first, last)
        else:
            folded[shown] = (shown, earlier[1], earlier[2], min(earlier[3], first), max(earlier[4], last))
    return list(folded.values())


def _site_matcher(config: Config) -> NameMatcher:
    exact: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for category in config.categories:
        exact.update(dict.fromkeys(category.exact_names, category.name))
        prefixes.update(dict.fromkeys(category.prefixes, category.name))
    return NameMatcher(exact, prefixes)


def _pattern(matcher: NameMatcher, name: str) -> str | None:
    """`name` if an exact rule of `matcher` names it, its pattern (`_ga_*`, `*_session`) if a partial one does."""
    rule = matcher.rule(name)
    if rule is None:
        return None
    kind, pattern = rule
    return name if kind == "exact" else pattern + "*" if kind == "prefixes" else "*" + pattern


def _unseen_patterns(category: Category, seen: Mapping[str, InventoryRow]) -> list[str]:
    """The category's declared patterns that no cookie seen matches: declared, but not seen yet.

    One pass over the names, probing each once per distinct prefix length, so a full
    inventory against many patterns stays a few thousand set look-ups.
    """
    exact = set(category.exact_names)
    prefixes = set(category.prefixes)
    lengths = sorted({len(p) for p in prefixes})
    matched: set[str] = set()
    for name in seen:
        if name in exact:
            matched.add(name)
        matched.update(name[:n] + "*" for n in lengths if name[:n] in prefixes)
    return [pattern for pattern in category.cookies if pattern not in matched]


def cell(cookie: DeclaredCookie, column: str) -> str:
    """What a table shows in `column`: the category's label rather than its key."""
    return cookie.category_label if column == "category" else str(getattr(cookie, column))


def render(declaration: Declaration, form: str) -> str:
    """`declaration` in one of `FORMATS`."""
    return {"md": to_markdown, "csv": to_csv, "json": to_json, "html": to_html}[form](declaration)


# -- JSON ----------------------------------------------------------------------------------


def as_data(declaration: Declaration) -> dict[str, object]:
    return {
        "locale": declaration.locale,
        "title": declaration.title,
        "columns": dict(declaration.headings),
        "cookies": [asdict(c) for c in declaration.cookies],
        "notes": list(declaration.notes),
        "disclosure": {
            "title": declaration.disclosure_title,
            "text": declaration.disclosure_text,
            "purposes_title": declaration.purposes_title,
            "purposes": [{**asdict(p), "cookies": list(p.cookies)} for p in declaration.purposes],
            "refusal_title": declaration.refusal_title,
            "refusal": list(declaration.refusal),
            "visitor_page": declaration.visitor_page,
        },
    }


def to_json(declaration: Declaration, *, compact: bool = False) -> str:
    """Indented for a person (the CLI), or `compact` for the wire."""
    if compact:
        return json.dumps(as_data(declaration), ensure_ascii=False, separators=(",", ":"))
    return json.dumps(as_data(declaration), ensure_ascii=False, indent=2)


# -- CSV -----------------------------------------------------------------------------------


def to_csv(declaration: Declaration) -> str:
    """The table only: a spreadsheet has no room for the disclosure's paragraphs (see the other formats)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([declaration.headings[c] for c in COLUMNS])
    for cookie in declaration.cookies:
        writer.writerow([formula_safe(cell(cookie, c)) for c in COLUMNS])
    return out.getvalue()


# -- Markdown ------------------------------------------------------------------------------

#: What could start markup inside a line of the site's own text.
_MARKDOWN_MARKUP = re.compile(r"([\\`*_{}\[\]<>()#|~&!])")
#: Every ASCII punctuation character (CommonMark lets each be escaped): for names visitors chose,
#: so that not even an autolink (`www.x.example`, `http:`) can be made of one.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def markdown_text(text: str, *, visitor: bool = False) -> str:
    """`text` on one line with markup characters backslash-escaped; all punctuation for a visitor's text."""
    pattern = _MARKDOWN_PUNCTUATION if visitor else _MARKDOWN_MARKUP
    return pattern.sub(r"\\\1", " ".join(text.split()))


def to_markdown(declaration: Declaration) -> str:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [f"## {markdown_text(declaration.title)}", ""]
    lines.append(row([markdown_text(declaration.headings[c]) for c in COLUMNS]))
    lines.append("|" + "---|" * len(COLUMNS))
    lines += [
        row([markdown_text(cell(cookie, c), visitor=c in _VISITOR_COLUMNS) for c in COLUMNS])
        for cookie in declaration.cookies
    ]
    lines.append("")
    lines += [markdown_text(note) + "\n" for note in declaration.notes]
    lines += [f"### {markdown_text(declaration.disclosure_title)}", "", markdown_text(declaration.disclosure_text), ""]
    lines += [f"#### {markdown_text(declaration.purposes_title)}", ""]
    lines += [f"- {_markdown_purpose(p, declaration.words)}" for p in declaration.purposes]
    lines += ["", f"#### {markdown_text(declaration.refusal_title)}", ""]
    page = markdown_text(declaration.visitor_page)
    lines += [
        f"- {markdown_text(item).replace(page, f'[{page}]({declaration.visitor_page})')}"
        for item in declaration.refusal
    ]
    return "\n".join(lines) + "\n"


#: Columns whose text can come from a visitor (the inventory's names and days).
_VISITOR_COLUMNS = frozenset({"name", "first_seen", "last_seen"})


def _markdown_purpose(purpose: Purpose, w: Mapping[str, str]) -> str:
    parts = [f"**{markdown_text(purpose.label)}**: {markdown_text(purpose.purpose)}"]
    if purpose.cookies:
        parts.append(f"{markdown_text(w['cookies'])}: {markdown_text(', '.join(purpose.cookies))}.")
    parts.append(f"{markdown_text(w['col_lifetime'])}: {markdown_text(purpose.retention)}.")
    if purpose.refusal:
        parts.append(markdown_text(purpose.refusal))
    return " ".join(parts)


# -- HTML ----------------------------------------------------------------------------------


def to_html(declaration: Declaration) -> str:
    """A fragment to embed in a privacy page: one `<section>`, headings from `<h2>` down, no style or script."""
    w = declaration.words
    head = "".join(f'<th scope="col">{escape(declaration.headings[c])}</th>' for c in COLUMNS)
    body = "".join(
        f'<tr><th scope="row"><code>{escape(cookie.name)}</code></th>'
        + "".join(f"<td>{escape(cell(cookie, c))}</td>" for c in COLUMNS[1:])
        + "</tr>"
        for cookie in declaration.cookies
    )
    notes = "".join(f"<p>{escape(note)}</p>" for note in declaration.notes)
    purposes = "".join(
        f"<li><strong>{escape(p.label)}</strong>: {escape(p.purpose)}"
        + (f" {escape(w['cookies'])}: {escape(', '.join(p.cookies))}." if p.cookies else "")
        + f" {escape(w['col_lifetime'])}: {escape(p.retention)}."
        + (f" {escape(p.refusal)}" if p.refusal else "")
        + "</li>"
        for p in declaration.purposes
    )
    page = escape(declaration.visitor_page)
    link = f'<a href="{escape(declaration.visitor_page, quote=True)}">{page}</a>'
    refusal = "".join(f"<li>{escape(item).replace(page, link, 1)}</li>" for item in declaration.refusal)
    return (
        f'<section class="cookie-gate-declaration" lang="{escape(declaration.locale, quote=True)}">'
        f"<h2>{escape(declaration.title)}</h2>"
        f'<div class="cookie-gate-declaration__table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>{notes}"
        f"<h3>{escape(declaration.disclosure_title)}</h3><p>{escape(declaration.disclosure_text)}</p>"
        f"<h4>{escape(declaration.purposes_title)}</h4><ul>{purposes}</ul>"
        f"<h4>{escape(declaration.refusal_title)}</h4><ul>{refusal}</ul></section>"
    )
