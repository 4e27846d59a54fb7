"""What the banner shows, as a digest: the proof of what a visitor was asked, and the sign it changed.

A logged decision proves little without the words it was given on. Each locale's digest
covers every input of the banner in that locale: its texts (the consent lifetime filled
in), the privacy policy link, and each category in order with its label, description,
retention, refusal and cookie patterns, resolved the way `banner.py` resolves them (the
locale's text, else English). It is computed once at start-up. The consent log keeps the
whole digest with each decision; the consent cookie carries its first `SHORT_LENGTH` hex
digits, so that a cookie given on other texts or other cookie lists can be asked again
(`reprompt_on_change`) without any work beyond the cached verification of the cookie.

The digest is the sha256 of `shown_document`, one line of ASCII JSON that
`cookie-gate shown` prints: an admin who archives it with each configuration can
show anyone what a logged digest stands for, and anyone can check the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cookie_gate.config import Config, localized

#: Hex digits of the digest a consent cookie carries: 48 bits, plenty to tell configurations apart.
SHORT_LENGTH = 12
_SCHEME = "cookie_gate.shown.1"  # changes if what the digest covers ever changes


@dataclass(frozen=True)
class ShownDigests:
    """The digest of the banner as each locale shows it (sha256, hex)."""

    by_locale: Mapping[str, str]

    def digest(self, locale: str) -> str:
        return self.by_locale[locale]

    @property
    def short_digests(self) -> frozenset[str]:
        """What a consent cookie given on today's banner, in any locale, carries."""
        return frozenset(d[:SHORT_LENGTH] for d in self.by_locale.values())


def shown_digests(config: Config) -> ShownDigests:
    return ShownDigests({locale: digest_of(shown_document(config, locale)) for locale in config.locales})


def digest_of(document: str) -> str:
    return hashlib.sha256(document.encode("ascii")).hexdigest()


def shown_document(config: Config, locale: str) -> str:
    """Everything the banner shows in `locale`, as canonical JSON (sorted keys, ASCII escapes)."""

    def text(field: Mapping[str, str]) -> str:
        return localized(field, locale)

    days = str(config.consent_lifetime_days)
    shown = {
        "scheme": _SCHEME,
        "locale": locale,
        "texts": {key: value.replace("{days}", days) for key, value in config.texts[locale].items()},
        "privacy_policy_url": config.privacy_policy_url or "",
        "categories": [
            {
                "name": c.name,
                "label": text(c.label) or c.name,
                "description": text(c.description),
                "retention": text(c.retention),
                "refusal": text(c.refusal),
                "cookies": list(c.cookies),
            }
            for c in config.categories
        ],
    }
    return json.dumps(shown, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
