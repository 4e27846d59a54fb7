"""`cookie-gate` (also `python -m cookie_gate`): the admin's command line.

`check-config` validates settings exactly as the middleware will at start-up and opens
the store, writing and removing a probe, so a deploy can fail before it serves a single
request; `migrate` applies the store's schema versions; `cookies` shows how cookie names
are filed, from the admin's patterns or the built-in catalogue, and with `--format`
prints the declaration for a privacy policy; `stats` is the report, `consents`
exports the proof-of-consent log, `shown` prints what its digests stand for, and
`purge` applies retention now.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
import zoneinfo
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path

from cookie_gate.catalog import explain
from cookie_gate.classify import SUSPECT_CATEGORY, TRUNCATED, CookieClassifier
from cookie_gate.clock import Clock
from cookie_gate.config import DEFAULT_STORE, LOCALES, Config, ConfigError, load_config
from cookie_gate.declaration import FORMATS, build_declaration, render
from cookie_gate.proof import write_csv, write_json
from cookie_gate.shown import SHORT_LENGTH, digest_of, shown_digests, shown_document
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.report import build_report, format_report
from cookie_gate.stats.retention import Retention
from cookie_gate.store import StoreError, check_store, open_store
from cookie_gate.store.sql import SCHEMA_VERSION, SQLStore
from cookie_gate.terminal import printable, printable_json

#: What a subcommand runs: its exit code from the validated settings, its arguments and the wall clock.
Command = Callable[[Config, argparse.Namespace, Clock], int]
#: A subcommand that works on the opened store; `_on_store` opens, reports and closes it.
StoreCommand = Callable[[Config, SQLStore, argparse.Namespace, Clock], None]


def main(argv: Sequence[str] | None = None, *, clock: Clock = time.time) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Only check-config needs the real secret; a placeholder keeps the other commands' validation whole.
        placeholder = None if args.command == "check-config" else "placeholder-secret-for-cli"
        config = load_config(args.config, secret_key=placeholder, store=args.store)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    run: Command = args.run
    return run(config, args, clock)


def build_parser() -> argparse.ArgumentParser:
    """The command line; each subcommand names the function it runs (`run`), so none can fall into another."""
    parser = argparse.ArgumentParser(prog="cookie-gate", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", help="TOML settings file (as passed to the middleware)")
    parser.add_argument("--store", help=f"store URL (default: $COOKIE_GATE_STORE, the config, or {DEFAULT_STORE})")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate the settings, try the store, and print a summary")
    check.set_defaults(run=_check_config)
    migrate = commands.add_parser(
        "migrate", help="apply the store's schema versions (safe to repeat, and while others run)"
    )
    migrate.set_defaults(run=_on_store(_migrate))
    cookies = commands.add_parser("cookies", help="the cookie declaration table, or how given names are filed")
    cookies.add_argument("names", nargs="*", help="cookie names to look up")
    cookies.add_argument(
        "--format",
        choices=FORMATS,
        help="the declaration for a privacy policy (table and PIPA Art. 30(1)7 disclosure; csv: the table only)",
    )
    cookies.add_argument("--locale", choices=LOCALES, help="the declaration's language (default: default_locale)")
    cookies.set_defaults(run=_cookies)
    stats = commands.add_parser("stats", help="the visit statistics report")
    stats.add_argument("--days", type=_positive, default=30, help="the last N days, today included (default 30)")
    stats.add_argument("--json", action="store_true", help="print the report as JSON")
    stats.set_defaults(run=_on_store(_stats))
    consents = commands.add_parser(
        "consents", help="the proof-of-consent log: each decision, how it came and a digest of what was shown"
    )
    consents.add_argument(
        "--since",
        type=_since,
        help="from this day (YYYY-MM-DD, midnight in the configured time zone) or instant (ISO 8601 with offset)",
    )
    consents.add_argument(
        "--id",
        dest="consent_id",
        type=_consent_id,
        help="only the decisions under this consent id (one starting with '-' as --id=-...)",
    )
    consents.add_argument("--format", choices=("csv", "json"), default="csv", help="output format (default csv)")
    consents.set_defaults(run=_on_store(_consents))
    shown = commands.add_parser(
        "shown", help="what the banner shows in each locale, and its digest as the consent log records it"
    )
    shown.add_argument("--locale", help="only this locale")
    shown.set_defaults(run=_shown)
    purge = commands.add_parser("purge", help="apply retention now: delete what is older than the retention periods")
    purge.set_defaults(run=_on_store(_purge))
    return parser


def _on_store(command: StoreCommand) -> Command:
    """`command` on the opened store: exit 2 if the store cannot be opened, 1 if it fails, else 0."""

    @functools.wraps(command)
    def run(config: Config, args: argparse.Namespace, clock: Clock) -> int:
        try:
            store = open_store(config.store)
        except StoreError as error:
            print(f"cookie-gate: {error}", file=sys.stderr)
            return 2
        try:
            command(config, store, args, clock)
        except StoreError as error:
            print(f"cookie-gate: {error}", file=sys.stderr)
            return 1
        finally:
            store.close()
        return 0

    return run


def _check_config(config: Config, args: argparse.Namespace, clock: Clock) -> int:
    print(_summary(config))
    return _check_store(config)


def _cookies(config: Config, args: argparse.Namespace, clock: Clock) -> int:
    """Given names: how each is filed (the store only if it exists); none: the declaration, from the store."""
    if not args.names:
        return _on_store(_declaration)(config, args, clock)
    if args.format or args.locale:
        print("cookie-gate: --format and --locale apply to the declaration, not to a look-up", file=sys.stderr)
        return 2
    print(_lookup(config, args.names, _seen(config, args.names)))
    return 0


def _declaration(config: Config, store: SQLStore, args: argparse.Namespace, clock: Clock) -> None:
    if args.format or args.locale:
        locale = args.locale or (config.default_locale if config.default_locale in LOCALES else "en")
        # The builder escapes what visitors chose; each format escapes for itself.
        print(render(build_declaration(config, store.inventory(), locale), args.format or "md"), end="")
        return
    print(_declarations(config))
    # Visitors chose these names: printed with control characters escaped.
    rows = store.inventory()
    print(_inventory([(printable(name), category, by, first, last) for name, category, by, first, last in rows]))


def _stats(config: Config, store: SQLStore, args: argparse.Namespace, clock: Clock) -> None:
    report = build_report(store, SiteClock(config.timezone), days=args.days, now=clock())
    # format_report escapes what visitors control; in JSON the escape is JSON's own.
    print(printable_json(json.dumps(report, ensure_ascii=False, indent=2)) if args.json else format_report(report))


def _consents(config: Config, store: SQLStore, args: argparse.Namespace, clock: Clock) -> None:
    since = None if args.since is None else _timestamp(args.since, config.timezone)
    records = store.consent_log(since=since, consent_id=args.consent_id)
    (write_json if args.format == "json" else write_csv)(records, sys.stdout)


def _migrate(config: Config, store: SQLStore, args: argparse.Namespace, clock: Clock) -> None:
    print(f"store schema version: {store.schema_version()} (this release writes {SCHEMA_VERSION})")


def _purge(config: Config, store: SQLStore, args: argparse.Namespace, clock: Clock) -> None:
    deleted = Retention(config, store, SiteClock(config.timezone)).purge(clock())
    print("purged: " + ", ".join(f"{table} {n}" for table, n in deleted.items()))


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


def _shown(config: Config, args: argparse.Namespace, clock: Clock) -> int:
    """Per locale, its digest and the one-line document it is the sha256 of (ASCII JSON)."""
    locale: str | None = args.locale
    if locale is not None and locale not in config.locales:
        print(
            f"cookie-gate: no locale {printable(locale)!r} (the banner has: {', '.join(config.locales)})",
            file=sys.stderr,
        )
        return 2
    for name in (locale,) if locale is not None else config.locales:
        document = shown_document(config, name)
        print(f"{name} {digest_of(document)}")
        print(document)
    return 0


def _since(text: str) -> date | datetime:
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a day YYYY-MM-DD or an ISO 8601 instant with offset") from None
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError("an instant needs a UTC offset, such as 2026-12-01T09:00:00+09:00")
    return instant


_CONSENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _consent_id(text: str) -> str:
    if not _CONSENT_ID.match(text):
        raise argparse.ArgumentTypeError("a consent id is up to 64 letters, digits, '-' or '_'")
    return text


def _timestamp(since: date | datetime, timezone: str) -> int:
    """A day counts from its midnight in the site's time zone, as the statistics' days do."""
    if not isinstance(since, datetime):
        since = datetime(since.year, since.month, since.day, tzinfo=zoneinfo.ZoneInfo(timezone))
    return int(since.timestamp())


def _summary(config: Config) -> str:
    return "\n".join(
        [
            "configuration OK",
            f"mode: {config.mode}, policy version: {config.policy_version}, "
            f"consent lifetime: {config.consent_lifetime_days} days",
            f"categories: {', '.join(config.category_names)}",
            f"store: {_without_credentials(config.store)}",
            f"signing keys: {len(config.secret_keys)}, admin dashboard: {'on' if config.admin_token else 'off'}",
            # The digests the consent log will record (`cookie-gate shown` prints what they stand for).
            "banner digests: "
            + ", ".join(
                f"{locale} {digest[:SHORT_LENGTH]}" for locale, digest in shown_digests(config).by_locale.items()
            )
            + f" (re-prompt on change: {'on' if config.reprompt_on_change else 'off'})",
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
        "Other names are filed by the built-in catalogue (Open Cookie Database, CookieBlock, vendors' and "
        f"frameworks' documentation); unknown names: {_UNKNOWN_POLICY[config.unknown_cookies]}."
    )
    return "\n".join(lines)


_UNKNOWN_POLICY = {
    "allow": "necessary (suspected trackers are only marked)",
    "suspect": f"suspected trackers refused as {SUSPECT_CATEGORY}, the others necessary",
    "block": "blocked",
}


def _inventory(rows: Sequence[tuple[str, str, str, str, str]]) -> str:
    if not rows:
        return "\nNo cookies seen yet (the inventory fills as requests and responses pass the gateway)."
    truncated = [row for row in rows if row[0] == TRUNCATED]
    rows = [row for row in rows if row[0] != TRUNCATED]
    header = ("cookie", "category", "filed by", "first seen", "last seen")
    width = [max(len(r[i]) for r in (*rows, header)) for i in range(4)]
    lines = ["", f"Cookies seen on this site ({len(rows)})"]
    if truncated:
        lines.append(f"  (truncated: {truncated[0][2]})")
    for row in (header, *rows):
        lines.append("  " + "  ".join(f"{row[i]:<{width[i]}}" for i in range(4)) + f"  {row[4]}")
    return "\n".join(lines)


def _seen(config: Config, names: Sequence[str]) -> dict[str, str]:
    """What the inventory recorded about these names (the heuristic's verdict), if the store is reachable.

    A SQLite store that does not exist yet has seen nothing, and is not created by a look-up.
    """
    scheme, _, path = config.store.partition(":///")
    if scheme == "sqlite" and not Path(path).exists():
        return {}
    try:
        store = open_store(config.store)
    except StoreError:
        return {}
    try:
        wanted = set(names)
        return {row[0]: row[2] for row in store.inventory() if row[0] in wanted}
    except StoreError:
        return {}
    finally:
        store.close()


def _lookup(config: Config, names: Sequence[str], seen: dict[str, str]) -> str:
    """Who files each name, by which rule and from which source, and how the admin overrides it."""
    classifier = CookieClassifier(config)
    blocks = []
    for name in names:
        category, source = classifier.category(name), classifier.source(name)
        suspected = source in ("unknown", "generic") and seen.get(name, "").startswith("suspected tracker")
        if suspected and config.unknown_cookies == "suspect":
            category = SUSPECT_CATEGORY  # what the gateway does with it, once it has seen it
        lines = [f"{printable(name)}: {category}"]
        if source == "gateway":
            lines.append("  filed by: the gateway itself (the consent choice or the visit counter)")
        elif source == "site":
            lines.append("  filed by: your configuration ([categories.*] cookies)")
        else:
            rule = explain(name)
            if source == "catalogue" and rule is not None:
                lines.append(f"  filed by: the built-in catalogue, {_RULE_WORDS[rule.kind]} {rule.pattern!r}")
                lines.append(f"  source: {rule.reason}")
            else:
                policy = _UNKNOWN_POLICY[config.unknown_cookies]
                if source == "generic" and rule is not None:
                    lines.append(f"  filed by: a generic name, decided as unknown names are: {policy}")
                    lines.append(f"  catalogue: {rule.reason}")
                else:
                    lines.append(f"  filed by: nobody declared it; unknown names: {policy}")
                    if rule is not None:
                        lines.append(f"  not filed from: {rule.reason}")
                if suspected:
                    lines.append(f"  heuristic: {seen[name]}")
                else:
                    lines.append(
                        "  heuristic: not suspected from what the gateway has seen"
                        if name in seen
                        else "  heuristic: the gateway has not seen it yet"
                    )
        other = "analytics" if category == "necessary" else "necessary"
        lines.append(
            f"  to file it yourself, in the config file: [categories.{other}] cookies = [{_toml_string(name)}]"
        )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


_RULE_WORDS = {"exact": "exact name", "prefixes": "prefix", "suffixes": "suffix"}


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes, control characters and DEL escaped.

    A lone surrogate (a name given on the command line in bytes that are not UTF-8) has no
    TOML spelling; U+FFFD stands in for it, so the line stays valid TOML.
    """
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


if __name__ == "__main__":
    sys.exit(main())
