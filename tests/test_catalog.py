"""Tests for the built-in cookie catalogue (cookie_gate.catalog, scripts/build_catalog.py).

All data comes from tests/data (see tests/data/README.md), so a fresh clone can
run them. The consent-crawler file is a held-out test set: the catalogue build
never reads it.
"""

from __future__ import annotations

import collections
import csv
import functools
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hypothesis import given, settings, strategies as st

from cookie_gate.catalog import NameMatcher, builtin_catalog

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
OCD_CSV = DATA / "open-cookie-database" / "open-cookie-database.csv"
KNOWN_COOKIES = DATA / "cookieblock" / "known_cookies.json"
CRAWL = DATA / "cookieblock-consent-crawler" / "example_crawl_20210213_153228.json"
SHIPPED = REPO / "cookie_gate" / "data" / "catalog.json"

OCD_NAME = "Cookie / Data Key name"
OCD_CATEGORY = {
    "Functional": "necessary",
    "Security": "necessary",
    "Necessary": "necessary",
    "Personalization": "preferences",
    "Analytics": "analytics",
    "Marketing": "marketing",
}
SITE_LABEL = {0: "necessary", 1: "preferences", 2: "analytics", 3: "marketing"}
# What the product does with a name the catalogue does not know.
UNKNOWN_MEANS = "necessary"
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@functools.cache
def ocd_rows() -> tuple[dict[str, str], ...]:
    with OCD_CSV.open(newline="", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))


@functools.cache
def shipped_tables() -> tuple[dict[str, str], dict[str, str]]:
    """The shipped exact and prefix tables, decoded, independently of catalog.py's loader."""
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    codes = data["codes"]
    return (
        {name: codes[code] for name, code in data["exact"].items()},
        {prefix: codes[code] for prefix, code in data["prefixes"].items()},
    )


def reference_category(name: str, exact: Mapping[str, str], prefixes: Mapping[str, str]) -> str | None:
    """The matching rule spelled out naively: exact first, then the longest prefix."""
    if name in exact:
        return exact[name]
    matches = [prefix for prefix in prefixes if name.startswith(prefix)]
    return prefixes[max(matches, key=len)] if matches else None


def crawl_cookies() -> Iterator[tuple[str, str]]:
    """(name, category the site declared) for each of the crawl's first-party cookies (what a gateway sees)."""
    for cookie in build_measure().first_party_cookies():
        yield cookie.name, cookie.label


