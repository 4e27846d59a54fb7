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
``exact`` table and a ``prefixes`` table (longest prefix wins at lookup time).
Categories are stored as one-letter codes (``codes`` says which) to keep the
shipped file small. Every rule below is deterministic and the JSON is written
with sorted keys, so regenerating from the same inputs gives the same bytes.

How the tables are built, in order (later steps never silently undo earlier
ones except where stated):

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
   over everything else, as they do in CookieBlock itself.

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


TRACKING_VENDOR_SHARE = 0.85
# A cookie that stores a refusal must survive the refusal, whoever sets it.
_RECORDS_A_CHOICE = re.compile(r"consent|opt_?out|optout", re.IGNORECASE)


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


def load_ocd(path: Path, stats: Stats) -> tuple[dict[str, str], dict[str, str]]:
    """Exact and prefix tables from the Open Cookie Database CSV (step 1)."""
    exact_votes: dict[str, list[str]] = collections.defaultdict(list)
    prefix_votes: dict[str, list[str]] = collections.defaultdict(list)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    vendors = tracking_vendors(rows)
    for row in rows:
        stats.rows += 1
        raw = row[OCD_NAME]
        category = OCD_CATEGORY[row["Category"]]
        if row["Category"] == "Functional" and row["Platform"] in vendors and not _RECORDS_A_CHOICE.search(raw):
            category = vendors[row["Platform"]]
            stats.vendor_rows[raw.strip()] = category
        name = normalise_name(raw)
        if name is None:
            stats.skipped.append(raw)
            continue
        if name != raw:
            stats.normalised.append(raw)
        if not _TOKEN.fullmatch(name):
            stats.non_token.append(name)
        if row["Wildcard match"].strip() != "1":
            exact_votes[name].append(category)
        elif is_anchored(name):
            prefix_votes[name].append(category)
        else:
            stats.short_prefixes.append(name)
            exact_votes[name].append(category)
            if name[-1] not in SEPARATORS:
                prefix_votes[name + "_"].append(category)
    for prefix, votes in prefix_votes.items():
        if prefix in exact_votes:  # the pattern also matches the bare name
            exact_votes[prefix].extend(votes)
    exact = {name: resolve(votes) for name, votes in exact_votes.items()}
    prefixes = {prefix: resolve(votes) for prefix, votes in prefix_votes.items()}
    for table, votes_by_name in ((exact, exact_votes), (prefixes, prefix_votes)):
        for name, votes in votes_by_name.items():
            if len(set(votes)) > 1:
                stats.conflicts[name] = table[name]
    return exact, prefixes


def add_pattern_prefixes(path: Path, exact: dict[str, str], prefixes: dict[str, str], stats: Stats) -> None:
    """Turn CookieBlock's name regexes into prefixes, categorised by their OCD family (step 2)."""
    ocd = {**prefixes, **exact}  # a name is in at most one family; categories are already resolved
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        candidate = regex_literal_prefix(line.split(",", 3)[3])
        if candidate is None or not is_anchored(candidate) or longest_prefix(candidate, prefixes) is not None:
            continue
        stem = candidate.rstrip(SEPARATORS)
        family = {category for name, category in ocd.items() if name.startswith(candidate) or name == stem}
        if len(family) == 1:
            prefixes[candidate] = stats.pattern_prefixes[candidate] = family.pop()


def add_known_cookies(path: Path, exact: dict[str, str], prefixes: dict[str, str], stats: Stats) -> None:
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
        if len(labels[name]) == 1 and name not in exact and longest_prefix(name, prefixes) is None:
            exact[name] = stats.domain_names[name] = COOKIEBLOCK_LABEL[labels[name].pop()]
    for raw, label in known["name_match"].items():
        name = normalise_name(raw)
        if name is None:
            continue
        category = COOKIEBLOCK_LABEL[int(label)]
        if exact.get(name) != category:
            stats.name_match_overrides[name] = category
        exact[name] = category


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
    return out


def build(data_dir: Path, stats: Stats | None = None) -> dict[str, object]:
    """The catalogue as a JSON-ready dict (categories already encoded as one-letter codes)."""
    stats = stats if stats is not None else Stats()
    exact, prefixes = load_ocd(data_dir / OCD_CSV, stats)
    add_pattern_prefixes(data_dir / NAME_PATTERNS, exact, prefixes, stats)
    add_known_cookies(data_dir / KNOWN_COOKIES, exact, prefixes, stats)
    return {
        "source": describe_sources(data_dir),
        "license": LICENSE_NOTE,
        "generated_by": "scripts/build_catalog.py",
        "codes": {code: category for category, code in CODES.items()},
        "exact": {name: CODES[exact[name]] for name in sorted(exact)},
        "prefixes": {prefix: CODES[prefixes[prefix]] for prefix in sorted(prefixes)},
    }


def render(catalog: Mapping[str, object]) -> bytes:
    """Compact, key-sorted, ASCII-only JSON with a final newline: stable across runs and platforms."""
    text = json.dumps(catalog, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return (text + "\n").encode("ascii")


def report(stats: Stats, catalog: Mapping[str, object], size: int) -> str:
    """Human-readable summary of what each rule did."""
    exact = catalog["exact"]
    prefixes = catalog["prefixes"]
    assert isinstance(exact, dict) and isinstance(prefixes, dict)
    lines = [
        f"OCD rows: {stats.rows}; normalised: {stats.normalised!r}; skipped: {stats.skipped!r}",
        f"kept verbatim although not RFC 6265 tokens: {sorted(stats.non_token)!r}",
        f"tracking vendors' Functional rows re-filed: {dict(sorted(stats.vendor_rows.items()))!r}",
        f"conflicts (majority, tie -> most protective): {dict(sorted(stats.conflicts.items()))!r}",
        f"short wildcards made exact (+ '_' prefix): {sorted(stats.short_prefixes)!r}",
        f"prefixes from CookieBlock patterns: {dict(sorted(stats.pattern_prefixes.items()))!r}",
        f"names from CookieBlock domain lists: {len(stats.domain_names)}",
        f"CookieBlock name_match entries that added or changed a name: {stats.name_match_overrides!r}",
        f"exact: {len(exact)}, prefixes: {len(prefixes)}, size: {size} bytes",
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
