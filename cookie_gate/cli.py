"""`cookie-gate` (also `python -m cookie_gate`): the admin's command line.

`check-config` validates settings exactly as the middleware will at start-up, so a
deploy can fail before it serves a single request; `cookies` shows how cookie names
are filed, from the admin's patterns or the built-in catalogue.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cookie_gate.classify import CookieClassifier
from cookie_gate.config import Config, ConfigError, load_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cookie-gate", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", help="TOML settings file (as passed to the middleware)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-config", help="validate the settings and print a summary")
    cookies = commands.add_parser("cookies", help="the cookie declaration table, or how given names are filed")
    cookies.add_argument("names", nargs="*", help="cookie names to look up")
    args = parser.parse_args(argv)
    try:
        # The secret is not needed to describe cookies; a placeholder keeps validation whole.
        placeholder = None if args.command == "check-config" else "placeholder-secret-for-cli"
        config = load_config(args.config, secret_key=placeholder)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(_summary(config))
    else:
        print(_lookup(config, args.names) if args.names else _declarations(config))
    return 0


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


def _lookup(config: Config, names: Sequence[str]) -> str:
    classifier = CookieClassifier(config)
    return "\n".join(f"{name}\t{classifier.category(name)}\t({classifier.source(name)})" for name in names)


if __name__ == "__main__":
    sys.exit(main())
