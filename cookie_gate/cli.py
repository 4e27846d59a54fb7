"""`cookie-gate` (also `python -m cookie_gate`): the admin's command line.

`check-config` validates settings exactly as the middleware will at start-up and opens
the store, writing and removing a probe, so a deploy can fail before it serves a single
request; `migrate` applies the store's schema versions; `cookies` shows how cookie names
are filed, from the admin's patterns or the built-in catalogue; `stats` is the
report and `purge` applies retention now.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from cookie_gate.classify import CookieClassifier
from cookie_gate.clock import Clock
from cookie_gate.config import DEFAULT_STORE, Config, ConfigError, load_config
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.recorder import Statistics
from cookie_gate.stats.report import build_report, format_report
from cookie_gate.store import StoreError, check_store, open_store
from cookie_gate.store.sql import SCHEMA_VERSION


def main(argv: Sequence[str] | None = None, *, clock: Clock = time.time) -> int:
    parser = argparse.ArgumentParser(prog="cookie-gate", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", help="TOML settings file (as passed to the middleware)")
    parser.add_argument("--store", help=f"store URL (default: $COOKIE_GATE_STORE, the config, or {DEFAULT_STORE})")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-config", help="validate the settings, try the store, and print a summary")
    commands.add_parser("migrate", help="apply the store's schema versions (safe to repeat, and while others run)")
    cookies = commands.add_parser("cookies", help="the cookie declaration table, or how given names are filed")
    cookies.add_argument("names", nargs="*", help="cookie names to look up")
    stats = commands.add_parser("stats", help="the visit statistics report")
    stats.add_argument("--days", type=_positive, default=30, help="the last N days, today included (default 30)")
    stats.add_argument("--json", action="store_true", help="print the report as JSON")
    commands.add_parser("purge", help="apply retention now: delete what is older than the retention periods")
    args = parser.parse_args(argv)
    try:
        # Only check-config needs the real secret; a placeholder keeps the other commands' validation whole.
        placeholder = None if args.command == "check-config" else "placeholder-secret-for-cli"
        config = load_config(args.config, secret_key=placeholder, store=args.store)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(_summary(config))
        return _check_store(config)
    elif args.command == "cookies" and args.names:
        print(_lookup(config, args.names))
    else:
        return _with_store(config, args, clock)
    return 0


def _with_store(config: Config, args: argparse.Namespace, clock: Clock) -> int:
    try:
        store = open_store(config.store)
    except StoreError as error:
        print(f"cookie-gate: {error}", file=sys.stderr)
        return 2
    try:
        if args.command == "cookies":
            print(_declarations(config))
            print(_inventory(store.inventory()))
        elif args.command == "stats":
            report = build_report(store, SiteClock(config.timezone), days=args.days, now=clock())
            print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_report(report))
        elif args.command == "migrate":
            print(f"store schema version: {store.schema_version()} (this release writes {SCHEMA_VERSION})")
        else:
            deleted = Statistics(config, store, clock=clock).purge(clock())
            print("purged: " + ", ".join(f"{table} {n}" for table, n in deleted.items()))
    except StoreError as error:
        print(f"cookie-gate: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def _check_store(config: Config) -> int:
    try:
        store = open_store(config.store, timeout=config.shutdown_timeout)
    except StoreError as error:
        print(f"cookie-gate: store: {error}", file=sys.stderr)
        return 1
    try:
        problem = check_store(store)
        version = store.schema_version() if problem is None else None
    except StoreError as error:
        problem = str(error)
    finally:
        store.close()
    if problem is not None:
        print(f"cookie-gate: store: {problem}", file=sys.stderr)
        return 1
    print(f"store OK: opened, a probe written and removed, schema version {version}")
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return int(text)


def _summary(config: Config) -> str:
    return "\n".join(
        [
            "configuration OK",
            f"mode: {config.mode}, policy version: {config.policy_version}, "
            f"consent lifetime: {config.consent_lifetime_days} days",
            f"categories: {', '.join(config.category_names)}",
            f"store: {_without_credentials(config.store)}",
            f"signing keys: {len(config.secret_keys)}, admin dashboard: {'on' if config.admin_token else 'off'}",
        ]
    )


def _without_credentials(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    return scheme + separator + rest.rpartition("@")[2]


def _declarations(config: Config) -> str:
    rows = [("category", "label (en)", "cookies declared by the site")]
    for category in config.categories:
        rows.append((category.name, category.label.get("en", ""), ", ".join(category.cookies) or "-"))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    lines.append("")
    lines.append(
        "Other names are filed by the built-in catalogue (Open Cookie Database, CookieBlock); "
        f"unknown names: {'necessary' if config.unknown_cookies == 'allow' else 'blocked'}."
    )
    return "\n".join(lines)


def _inventory(rows: Sequence[tuple[str, str, str, str, str]]) -> str:
    if not rows:
        return "\nNo cookies seen yet (the inventory fills as requests and responses pass the gateway)."
    header = ("cookie", "category", "filed by", "first seen", "last seen")
    width = [max(len(r[i]) for r in (*rows, header)) for i in range(4)]
    lines = ["", f"Cookies seen on this site ({len(rows)})"]
    for row in (header, *rows):
        lines.append("  " + "  ".join(f"{row[i]:<{width[i]}}" for i in range(4)) + f"  {row[4]}")
    return "\n".join(lines)


def _lookup(config: Config, names: Sequence[str]) -> str:
    classifier = CookieClassifier(config)
    return "\n".join(f"{name}\t{classifier.category(name)}\t({classifier.source(name)})" for name in names)


if __name__ == "__main__":
    sys.exit(main())
