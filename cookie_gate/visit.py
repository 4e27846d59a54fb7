"""What one request's cookies mean: the visitor's consent and which cookies must go.

A browser sends the same `Cookie` header on request after request, so the whole
analysis (split, verify the consent cookie, classify every name, rebuild the header)
is cached per header value. Only the consent's expiry depends on the clock; it is
checked on every hit, so an expired decision is never served from the cache.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from cookie_gate.classify import CookieClassifier
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY, Consent, ConsentCodec, Decision
from cookie_gate.cookies import DomainVariants, cookie_segments, cookie_value, expiring_set_cookies, join_segments
from cookie_gate.stats.counter import COOKIE_NAME as COUNTER_COOKIE

#: More deletions than this in one response would only bloat it; the rest go on the
#: next responses, since refused cookies are expired for as long as they come back.
MAX_EXPIRED_PER_RESPONSE = 32
#: Longer Cookie headers are analysed without the cache, so a client sending many
#: huge distinct headers cannot make the cache hold more than a few tens of MB.
MAX_CACHED_HEADER = 8192


@dataclass(frozen=True, slots=True)
class Visit:
    consent: Consent
    decision: Decision | None
    #: The `Cookie` header the app gets; None when no cookie is left.
    app_cookie: bytes | None
    #: Names of refused cookies the browser sent, to be expired.
    refused: tuple[str, ...]
    #: Every cookie name the browser sent, with its category.
    sent: tuple[tuple[str, str], ...]
    #: When the decision stops being valid (Unix time), None when undecided.
    valid_until: int | None
    #: The visit counter cookie's value, for a visitor whose analytics cookies the app may see.
    counter: str | None = None
    _expiries: dict[tuple[str, bool], list[tuple[bytes, bytes]]] = field(default_factory=dict, compare=False)


class VisitResolver:
    def __init__(self, config: Config, codec: ConsentCodec, classifier: CookieClassifier, variants: DomainVariants):
        self._codec = codec
        self._classifier = classifier
        self._variants = variants
        self._cookie_name = config.cookie_name
        self._lifetime = config.consent_lifetime_seconds
        everything = frozenset(config.category_names)
        if config.mode == "opt-in":
            undecided = {False: frozenset({NECESSARY}), True: frozenset({NECESSARY})}
        else:
            undecided = {False: everything, True: everything - {"marketing"}}
        self._undecided = {gpc: Consent(categories, decided=False, gpc=gpc) for gpc, categories in undecided.items()}
        self._no_cookies = {gpc: Visit(consent, None, None, (), (), None) for gpc, consent in self._undecided.items()}
        self._cached = functools.lru_cache(maxsize=4096)(self._resolve)
        # A judgment of an undeclared name can change its category (unknown_cookies = "suspect").
        classifier.on_change.append(self._cached.cache_clear)

    def resolve(self, cookie_header: bytes | None, gpc: bool, now: float) -> Visit:
        if cookie_header is None:
            return self._no_cookies[gpc]
        if len(cookie_header) > MAX_CACHED_HEADER:
            visit = self._resolve(cookie_header, gpc)
        else:
            visit = self._cached(cookie_header, gpc)
        if visit.valid_until is not None and now >= visit.valid_until:
            return self._resolve(cookie_header, gpc, expired=True)
        return visit

    def undecided(self, gpc: bool) -> Consent:
        return self._undecided[gpc]

    def _resolve(self, cookie_header: bytes, gpc: bool, expired: bool = False) -> Visit:
        segments = cookie_segments(cookie_header)
        decision = None
        if not expired:
            for name, segment in segments:
                if name == self._cookie_name:
                    decision = self._codec.decode(cookie_value(segment))
                    if decision is not None:
                        break
        if decision is None:
            consent = self._undecided[gpc]
            valid_until = None
        else:
            valid_until = decision.decided_at + self._lifetime
            consent = Consent(
                decision.accepted,
                decided=True,
                gpc=gpc,
                policy_version=decision.policy_version,
                decided_at=decision.decided_at,
                expires_at=valid_until,
                consent_id=decision.consent_id,
            )
        category = self._classifier.category
        sighted, sent = self._classifier.sighted, self._classifier.sent
        allowed = consent.categories
        kept: list[bytes] = []
        refused: list[str] = []
        names: list[tuple[str, str]] = []
        counter = None
        for name, segment in segments:
            if name not in sighted:
                # Before the category: the first sighting is what judges an undeclared name.
                sent(name, cookie_value(segment))
            owner = category(name)
            names.append((name, owner))
            if owner in allowed:
                kept.append(segment)
                if name == COUNTER_COOKIE and counter is None:
                    counter = cookie_value(segment)
            elif name and name not in refused:
                refused.append(name)
        if not refused:
            app_cookie: bytes | None = cookie_header
        else:
            app_cookie = join_segments(kept) if kept else None
        return Visit(consent, decision, app_cookie, tuple(refused), tuple(names), valid_until, counter)

    def expiry_headers(self, visit: Visit, host: str, secure: bool) -> list[tuple[bytes, bytes]]:
        """`Set-Cookie` headers expiring the visit's refused cookies under every domain."""
        key = (host, secure)
        headers = visit._expiries.get(key)
        if headers is None:
            domains = self._variants.domains(host)
            headers = [
                (b"set-cookie", value)
                for name in visit.refused[:MAX_EXPIRED_PER_RESPONSE]
                for value in expiring_set_cookies(name, domains, secure)
            ]
            if len(visit._expiries) < 8:
                visit._expiries[key] = headers
        return headers
