#!/usr/bin/env python3
"""How often the gateway's filing breaks a site or lets a tracker through, on real sites' declarations.

Usage::

    python scripts/measure_catalog.py [--json] [--check] [--write]

The yardstick is the CookieBlock consent crawl in ``tests/data`` (MIT; see
``tests/data/README.md``): cookies of 212 sites with the category each site's own
consent banner declares. Only first-party cookies count (the cookie's registrable
domain is the site's): third-party cookies never pass through a first-party gateway.
The catalogue build never reads this file; it is only measured against.

Two truths are measured. **raw**: each site's own label. **consensus**: for each name,
the label most sites declare for it (one vote per site and label; a site's own label
wins a tie it is part of; a tie it is not part of goes to the most protective of the
tied labels), because sites' own labels are noisy.

- **breakage**: declared necessary, filed otherwise (the gateway removes it from an
  undecided visitor's requests: the site breaks);
- **leak**: declared analytics or marketing, filed necessary (a tracker without consent).

Each ``unknown_cookies`` mode is measured with the real ``CookieClassifier``, one per
site (a gateway only knows what it has seen), fed what a gateway in front of that site
would see: every cookie arrives in requests with its value; a cookie the crawl
records as ``HttpOnly`` was necessarily set by the server, so the app is seen setting
it, with its lifetime; any other cookie may have been set by a script and counts as
seen only in requests (the pessimistic reading for the heuristic's "who sets it").

``--check`` compares with ``scripts/catalog_figures.json`` and exits 1 when a rate got
worse (the CI ratchet, run by ``tests/test_catalog_measure.py``); ``--write`` records
today's figures there.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from cookie_gate.classify import CookieClassifier  # noqa: E402
from cookie_gate.config import load_config  # noqa: E402

CRAWL = REPO_ROOT / "tests" / "data" / "cookieblock-consent-crawler" / "example_crawl_20210213_153228.json"
FIGURES = REPO_ROOT / "scripts" / "catalog_figures.json"
LABELS = {0: "necessary", 1: "preferences", 2: "analytics", 3: "marketing"}
PROTECTIVENESS = {"necessary": 0, "preferences": 1, "analytics": 2, "marketing": 3}
TRACKERS = ("analytics", "marketing")
MODES = ("allow", "suspect")
#: A crawl timestamp for turning the crawl's absolute expiries into lifetimes (the crawl's own day).
CRAWL_TIME = 1613225583


@dataclass(frozen=True, slots=True)
class CrawlCookie:
    name: str
    site: str
    label: str
    value: str
    http_only: bool
    #: Seconds from the crawl to the cookie's expiry; None for a session cookie.
    lifetime: int | None


def first_party_cookies(path: Path = CRAWL) -> list[CrawlCookie]:
    """The crawl's cookies whose registrable domain is the site's, in the file's order."""
    suffixes = PublicSuffixList()
    out: list[CrawlCookie] = []
    for entry in json.loads(path.read_text(encoding="utf-8")).values():
        host = urlsplit(entry["first_party_domain"]).hostname or ""
        site = suffixes.privatesuffix(host) or host
        domain = entry["domain"].lstrip(".")
        if (suffixes.privatesuffix(domain) or domain) != site:
            continue
        first = entry["variable_data"][0]
        lifetime = None if first["session"] else max(0, int(first["expiry"]))
        out.append(
            CrawlCookie(entry["name"], site, LABELS[entry["label"]], first["value"], bool(first["http_only"]), lifetime)
        )
    return out


def consensus_labels(cookies: list[CrawlCookie]) -> list[str]:
    """Each cookie's consensus label (see the module docstring)."""
    votes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for name, _site, label in sorted({(c.name, c.site, c.label) for c in cookies}):
        votes[name][label] += 1
    out = []
    for cookie in cookies:
        counts = votes[cookie.name]
        top = max(counts.values())
        tied = [label for label, n in counts.items() if n == top]
        out.append(cookie.label if cookie.label in tied else max(tied, key=PROTECTIVENESS.__getitem__))
    return out