@functools.cache
def build_measure() -> Any:
    spec = importlib.util.spec_from_file_location("measure_catalog", REPO / "scripts" / "measure_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["measure_catalog"] = module
    spec.loader.exec_module(module)
    return module


@functools.cache
def ocd_alone_tables() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    exact: dict[str, set[str]] = collections.defaultdict(set)
    wildcard: dict[str, set[str]] = collections.defaultdict(set)
    for row in ocd_rows():
        table = wildcard if row["Wildcard match"] == "1" else exact
        table[row[OCD_NAME].strip()].add(OCD_CATEGORY[row["Category"]])
    return exact, wildcard


def ocd_alone_categories(name: str) -> set[str]:
    """Baseline from the data README: the OCD's exact entry, else every OCD wildcard the name starts with."""
    exact, wildcard = ocd_alone_tables()
    if name in exact:
        return exact[name]
    found: set[str] = set()
    for pattern, categories in wildcard.items():
        if name.startswith(pattern):
            found |= categories
    return found


# --- NameMatcher semantics -------------------------------------------------------


def test_exact_name_beats_any_prefix() -> None:
    matcher = NameMatcher({"_ga": "analytics", "_gac_x": "necessary"}, {"_ga": "marketing", "_gac_": "marketing"})
    assert matcher.category("_ga") == "analytics"
    assert matcher.category("_gac_x") == "necessary"


def test_longest_matching_prefix_wins() -> None:
    matcher = NameMatcher({}, {"_ga": "analytics", "_gac_": "marketing", "_gac_gb_": "preferences"})
    assert matcher.category("_gat_UA-1-1") == "analytics"
    assert matcher.category("_gac_UA-1") == "marketing"
    assert matcher.category("_gac_gb_x") == "preferences"
    assert matcher.category("_ga") == "analytics"  # a prefix matches the bare name too


def test_lookup_is_case_sensitive_and_unknown_is_none() -> None:
    matcher = NameMatcher({"SID": "necessary"}, {"AMCV_": "marketing"})
    assert matcher.category("sid") is None
    assert matcher.category("amcv_123") is None
    assert matcher.category("") is None
    assert NameMatcher({}, {}).category("anything") is None


def test_categories_are_opaque_so_site_declared_tables_work() -> None:
    assert NameMatcher({"x": "chat"}, {"y_": "video"}).category("y_1") == "video"


def test_builtin_catalog_is_loaded_once() -> None:
    assert builtin_catalog() is builtin_catalog()


def test_builtin_catalog_matches_the_shipped_tables() -> None:
    exact, prefixes = shipped_tables()
    catalog = builtin_catalog()
    assert set(exact.values()) | set(prefixes.values()) == {"necessary", "preferences", "analytics", "marketing"}
    for name, category in exact.items():
        assert catalog.category(name) == category
    for prefix in prefixes:
        assert catalog.category(prefix) == reference_category(prefix, exact, prefixes)


@settings(max_examples=300, deadline=None)
@given(
    exact=st.dictionaries(st.text("abc_", max_size=4), st.sampled_from("nm"), max_size=6),
    prefixes=st.dictionaries(st.text("abc_", max_size=4), st.sampled_from("pa"), max_size=8),
    name=st.text("abc_", max_size=7),
)
def test_matcher_agrees_with_naive_longest_prefix_rule(
    exact: dict[str, str], prefixes: dict[str, str], name: str
) -> None:
    assert NameMatcher(exact, prefixes).category(name) == reference_category(name, exact, prefixes)


# --- (a) the database itself -------------------------------------------------------


@functools.cache
def vocabulary() -> Any:
    """The build script's own generic-name test, read from the reviewed file it uses."""
    return build_script().load_families(build_script().FAMILIES)[0]


@functools.cache
def build_script() -> Any:
    spec = importlib.util.spec_from_file_location("build_catalog", REPO / "scripts" / "build_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_catalog"] = module
    spec.loader.exec_module(module)
    return module


def used_rows() -> list[dict[str, str]]:
    """Rows the build files names from: first-party rows, and vendor-domain rows with a distinctive name,
    outside the reviewed families (which deliberately re-file what their vendor documents)."""
    reviewed = shipped_why_kinds()
    out = []
    for row in ocd_rows():
        name = row[OCD_NAME].strip()
        if row["Domain"].strip() and not build_script().is_distinctive(
            name, row["Platform"], row["Domain"], vocabulary()
        ):
            continue
        if OCD_CATEGORY[row["Category"]] != "necessary" and vocabulary().is_generic(name):
            continue
        if reviewed.get(name, "").startswith(reviewed_labels()):
            continue
        out.append(row)
    return out


@functools.cache
def shipped_why_kinds() -> dict[str, str]:
    data = json.loads(SHIPPED.read_text(encoding="utf-8"))
    reasons = data["why"]["reasons"]
    return {name: reasons[i] for kind in ("exact", "prefixes") for name, i in data["why"][kind].items()}


@functools.cache
def reviewed_labels() -> tuple[str, ...]:
    """The vendors and frameworks of the reviewed file: their entries re-file rows on purpose."""
    entries = build_script().load_families(build_script().FAMILIES)[1]
    return tuple(f"{entry['label']}: " for entry in entries)


def test_vendor_domain_rows_file_only_distinctive_names() -> None:
    """Django's sessionid is not Instagram's: a vendor's row about its own domain says nothing of it."""
    catalog = builtin_catalog()
    for name in ("sessionid", "token", "uid", "locale", "s", "SID", "auth_token", "c", "u", "d", "n", "g", "cid"):
        assert catalog.category(name) in (None, "necessary"), name
    for name in ("ab", "pid", "uuid", "visitor"):  # generic, and no framework's: left to the heuristic
        assert catalog.category(name) is None, name
    assert catalog.category("_fbp") == "marketing"  # Facebook's script sets it on the site's own domain
    assert catalog.category("_shopify_y") == "analytics"  # the vendor's name is in it
    rows = [r for r in ocd_rows() if r["Domain"].strip() and r["Category"] != "Functional"]
    short = [r for r in rows if len(r[OCD_NAME].strip()) <= 4 and not r[OCD_NAME].startswith("_")]
    assert len(short) > 100
    first_party = {r[OCD_NAME].strip() for r in ocd_rows() if not r["Domain"].strip()}
    filed = [
        r[OCD_NAME]
        for r in short
        if catalog.category(r[OCD_NAME].strip()) not in (None, "necessary")
        and r[OCD_NAME].strip() not in first_party  # a first-party row of the same name votes as usual
        and r["Platform"].lower() not in r[OCD_NAME].lower()  # the vendor's mark: ID5's "id5"
        and not shipped_why_kinds()[r[OCD_NAME].strip()].startswith("CookieBlock")
    ]
    assert filed == [], filed


def test_at_least_99_percent_of_the_rows_the_build_uses_classify_to_their_mapped_category() -> None:
    catalog = builtin_catalog()
    rows = used_rows()
    assert len(rows) > 1500
    misses = [
        (row[OCD_NAME], row["Platform"], row["Category"], catalog.category(row[OCD_NAME].strip()))
        for row in rows
        if catalog.category(row[OCD_NAME].strip()) != OCD_CATEGORY[row["Category"]]
    ]
    share = 1 - len(misses) / len(rows)
    print(f"\nOCD rows classified to their mapped category: {len(rows) - len(misses)}/{len(rows)} = {share:.2%}")
    print(f"misses: {misses}")
    assert share >= 0.99


def test_conflicting_names_resolve_to_the_most_protective_category() -> None:
    resolve = build_script().resolve
    assert resolve(["marketing", "necessary"]) == "marketing"
    assert resolve(["analytics", "preferences", "necessary", "necessary"]) == "necessary"
    assert resolve(["analytics", "marketing"]) == "marketing"
    # "token" had such a tie, but its Marketing row is Adform's own domain: not a vote about a site's "token".
    assert builtin_catalog().category("token") == "necessary"


def test_data_quirks_are_normalised_or_kept_exact() -> None:
    catalog = builtin_catalog()
    assert catalog.category("ce_need_secure_cookie") == "analytics"  # trailing TAB stripped
    assert catalog.category("logglytrackingsession") == "necessary"  # soft hyphen removed
    assert catalog.category("pvc_visits[0]") == "analytics"  # not an RFC 6265 token, but browsers accept it
    assert catalog.category("a0_users:sess") == "necessary"
    assert catalog.category("pvc_visits[1]") is None  # kept exact: no accidental pattern


def test_short_wildcards_need_a_separator() -> None:
    catalog = builtin_catalog()
    assert catalog.category("SR") is None  # Adform's, on adform.net: a vendor-domain row, not distinctive
    assert catalog.category("SR_123") is None
    assert catalog.category("SRCHUSR") is None  # Bing's, not Adform's
    assert catalog.category("CTT") is None
    assert catalog.category("CTK") is None  # Indeed's, on indeed.com: not Adform's "CT" either
    assert catalog.category("captcha") is None
    assert catalog.category("MSO_x") == "necessary"
    assert catalog.category("_session_id") == "necessary"  # not swallowed by Marfeel's "_s"
    assert catalog.category("_shopify_y") == "analytics"  # its own exact entry
    assert catalog.category("P_") == "necessary"
    assert catalog.category("P_x") is None


def test_cookieblock_patterns_add_prefixes_from_their_ocd_family() -> None:
    catalog = builtin_catalog()
    assert catalog.category("_ym_metrika_enabled_26812653") == "analytics"
    assert catalog.category("_pk_id.1.1fff") == "analytics"
    assert catalog.category("Hm_lvt_0123abcd") == "analytics"
    assert catalog.category("_hp2_id.123") == "analytics"
    assert catalog.category("_gat_gtag_UA_12345_1") == "analytics"
    assert catalog.category("_gd1613225583123") is None  # no OCD family, no evidence


# --- (b) agreement with what sites declare -------------------------------------------


def agreement_figures() -> dict[str, tuple[int, int]]:
    catalog = builtin_catalog()
    cookies = list(crawl_cookies())
    ocd = {name: ocd_alone_categories(name) for name in {name for name, _ in cookies}}
    unambiguous = [(name, label) for name, label in cookies if len(ocd[name]) == 1]

    def ocd_alone(name: str) -> str:
        return next(iter(ocd[name])) if len(ocd[name]) == 1 else UNKNOWN_MEANS

    def ours(name: str) -> str:
        return catalog.category(name) or UNKNOWN_MEANS

    return {
        "ocd_unambiguous": (sum(ocd_alone(n) == label for n, label in unambiguous), len(unambiguous)),
        "ours_unambiguous": (sum(ours(n) == label for n, label in unambiguous), len(unambiguous)),
        "ocd_all": (sum(ocd_alone(n) == label for n, label in cookies), len(cookies)),
        "ours_all": (sum(ours(n) == label for n, label in cookies), len(cookies)),
    }


def test_agreement_with_site_declared_categories_beats_the_ocd_alone() -> None:
    figures = agreement_figures()
    print()
    for key, (agree, total) in figures.items():
        print(f"agreement {key}: {agree}/{total} = {agree / total:.2%}")
    assert figures["ocd_all"][1] == 1433  # the first-party cookies of the measurement
    assert figures["ours_unambiguous"][0] > figures["ocd_unambiguous"][0]
    assert figures["ours_all"][0] > figures["ocd_all"][0]


def test_tracking_vendors_plumbing_is_not_filed_as_necessary() -> None:
    catalog = builtin_catalog()
    assert catalog.category("_gaexp") == "analytics"  # Google Optimize's Functional row, a tracker's plumbing
    assert catalog.category("sat_track") == "analytics"
    assert catalog.category("test_cookie") is None  # DoubleClick's, on doubleclick.net: never first-party


def test_cookies_that_store_a_refusal_stay_necessary() -> None:
    assert builtin_catalog().category("GA_OPT_OUT") == "necessary"


# --- (c) analytics and marketing rows ------------------------------------------------


def test_every_google_analytics_analytics_row_comes_out_analytics() -> None:
    catalog = builtin_catalog()
    rows = [r for r in ocd_rows() if r["Platform"] == "Google Analytics" and r["Category"] == "Analytics"]
    assert len(rows) >= 15
    for row in rows:
        name = row[OCD_NAME].strip()
        assert catalog.category(name) == "analytics", name
        if row["Wildcard match"] == "1":
            assert catalog.category(name + "UA-12345-1") == "analytics", name
    for name in ("_ga", "_gid", "_ga_V3H5NHZF8F", "_gat", "_gat_UA-48073707-11", "__utma", "_dc_gtm_UA-1-1"):
        assert catalog.category(name) == "analytics", name


def test_no_marketing_row_the_build_uses_classifies_as_necessary() -> None:
    catalog = builtin_catalog()
    for row in used_rows():
        if row["Category"] != "Marketing":
            continue
        name = row[OCD_NAME].strip()
        assert catalog.category(name) not in (None, "necessary"), name
        if row["Wildcard match"] == "1":
            variant = name + "1" if name[-1] in "_-.:/" else name + "_1"
            assert catalog.category(variant) not in (None, "necessary"), variant


# --- (d) prefixes behave as prefixes ---------------------------------------------------


def expected_for_extension(prefix: str, name: str) -> str:
    """What ``prefix + suffix`` should give: the prefix's category unless a longer rule or exact name overrides."""
    exact, prefixes = shipped_tables()
    overridden = name in exact or any(
        len(other) > len(prefix) and name.startswith(other) for other in prefixes if other != prefix
    )
    category = reference_category(name, exact, prefixes) if overridden else prefixes[prefix]
    assert category is not None
    return category


@settings(max_examples=1000, deadline=None)
@given(prefix=st.sampled_from(sorted(shipped_tables()[1])), suffix=st.text(TOKEN_CHARS, max_size=24))
def test_prefix_plus_random_suffix_classifies_like_the_prefix(prefix: str, suffix: str) -> None:
    name = prefix + suffix
    assert builtin_catalog().category(name) == expected_for_extension(prefix, name)


def test_every_prefix_rule_covers_its_extensions() -> None:
    catalog = builtin_catalog()
    for prefix in shipped_tables()[1]:
        for suffix in ("", "0", "x", "_1", "ABC123def", "-.:"):
            name = prefix + suffix
            assert catalog.category(name) == expected_for_extension(prefix, name), name


# --- (e) must not break login ------------------------------------------------------------


def test_login_and_consent_cookies_are_necessary() -> None:
    """These must never be stripped. All of them are known, so 'necessary' (not just 'unknown')."""
    catalog = builtin_catalog()
    known = json.loads(KNOWN_COOKIES.read_text(encoding="utf-8"))
    names = {"li_at", "JSESSIONID", "CookieConsent", "OptanonConsent", "__cf_bm"}
    names |= {name for name, label in known["name_match"].items() if label == 0}
    assert len(names) == 16
    for name in sorted(names):
        assert catalog.category(name) == "necessary", name


def test_per_site_login_cookies_the_ocd_does_not_know_are_necessary() -> None:
    catalog = builtin_catalog()
    for name in ("li_at", "_session_id", "access_token", "hotcrpsession", "token_v2", "session-id"):
        assert catalog.category(name) == "necessary", name


# --- (f) reproducible build -------------------------------------------------------------


def test_regenerating_from_tests_data_reproduces_the_shipped_catalog(tmp_path: Path) -> None:
    out = tmp_path / "catalog.json"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_catalog.py"), str(DATA), "--output", str(out), "--quiet"],
        check=True,
    )
    assert out.read_bytes() == SHIPPED.read_bytes()
    check = [sys.executable, str(REPO / "scripts" / "build_catalog.py"), str(DATA), "--check", "--quiet"]
    assert subprocess.run(check).returncode == 0
