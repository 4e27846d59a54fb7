"""What one request's cookies mean: the visitor's consent and which cookies must go.

A browser sends the same `Cookie` header on request after request, so the whole
analysis (split, verify the consent cookie, classify every name, rebuild the header)
is cached per header value. Only the consent's expiry depends on the clock, and only
a withdrawal learnt since (`withdrawals.py`) can change what a header meant; both are
checked on every hit, so neither an expired nor a withdrawn decision is served from
the cache.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from cookie_gate.classify import CookieClassifier
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY, Consent, ConsentCodec, Decision, strictest
from cookie_gate.cookies import DomainVariants, cookie_segments, cookie_value, expiries, join_segments
from cookie_gate.stats.counter import COOKIE_NAME as COUNTER_COOKIE
from cookie_gate.withdrawals import Withdrawals

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
    #: (consent id, decided at) of every valid consent cookie sent, to notice their withdrawal.
    signed: tuple[tuple[str, int], ...] = ()
    #: Several different consent cookies were sent: the app sees none of them, only the decision.
    conflicting: bool = False
    _expiries: dict[tuple[str, bool], list[tuple[bytes, bytes]]] = field(default_factory=dict, compare=False)


class VisitResolver:
    def __init__(
        self,
        config: Config,
        codec: ConsentCodec,
        classifier: CookieClassifier,
        variants: DomainVariants,
        withdrawals: Withdrawals | None = None,
    ):
        self._codec = codec
        self._withdrawals = Withdrawals() if withdrawals is None else withdrawals
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
            return self._resolve(cookie_header, gpc, now)
        withdrawn = self._withdrawals.times
        if withdrawn and visit.signed:
            for consent_id, decided_at in visit.signed:
                at = withdrawn.get(consent_id)
                if at is not None and at >= decided_at:
                    return self._resolve(cookie_header, gpc, now)
        return visit

    def undecided(self, gpc: bool) -> Consent:
        return self._undecided[gpc]

    def _resolve(self, cookie_header: bytes, gpc: bool, now: float | None = None) -> Visit:
        """What a Cookie header means; `now` given, decisions that expired by then do not count.

        Several consent cookies (one tossed from a sibling subdomain, one with a longer
        Path) allow only what every valid one allows. One that is not valid (bad
        signature, expired, withdrawn) beside them makes the visitor undecided, still
        with no more than the valid ones allow: whatever conflicts allows less.
        """
        segments = cookie_segments(cookie_header)
        withdrawals = self._withdrawals
        valid: list[Decision] = []
        values: set[str] = set()
        invalid = False
        for name, segment in segments:
            if name != self._cookie_name:
                continue
            value = cookie_value(segment)
            if value in values:
                continue
            values.add(value)
            found = self._codec.decode(value)
            if (
                found is None
                or (now is not None and now >= found.decided_at + self._lifetime)
                or withdrawals.withdrawn(found.consent_id, found.decided_at)
            ):
                invalid = True
            else:
                valid.append(found)
                withdrawals.check_later(found.consent_id)
        conflicting = len(values) > 1
        decision = strictest(valid) if valid else None
        if decision is None:
            consent = self._undecided[gpc]
            valid_until = None
        else:
            valid_until = min(d.decided_at for d in valid) + self._lifetime
            if invalid:
                consent = Consent(decision.accepted & self._undecided[gpc].categories, decided=False, gpc=gpc)
            else:
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
            if conflicting and name == self._cookie_name:
                continue
            if owner in allowed:
                kept.append(segment)
                if name == COUNTER_COOKIE and counter is None:
                    counter = cookie_value(segment)
            elif name and name not in refused:
                refused.append(name)
        if not refused and not conflicting:
            app_cookie: bytes | None = cookie_header
        else:
            app_cookie = join_segments(kept) if kept else None
        signed = tuple((d.consent_id, d.decided_at) for d in valid)
        return Visit(
            consent, decision, app_cookie, tuple(refused), tuple(names), valid_until, counter, signed, conflicting
        )

    def expiry_headers(self, visit: Visit, host: str, secure: bool) -> list[tuple[bytes, bytes]]:
        """`Set-Cookie` headers expiring the visit's refused cookies under every domain."""
        key = (host, secure)
        headers = visit._expiries.get(key)
        if headers is None:
            domains = self._variants.domains(host)
            headers = [(b"set-cookie", value) for value in expiries(visit.refused, domains, secure)]
            if len(visit._expiries) < 8:
                visit._expiries[key] = headers
        return headers
