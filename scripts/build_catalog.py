#!/usr/bin/env python3
"""Regenerate ``cookie_gate/data/catalog.json``, the built-in cookie-name catalogue.

Usage::

    python scripts/build_catalog.py [DATA_DIR] [--output PATH] [--check]

``DATA_DIR`` defaults to ``../shared/data`` relative to the repository root and
must contain::

    open-cookie-database/open-cookie-database.csv   (Apache-2.0)
    cookieblock/known_cookies.json                  (MIT)
    cookieblock/cookie_name_patterns.txt            (MIT)

``tests/data`` holds copies of the same files, so a fresh clone can rebuild the
catalogue (and the test suite checks that doing so is byte-identical).

The output maps a cookie name to one of four consent categories, through an
``exact`` table, a ``prefixes`` table (longest prefix wins at lookup time) and a
``suffixes`` table (Rails' ``_<app>_session``; used only when nothing else matches).
A ``why`` table gives every rule's source (the data set and platform, or the vendor's
or framework's documentation URL) and the reason a source row was *not* used, for
``cookie-gate cookies NAME``.
Categories are stored as one-letter codes (``codes`` says which) to keep the
shipped file small. Every rule below is deterministic and the JSON is written
with sorted keys, so regenerating from the same inputs gives the same bytes.

How the tables are built, in order (later steps never silently undo earlier
ones except where stated):

0. **What a row may say.** Two rules keep rows from filing what they do not describe:

   * *Vendor-domain rows.* An OCD row whose ``Domain`` is the vendor's own
     (``instagram.com``, ``adform.net (3rd party)``) describes a cookie that never
     passes through a first-party gateway. Its name is used only if it is
     *distinctive*: it carries the vendor's mark (a word of the platform's name or its
     domain's label: ``_shopify_y``, ``intercom-id-``, ``id5``), starts with an
     underscore (``_fbp``, ``_gcl_au``: scripts set those on the site's own domain), or
     is at least six characters with structure (digits, separators or capitals:
     ``UserMatchHistory``). Short names (``c``, ``uid``, ``SID``) and plain words
     (``presence``, ``sessionid``) say nothing about a site's cookie of that name.
   * *Generic names.* A name of two characters or fewer, or one made only of the
     generic words listed in ``catalog_families.toml`` (``auth_token``, ``sessionid``,
     ``visitor_id``), never gets a tracking category from a data set alone: an app
     calls its own cookies that.

1. **Open Cookie Database (OCD)**, the primary source. Category mapping per the
   OCD README: Functional, Security, Necessary -> necessary; Personalization ->
   preferences; Analytics -> analytics; Marketing -> marketing.

   * Names are normalised: surrounding whitespace is stripped (one name has a
     trailing TAB) and invisible Unicode format characters (category ``Cf``; one
     name contains a soft hyphen) are removed, because they are data-entry
     artefacts that no browser would ever send back.
   * Names that are not RFC 6265 *tokens* but that a user agent still accepts
     (RFC 6265 section 5.2 only forbids CTLs, ``;`` and ``=``; e.g.
     ``pvc_visits[0]``, ``a0_users:sess``) are kept verbatim: sites really set
     them, and a literal match can only ever hit that exact name. Anything that
     could not be a cookie name at all is skipped (none in the current snapshot).
   * ``Wildcard match = 1`` rows are prefixes. A prefix is used *bare* only if it
     is anchored: at least 4 characters long, or 3 characters ending in a
     separator (``_ - . : /``). Shorter ones (``SR``, ``CT``, ``tp``, ``_s``,
     ``P_``) and 3-character ones without a separator (``MSO``, ``NPA``, ``cap``,
     ``_lv``, ``_ut``) demonstrably over-match (``SR`` would catch Bing's
     ``SRCHUSR``, ``_s`` every ``_shopify_*`` and ``_session_id``), so they become
     an exact name plus a prefix of name + ``"_"`` (just the exact name when it
     already ends in a separator, e.g. ``P_``).
   * **Tracking vendors' "Functional" rows.** The exemption from consent covers
     only what the site needs to give the visitor the service they asked for;
     cookies a third party uses to run its advertising or analytics are not
     exempt (Article 29 Working Party, Opinion 04/2012 on Cookie Consent
     Exemption, sections 3 and 4). So when at least 85% of a platform's OCD rows
     are Analytics or Marketing and it has no Security or Necessary rows, its
     few Functional rows are plumbing of that tracking (DoubleClick's
     ``test_cookie`` checks whether ad cookies can be set; Facebook's ``wd``
     sizes its widgets) and take the platform's majority tracking category.
     Platforms with a real service of their own (Hotjar's surveys, YouTube's
     player, Microsoft's sign-in) stay below the threshold and keep the OCD's
     word, and so does any cookie that records a consent or opt-out choice
     (``GA_OPT_OUT`` must survive the refusal it stores). This deliberately
     departs from the OCD mapping on 14 rows; the tests keep the departure
     under 1%.
   * Conflicts (the same name with different categories, e.g. ``token``,
     ``chk``, ``dc``, ``euconsent``): majority vote over the rows naming it; a
     tie goes to the *most protective* category (marketing > analytics >
     preferences > necessary). Rationale: when the database itself cannot say
     the cookie is harmless, asking for consent is the defensible default; an
     app whose own cookie shares such a generic name can override it. A wildcard
     row whose name is also an exact name votes on that exact name too, since
     its pattern matches the bare name.

2. **CookieBlock name patterns** (``cookie_name_patterns.txt``): each regex's
   leading literal text becomes a candidate prefix (a quantifier that allows
   zero occurrences takes its character back off). It is added only if it adds
   coverage (no existing prefix already covers it), is anchored by the rule
   above, and its *family* in the OCD agrees on one category. The family is
   every OCD name that starts with the candidate, plus the OCD name equal to the
   candidate without its trailing separators (``_ym_metrika_enabled_`` ->
   ``_ym_metrika_enabled``). No family, or a split family, means no evidence, so
   no rule: CookieBlock's patterns carry no labels of their own.

3. **CookieBlock ``known_cookies.json`` domain lists** (``domain_match`` and
   ``domain_regex``): these are per-site labels, so they only fill gaps. A name
   is added when nothing from steps 1-2 classifies it and every site that lists
   it gives the same label (0 necessary, 1 preferences, 2 analytics,
   3 marketing).

4. **CookieBlock ``name_match``**: CookieBlock's global, hand-curated overrides
   (consent-manager and Cloudflare cookies that must never be blocked). They win
   over the data sets, as they do in CookieBlock itself.

5. **Reviewed families and frameworks** (``scripts/catalog_families.toml``): tracker
   families the database files as Functional or does not know (Hotjar, AddThis,
   Tealium, Dynatrace, Criteo, Permutive, Shopify's analytics), and the session,
   CSRF, auth, cart and locale cookies of frameworks and platforms (Django, Rails,
   Laravel, Express, PHP, Java, ASP.NET, WordPress, WooCommerce, Shopify, NextAuth,
   Keycloak, Starlette/Flask/Quart/Litestar) plus the generic names apps use for
   themselves, all necessary. Each entry cites its vendor's or framework's
   documentation, and wins over every data set; a family's prefix re-files the names
   under it, except cookies that record a consent or opt-out choice.

The crawl in ``cookieblock-consent-crawler/`` is deliberately *not* read here:
it is the test set that the catalogue is evaluated against.
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import json
import re
import sys
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUTPUT = REPO_ROOT / "cookie_gate" / "data" / "catalog.json"

OCD_CSV = Path("open-cookie-database") / "open-cookie-database.csv"
KNOWN_COOKIES = Path("cookieblock") / "known_cookies.json"
NAME_PATTERNS = Path("cookieblock") / "cookie_name_patterns.txt"
#: Reviewed vendor families, framework names and the generic vocabulary (lives in the repo, not DATA_DIR).
FAMILIES = REPO_ROOT / "scripts" / "catalog_families.toml"

# Provenance of the inputs (SOURCES.md). The snapshot commit is only claimed when
# the input file's git blob id matches the one recorded for that snapshot.
SOURCES: dict[Path, tuple[str, str, str, str]] = {
    # local path: (repo, upstream path, snapshot commit, blob id)
    OCD_CSV: (
        "jkwakman/Open-Cookie-Database",
        "open-cookie-database.csv",
        "0ee5a17fe1cb002943f89370d24fc26a4226061c",
        "b44506a7c47cc70a809379e4a926b43c11831577",
    ),
    KNOWN_COOKIES: (
        "dibollinger/CookieBlock",
        "src/ext_data/known_cookies.json",
        "cb3091a75ff75c6287e663f61de65ada0bf1b9aa",
        "26409216f3738a836ce6ff34cbe06ad9cabcaeeb",
    ),
    NAME_PATTERNS: (
        "dibollinger/CookieBlock",
        "src/ext_data/resources/cookie_name_patterns.txt",
        "cb3091a75ff75c6287e663f61de65ada0bf1b9aa",
        "5d1c905af417e3a57afe1dd5ea9bc5cc2191ed80",
    ),
}
LICENSE_NOTE = (
    "Open Cookie Database data: Apache-2.0; CookieBlock data: MIT. "
    "See cookie_gate/data/NOTICE.md and the LICENSE-* files next to this one."
)

NECESSARY, PREFERENCES, ANALYTICS, MARKETING = "necessary", "preferences", "analytics", "marketing"
CATEGORIES = (NECESSARY, PREFERENCES, ANALYTICS, MARKETING)
# Position in this tuple is the protectiveness rank used to break ties.
PROTECTIVENESS = {category: rank for rank, category in enumerate(CATEGORIES)}
CODES = {NECESSARY: "n", PREFERENCES: "p", ANALYTICS: "a", MARKETING: "m"}

OCD_CATEGORY = {
    "Functional": NECESSARY,
    "Security": NECESSARY,
    "Necessary": NECESSARY,
    "Personalization": PREFERENCES,
    "Analytics": ANALYTICS,
    "Marketing": MARKETING,
}
COOKIEBLOCK_LABEL = {0: NECESSARY, 1: PREFERENCES, 2: ANALYTICS, 3: MARKETING}

OCD_NAME = "Cookie / Data Key name"
SEPARATORS = "_-.:/"
# RFC 6265 section 5.2: a user agent takes everything before the first "=" as the
# name; it must not contain CTLs or ";" (the attribute delimiter).
_POSSIBLE_NAME = re.compile(r"[\x20-\x3a\x3c\x3e-\x7e]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REGEX_META = frozenset(".[](){}*+?|^$\\")


def normalise_name(raw: str) -> str | None:
    """Return the name a browser would actually send, or None if it cannot be a cookie name."""
    name = "".join(ch for ch in raw.strip() if unicodedata.category(ch) != "Cf")
    if not _POSSIBLE_NAME.fullmatch(name) or name != name.strip():
        return None
    return name


def is_anchored(prefix: str) -> bool:
    """True if ``prefix`` is specific enough to match every name that starts with it."""
    return len(prefix) >= 4 or (len(prefix) == 3 and prefix[-1] in SEPARATORS)


def resolve(votes: Iterable[str]) -> str:
    """Majority category; ties go to the most protective (least necessary) one."""
    counts = collections.Counter(votes)
    return max(counts, key=lambda category: (counts[category], PROTECTIVENESS[category]))


def longest_prefix(name: str, prefixes: Mapping[str, str]) -> str | None:
    """The longest key of ``prefixes`` that ``name`` starts with (build-time helper, not the runtime matcher)."""
    best: str | None = None
    for prefix in prefixes:
        if name.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def regex_literal_prefix(regex: str) -> str | None:
    """The literal text at the start of an anchored regex (``^_ga_[0-9A-F]+`` -> ``_ga_``)."""
    if not regex.startswith("^"):
        return None
    literal: list[str] = []
    i = 1
    while i < len(regex):
        ch = regex[i]
        if ch == "\\" and i + 1 < len(regex) and not regex[i + 1].isalnum():
            literal.append(regex[i + 1])
            i += 2
            continue
        if ch in _REGEX_META:
            break
        literal.append(ch)
        i += 1
    rest = regex[i:]
    if literal and (rest.startswith(("*", "?", "{0,", "{,")) or rest == "{0}"):
        literal.pop()  # the quantifier makes the last character optional
    if rest.startswith("|") or "|" in rest.split("(", 1)[0]:
        return None  # a top-level alternation: the literal is not a prefix of every match
    return "".join(literal) or None


@dataclass
class Stats:
    """Counts printed by the script so a reviewer can see what each rule did."""

    rows: int = 0
    normalised: list[str] = field(default_factory=list)
    non_token: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    short_prefixes: list[str] = field(default_factory=list)
    pattern_prefixes: dict[str, str] = field(default_factory=dict)
    domain_names: dict[str, str] = field(default_factory=dict)
    name_match_overrides: dict[str, str] = field(default_factory=dict)
    vendor_rows: dict[str, str] = field(default_factory=dict)
    vendor_domain_dropped: list[str] = field(default_factory=list)
    generic_dropped: list[str] = field(default_factory=list)
    family_entries: dict[str, str] = field(default_factory=dict)


@dataclass
class Tables:
    """The catalogue being built: three rule tables, and why each rule (or ignored row) is there."""

    exact: dict[str, str] = field(default_factory=dict)
    prefixes: dict[str, str] = field(default_factory=dict)
    suffixes: dict[str, str] = field(default_factory=dict)
    why: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"exact": {}, "prefixes": {}, "suffixes": {}, "ignored": {}}
    )


TRACKING_VENDOR_SHARE = 0.85
# A cookie that stores a refusal must survive the refusal, whoever sets it.
_RECORDS_A_CHOICE = re.compile(r"consent|opt_?out|optout", re.IGNORECASE)
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])")


@dataclass(frozen=True)
class Vocabulary:
    """What makes a cookie name generic: words apps use for their own cookies (catalog_families.toml)."""

    words: frozenset[str]

    def segments(self, token: str) -> bool:
        """Whether ``token`` is digits, a word, or a run of words of two letters or more (``sessionid``)."""
        if token.isdigit() or token in self.words:
            return True
        reachable = [True] + [False] * len(token)
        for end in range(2, len(token) + 1):
            reachable[end] = any(
                reachable[start] and token[start:end] in self.words for start in range(max(0, end - 16), end - 1)
            )
        return reachable[-1]

    def is_generic(self, name: str) -> bool:
        """A name of two characters or fewer, or one made only of generic words (``auth_token``, ``SID``)."""
        if len(name) <= 2:
            return True
        tokens = [token.lower() for token in _WORD_SPLIT.split(name) if token]
        return bool(tokens) and all(self.segments(token) for token in tokens)


def vendor_tokens(platform: str, domain: str) -> set[str]:
    """Words that mark a name as the vendor's own: its platform's words and its domain's label."""
    tokens = {word.lower() for word in re.split(r"[^A-Za-z0-9]+", platform) if len(word) >= 3}
    for host in re.findall(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", domain):
        labels = host.lower().strip(".").split(".")
        if len(labels) >= 2 and len(labels[-2]) >= 3:
            tokens.add(labels[-2])
    return tokens


def is_distinctive(name: str, platform: str, domain: str, vocabulary: Vocabulary) -> bool:
    """Whether a name from a row about a vendor's own domain can only be that vendor's cookie.

    Such rows describe cookies on the vendor's domain, which never pass through a
    first-party gateway; they are worth keeping only for names the vendor's script
    sets on the site's own domain, and those carry a mark: the vendor's name
    (``_shopify_y``, ``intercom-id-``), a leading underscore (``_fbp``, ``_gcl_au``),
    or a long name with structure (digits, separators or capitals: ``UserMatchHistory``).
    A short or plain word (``c``, ``uid``, ``presence``, ``sessionid``) says nothing.
    """
    if vocabulary.is_generic(name):
        return False
    lowered = name.lower()
    if any(token in lowered for token in vendor_tokens(platform, domain)):
        return True
    if name.startswith("_") and len(name) >= 3:
        return True
    return len(name) >= 6 and (not name.isalpha() or name != lowered)


def tracking_vendors(rows: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Platforms whose OCD rows are overwhelmingly trackers -> their majority tracking category."""
    by_platform: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for row in rows:
        by_platform[row["Platform"]][row["Category"]] += 1
    vendors: dict[str, str] = {}
    for platform, counts in by_platform.items():
        tracking = counts["Analytics"] + counts["Marketing"]
        if counts["Security"] or counts["Necessary"] or not counts["Functional"]:
            continue
        if tracking >= TRACKING_VENDOR_SHARE * sum(counts.values()):
            vendors[platform] = MARKETING if counts["Marketing"] >= counts["Analytics"] else ANALYTICS
    return vendors


def ocd_reason(votes: list[tuple[str, str]], category: str) -> str:
    """Attribution of an OCD-derived rule: the platforms whose rows voted for the winning category."""
    platforms = sorted({platform for voted, platform in votes if voted == category})
    shown = ", ".join(platforms[:3]) + (f" and {len(platforms) - 3} more" if len(platforms) > 3 else "")
    return f"Open Cookie Database row ({shown}: {category})"


def load_ocd(path: Path, vocabulary: Vocabulary, tables: Tables, stats: Stats) -> None:
    """Exact and prefix tables from the Open Cookie Database CSV (step 1)."""
    exact_votes: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    prefix_votes: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    vendors = tracking_vendors(rows)
    for row in rows:
        stats.rows += 1
        raw = row[OCD_NAME]
        platform, domain = row["Platform"], row["Domain"].strip()
        category = OCD_CATEGORY[row["Category"]]
        if row["Category"] == "Functional" and platform in vendors and not _RECORDS_A_CHOICE.search(raw):
            category = vendors[platform]
            stats.vendor_rows[raw.strip()] = category
        name = normalise_name(raw)
        if name is None:
            stats.skipped.append(raw)
            continue
        if name != raw:
            stats.normalised.append(raw)
        if not _TOKEN.fullmatch(name):
            stats.non_token.append(name)
        if domain and not is_distinctive(name, platform, domain, vocabulary):
            stats.vendor_domain_dropped.append(name)
            tables.why["ignored"].setdefault(
                name, f"Open Cookie Database row about a vendor's own domain ({platform}, {domain}): not distinctive"
            )
            continue
        if category != NECESSARY and vocabulary.is_generic(name):
            stats.generic_dropped.append(name)
            tables.why["ignored"].setdefault(name, f"Open Cookie Database row ({platform}: {category}): generic name")
            continue
        vote = (category, platform)
        if row["Wildcard match"].strip() != "1":
            exact_votes[name].append(vote)
        elif is_anchored(name):
            prefix_votes[name].append(vote)
        else:
            stats.short_prefixes.append(name)
            exact_votes[name].append(vote)
            if name[-1] not in SEPARATORS:
                prefix_votes[name + "_"].append(vote)
    for prefix, votes in prefix_votes.items():
        if prefix in exact_votes:  # the pattern also matches the bare name
            exact_votes[prefix].extend(votes)
    for table, why, votes_by_name in (
        (tables.exact, tables.why["exact"], exact_votes),
        (tables.prefixes, tables.why["prefixes"], prefix_votes),
    ):
        for name, votes in votes_by_name.items():
            table[name] = resolve(category for category, _ in votes)
            why[name] = ocd_reason(votes, table[name])
            if len({category for category, _ in votes}) > 1:
                stats.conflicts[name] = table[name]
    for name in tables.exact:
        tables.why["ignored"].pop(name, None)


def add_pattern_prefixes(path: Path, tables: Tables, stats: Stats) -> None:
    """Turn CookieBlock's name regexes into prefixes, categorised by their OCD family (step 2)."""
    ocd = {**tables.prefixes, **tables.exact}  # a name is in at most one family; categories are already resolved
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        regex = line.split(",", 3)[3]
        candidate = regex_literal_prefix(regex)
        if candidate is None or not is_anchored(candidate) or longest_prefix(candidate, tables.prefixes) is not None:
            continue
        stem = candidate.rstrip(SEPARATORS)
        family = {category for name, category in ocd.items() if name.startswith(candidate) or name == stem}
        if len(family) == 1:
            tables.prefixes[candidate] = stats.pattern_prefixes[candidate] = family.pop()
            tables.why["prefixes"][candidate] = (
                f"CookieBlock name pattern {regex} (its Open Cookie Database family: {tables.prefixes[candidate]})"
            )


def add_known_cookies(path: Path, vocabulary: Vocabulary, tables: Tables, stats: Stats) -> None:
    """Fill gaps from CookieBlock's per-site lists (step 3), then apply its global overrides (step 4)."""
    known = json.loads(path.read_text(encoding="utf-8"))
    labels: dict[str, set[int]] = collections.defaultdict(set)
    for section in ("domain_match", "domain_regex"):
        for names in known[section].values():
            for raw, label in names.items():
                name = normalise_name(raw)
                if name is not None:
                    labels[name].add(int(label))
    for name in sorted(labels):
        if len(labels[name]) != 1 or name in tables.exact or longest_prefix(name, tables.prefixes) is not None:
            continue
        category = COOKIEBLOCK_LABEL[labels[name].pop()]
        if category != NECESSARY and vocabulary.is_generic(name):
            stats.generic_dropped.append(name)
            tables.why["ignored"].setdefault(name, f"CookieBlock per-site list ({category}): generic name")
            continue
        tables.exact[name] = stats.domain_names[name] = category
        tables.why["exact"][name] = f"CookieBlock known_cookies per-site list ({category})"
    for raw, label in known["name_match"].items():
        name = normalise_name(raw)
        if name is None:
            continue
        category = COOKIEBLOCK_LABEL[int(label)]
        if tables.exact.get(name) != category:
            stats.name_match_overrides[name] = category
        tables.exact[name] = category
        tables.why["exact"][name] = f"CookieBlock known_cookies name_match, a global override ({category})"


def load_families(path: Path) -> tuple[Vocabulary, list[dict[str, object]]]:
    """The reviewed file: the generic vocabulary, and families and frameworks as (category, patterns, reason)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    vocabulary = Vocabulary(frozenset(data["generic"]["words"]))
    entries: list[dict[str, object]] = []
    for family in data.get("family", []):
        entries.append({**family, "label": family["vendor"]})
    for framework in data.get("framework", []):
        entries.append({**framework, "category": NECESSARY, "label": framework["name"]})
    for entry in entries:
        if entry["category"] not in CATEGORIES or not entry.get("source") or not entry.get("cookies"):
            raise ValueError(f"{path.name}: {entry['label']!r} needs a known category, a source URL and cookies")
    return vocabulary, entries


def add_families(entries: list[dict[str, object]], tables: Tables, stats: Stats) -> None:
    """Apply the reviewed families and framework names (step 5): they win over every data set.

    A family's prefix re-files the exact names and longer prefixes under it too, so the
    vendor's documentation decides for the whole family, except a cookie that records
    a consent or opt-out choice, which stays necessary.
    """
    for entry in entries:
        category, reason = str(entry["category"]), f"{entry['label']}: {entry['source']}"
        patterns = entry["cookies"]
        assert isinstance(patterns, list)
        for pattern in patterns:
            if pattern.endswith("*"):
                prefix = pattern[:-1]
                if len(prefix) < 3:
                    raise ValueError(f"{FAMILIES.name}: prefix {pattern!r} is too short to be safe")
                for table, kind in ((tables.exact, "exact"), (tables.prefixes, "prefixes")):
                    for name in [n for n in table if n.startswith(prefix) and not _RECORDS_A_CHOICE.search(n)]:
                        table[name] = category
                        tables.why[kind][name] = reason
                table, kind, key = tables.prefixes, "prefixes", prefix
            elif pattern.startswith("*"):
                table, kind, key = tables.suffixes, "suffixes", pattern[1:]
            else:
                table, kind, key = tables.exact, "exact", pattern
            if key in stats.family_entries and table.get(key) == category:
                continue  # an earlier reviewed entry already files it the same way; keep its attribution
            table[key] = stats.family_entries[key] = category
            tables.why[kind][key] = reason
            tables.why["ignored"].pop(key, None)


def git_blob_id(path: Path) -> str:
    """The id ``git hash-object`` gives, to tie an input file to its upstream snapshot."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def describe_sources(data_dir: Path) -> dict[str, dict[str, str]]:
    """Provenance block for the output; claims a commit only for a byte-identical input."""
    out: dict[str, dict[str, str]] = {}
    for local, (repo, upstream, commit, blob) in SOURCES.items():
        actual = git_blob_id(data_dir / local)
        out[local.as_posix()] = {
            "repo": repo,
            "path": upstream,
            "commit": commit if actual == blob else "unknown (blob differs from the recorded snapshot)",
            "blob": actual,
        }
    out["scripts/catalog_families.toml"] = {"repo": "this repository", "blob": git_blob_id(FAMILIES)}
    return out


def encode_why(tables: Tables) -> dict[str, object]:
    """Reasons stored once, each rule pointing at its reason by index (sorted, so the bytes are stable)."""
    reasons = sorted({reason for why in tables.why.values() for reason in why.values()})
    index = {reason: i for i, reason in enumerate(reasons)}
    out: dict[str, object] = {"reasons": reasons}
    for kind, why in tables.why.items():
        out[kind] = {name: index[why[name]] for name in sorted(why)}
    return out


def build(data_dir: Path, stats: Stats | None = None, families: Path = FAMILIES) -> dict[str, object]:
    """The catalogue as a JSON-ready dict (categories already encoded as one-letter codes)."""
    stats = stats if stats is not None else Stats()
    vocabulary, entries = load_families(families)
    tables = Tables()
    load_ocd(data_dir / OCD_CSV, vocabulary, tables, stats)
    add_pattern_prefixes(data_dir / NAME_PATTERNS, tables, stats)
    add_known_cookies(data_dir / KNOWN_COOKIES, vocabulary, tables, stats)
    add_families(entries, tables, stats)
    for kind, table in (("exact", tables.exact), ("prefixes", tables.prefixes), ("suffixes", tables.suffixes)):
        assert set(tables.why[kind]) == set(table), kind
    return {
        "source": describe_sources(data_dir),
        "license": LICENSE_NOTE,
        "generated_by": "scripts/build_catalog.py",
        "codes": {code: category for category, code in CODES.items()},
        "exact": {name: CODES[tables.exact[name]] for name in sorted(tables.exact)},
        "prefixes": {prefix: CODES[tables.prefixes[prefix]] for prefix in sorted(tables.prefixes)},
        "suffixes": {suffix: CODES[tables.suffixes[suffix]] for suffix in sorted(tables.suffixes)},
        "why": encode_why(tables),
    }


def render(catalog: Mapping[str, object]) -> bytes:
    """Compact, key-sorted, ASCII-only JSON with a final newline: stable across runs and platforms."""
    text = json.dumps(catalog, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return (text + "\n").encode("ascii")


def report(stats: Stats, catalog: Mapping[str, object], size: int) -> str:
    """Human-readable summary of what each rule did."""
    exact = catalog["exact"]
    prefixes = catalog["prefixes"]
    suffixes = catalog["suffixes"]
    assert isinstance(exact, dict) and isinstance(prefixes, dict) and isinstance(suffixes, dict)
    lines = [
        f"OCD rows: {stats.rows}; normalised: {stats.normalised!r}; skipped: {stats.skipped!r}",
        f"kept verbatim although not RFC 6265 tokens: {sorted(stats.non_token)!r}",
        f"tracking vendors' Functional rows re-filed: {dict(sorted(stats.vendor_rows.items()))!r}",
        f"vendor-domain rows not used (name not distinctive): {len(stats.vendor_domain_dropped)}",
        f"tracker rows not used (generic name): {sorted(set(stats.generic_dropped))!r}",
        f"conflicts (majority, tie -> most protective): {dict(sorted(stats.conflicts.items()))!r}",
        f"short wildcards made exact (+ '_' prefix): {sorted(stats.short_prefixes)!r}",
        f"prefixes from CookieBlock patterns: {dict(sorted(stats.pattern_prefixes.items()))!r}",
        f"names from CookieBlock domain lists: {len(stats.domain_names)}",
        f"CookieBlock name_match entries that added or changed a name: {stats.name_match_overrides!r}",
        f"reviewed families and frameworks: {len(stats.family_entries)} patterns",
        f"exact: {len(exact)}, prefixes: {len(prefixes)}, suffixes: {len(suffixes)}, size: {size} bytes",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; ``--check`` exits 1 if the output file is stale."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing it")
    parser.add_argument("--quiet", action="store_true", help="do not print the summary")
    args = parser.parse_args(argv)

    stats = Stats()
    catalog = build(args.data_dir, stats)
    data = render(catalog)
    if not args.quiet:
        print(report(stats, catalog, len(data)), file=sys.stderr)
    if args.check:
        current = args.output.read_bytes() if args.output.exists() else b""
        if current != data:
            print(f"{args.output} is out of date; rerun scripts/build_catalog.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