def filed(cookies: list[CrawlCookie], mode: str) -> Iterator[str]:
    """What the gateway files each cookie as, one gateway per site, in the crawl's order."""
    config = load_config(None, environ={}, secret_key="measurement-only-secret", unknown_cookies=mode, statistics=False)
    classifiers: dict[str, CookieClassifier] = {}
    for cookie in cookies:
        classifier = classifiers.get(cookie.site)
        if classifier is None:
            classifier = classifiers[cookie.site] = CookieClassifier(config)
        if cookie.http_only:
            max_age = b"" if cookie.lifetime is None else b"; Max-Age=%d" % cookie.lifetime
            header = cookie.name.encode("latin-1", "replace") + b"=" + cookie.value.encode("latin-1", "replace")
            classifier.was_set(cookie.name, header + max_age + b"; HttpOnly", CRAWL_TIME)
        classifier.sent(cookie.name, cookie.value)
        category = classifier.category(cookie.name)
        yield "necessary" if category == "undeclared" else category


@dataclass(frozen=True, slots=True)
class Rates:
    broken: int
    necessary: int
    leaked: int
    trackers: int

    @property
    def breakage(self) -> float:
        return self.broken / self.necessary

    @property
    def leak(self) -> float:
        return self.leaked / self.trackers


def rates(truth: list[str], got: list[str]) -> Rates:
    broken = sum(t == "necessary" and g != "necessary" for t, g in zip(truth, got, strict=True))
    leaked = sum(t in TRACKERS and g == "necessary" for t, g in zip(truth, got, strict=True))
    return Rates(broken, truth.count("necessary"), leaked, sum(t in TRACKERS for t in truth))


def measure() -> dict[str, dict[str, dict[str, object]]]:
    """{mode: {truth: {"breakage", "leak", counts..., "matrix"}}} for every mode and both truths."""
    cookies = first_party_cookies()
    truths = {"raw": [c.label for c in cookies], "consensus": consensus_labels(cookies)}
    out: dict[str, dict[str, dict[str, object]]] = {}
    for mode in MODES:
        got = list(filed(cookies, mode))
        out[mode] = {}
        for name, truth in truths.items():
            r = rates(truth, got)
            matrix = collections.Counter(zip(truth, got, strict=True))
            out[mode][name] = {
                "breakage": round(r.breakage, 4),
                "leak": round(r.leak, 4),
                "broken": r.broken,
                "necessary": r.necessary,
                "leaked": r.leaked,
                "trackers": r.trackers,
                "matrix": {f"{t} -> {g}": n for (t, g), n in sorted(matrix.items())},
            }
    return out


def format_figures(figures: dict[str, dict[str, dict[str, object]]]) -> str:
    lines = []
    for mode, truths in figures.items():
        for truth, f in truths.items():
            lines.append(
                f"unknown_cookies={mode:<8} truth={truth:<10} breakage {f['broken']}/{f['necessary']}"
                f" = {f['breakage']:.1%}   leak {f['leaked']}/{f['trackers']} = {f['leak']:.1%}"
            )
            matrix = f["matrix"]
            assert isinstance(matrix, dict)
            categories = list(PROTECTIVENESS)
            lines.append("    declared \\ filed  " + "".join(f"{c:>12}" for c in categories))
            for t in categories:
                row = "".join(f"{matrix.get(f'{t} -> {g}', 0):>12}" for g in categories)
                lines.append(f"    {t:<17}" + row)
    return "\n".join(lines)


def regressions(now: dict[str, dict[str, dict[str, object]]], committed: dict[str, object]) -> list[str]:
    """Every rate that is worse than the committed figure."""
    out = []
    for mode, truths in now.items():
        for truth, figures in truths.items():
            for rate in ("breakage", "leak"):
                before = committed.get(mode, {}).get(truth, {}).get(rate)  # type: ignore[attr-defined]
                if before is not None and float(figures[rate]) > float(before):  # type: ignore[arg-type]
                    out.append(f"{mode}/{truth} {rate}: {figures[rate]} > committed {before}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--check", action="store_true", help=f"fail when a rate is worse than {FIGURES.name}")
    parser.add_argument("--write", action="store_true", help=f"record the figures in {FIGURES.name}")
    args = parser.parse_args(argv)
    figures = measure()
    print(json.dumps(figures, indent=2) if args.json else format_figures(figures))
    if args.write:
        slim = {m: {t: {k: f[k] for k in ("breakage", "leak")} for t, f in ts.items()} for m, ts in figures.items()}
        FIGURES.write_text(json.dumps(slim, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.check:
        worse = regressions(figures, json.loads(FIGURES.read_text(encoding="utf-8")))
        for line in worse:
            print(f"worse than committed: {line}", file=sys.stderr)
        return 1 if worse else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
