"""What one request's cookies mean: the visitor's consent and which cookies must go.

A browser sends the same `Cookie` header on request after request, so the whole
analysis (split, verify the consent cookie, classify every name, rebuild the header)
is cached per header value. Only the consent's expiry depends on the clock, and only
a withdrawal learnt since (`withdrawals.py`) can change what a header meant; both are
checked on every hit, so neither an expired nor a withdrawn decision is served from
the cache. What the header means then is analysed once more and kept in a small second
cache: expired stays expired and withdrawn stays withdrawn, so a visitor replaying such
a cookie does not cost a full analysis on every request. Both caches are dropped when a
cookie's category changes and when the memory of withdrawals forgets ids it held.
Clients choose the headers, so the cache is bounded in bytes (`VISIT_CACHE_BYTES`), not
in entries, and the analysis is linear in the header's length.
"""

from __future__ import annotations

from dataclasses import dataclass

from cookie_gate.cache import ENTRY_OVERHEAD, POINTER, TUPLE_OVERHEAD, BoundedCache, bytes_size, str_size
from cookie_gate.classify import CookieClassifier
from cookie_gate.config import Config
from cookie_gate.consent import NECESSARY, Consent, ConsentCodec, Decision, strictest
from cookie_gate.cookies import (
    MAX_EXPIRED_PER_RESPONSE,
    DomainVariants,
    cookie_segments,
    cookie_value,
    expiries,
    join_segments,
)
from cookie_gate.own_cookies import COUNTER_COOKIE
from cookie_gate.withdrawals import Withdrawals

#: Longer Cookie headers are analysed without the cache (a browser's are far shorter).
MAX_CACHED_HEADER = 8192
#: The visit cache holds at most this many bytes (estimated, see `_visit_bytes`), however many
#: distinct headers clients send; one entry above a 64th of it is computed but not kept.
VISIT_CACHE_BYTES = 16 * 2**20
#: The refused cookies' expiring `Set-Cookie` headers, per (names, host, scheme), at most this many bytes.
EXPIRY_CACHE_BYTES = 4 * 2**20
#: Headers whose cached meaning went stale (expired or withdrawn), analysed again and kept.
MAX_REVISED = 256


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
        #: The one memory of withdrawals the gateway has; the endpoints add to it through here.
        self.withdrawals = (
            Withdrawals(lifetime_seconds=config.consent_lifetime_seconds) if withdrawals is None else withdrawals
        )
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
        self._cached: BoundedCache[tuple[bytes, bool], Visit] = BoundedCache(
            lambda key: self._resolve(*key),
            _visit_bytes,
            max_bytes=VISIT_CACHE_BYTES,
            max_entry_bytes=VISIT_CACHE_BYTES // 64,
        )
        self._expiries: BoundedCache[tuple[tuple[str, ...], str, bool], list[tuple[bytes, bytes]]] = BoundedCache(
            self._expiring,
            _expiry_bytes,
            max_bytes=EXPIRY_CACHE_BYTES,
            max_entry_bytes=EXPIRY_CACHE_BYTES // 16,
        )
        self._revised: dict[tuple[bytes, bool], Visit] = {}
        # A judgment of an undeclared name can change its category (unknown_cookies = "suspect").
        classifier.on_change.append(self.forget)
        # Ids the withdrawals forgot (or could not look up) must be met again by `_resolve`.
        self.withdrawals.on_forget.append(self.forget)

    def resolve(self, cookie_header: bytes | None, gpc: bool, now: float) -> Visit:
        if cookie_header is None:
            return self._no_cookies[gpc]
        if len(cookie_header) > MAX_CACHED_HEADER:
            visit = self._resolve(cookie_header, gpc)
        else:
            visit = self._cached[cookie_header, gpc]
        # `_stale` inline, and `Withdrawals.withdrawn` in it: this runs on every request with a cookie.
        if visit.valid_until is not None and now >= visit.valid_until:
            return self._revise(cookie_header, gpc, now)
        withdrawn = self.withdrawals.times
        if withdrawn and visit.signed:
            for consent_id, decided_at in visit.signed:
                at = withdrawn.get(consent_id)
                if at is not None and at >= decided_at:
                    return self._revise(cookie_header, gpc, now)
        return visit

    def forget(self) -> None:
        """Drop every cached analysis (called from any thread)."""
        self._cached.clear()
        self._revised = {}  # rebound, not cleared: `_revise` may be using the old one

    def _stale(self, visit: Visit, now: float) -> bool:
        """Whether the decision a cached visit holds expired or was withdrawn since."""
        if visit.valid_until is not None and now >= visit.valid_until:
            return True
        withdrawn = self.withdrawals.times
        if withdrawn and visit.signed:
            for consent_id, decided_at in visit.signed:
                at = withdrawn.get(consent_id)
                if at is not None and at >= decided_at:
                    return True
        return False

    def _revise(self, cookie_header: bytes, gpc: bool, now: float) -> Visit:
        """What a header whose cached meaning went stale means now, analysed once and kept."""
        revised = self._revised
        key = (cookie_header, gpc)
        visit = revised.get(key)
        if visit is None or self._stale(visit, now):
            visit = self._resolve(cookie_header, gpc, now)
            if len(cookie_header) <= MAX_CACHED_HEADER:
                if len(revised) >= MAX_REVISED:
                    revised.pop(next(iter(revised)), None)
                revised[key] = visit
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
        withdrawals = self.withdrawals
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
        every_value = self._classifier.judges_requests
        for name, segment in segments:
            # Every value is judged before any name is filed (suspect mode), so that a harmless
            # value sent first, or beside a tracker's, never decides for the others.
            if every_value or name not in sighted:
                sent(name, cookie_value(segment))
        allowed = consent.categories
        kept: list[bytes] = []
        refused: dict[str, None] = {}  # ordered and de-duplicated in constant time per name
        names: list[tuple[str, str]] = []
        counter = None
        for name, segment in segments:
            owner = category(name)
            names.append((name, owner))
            if conflicting and name == self._cookie_name:
                continue
            if owner in allowed:
                kept.append(segment)
                if name == COUNTER_COOKIE and counter is None:
                    counter = cookie_value(segment)
            elif name:
                refused[name] = None
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
        return self._expiries[visit.refused[:MAX_EXPIRED_PER_RESPONSE], host, secure]

    def _expiring(self, key: tuple[tuple[str, ...], str, bool]) -> list[tuple[bytes, bytes]]:
        names, host, secure = key
        domains = self._variants.domains(host)
        return [(b"set-cookie", value) for value in expiries(names, domains, secure)]


#: A Visit with its Consent and Decision, past the variable parts `_visit_bytes` adds.
_VISIT_OVERHEAD = 600


def _visit_bytes(key: tuple[bytes, bool], visit: Visit) -> int:
    """An upper estimate of what caching `visit` under `key` holds, shared objects counted as owned.

    Names of one character or none are CPython's shared singletons, so they cost only their slot.
    """
    header = key[0]
    size = ENTRY_OVERHEAD + _VISIT_OVERHEAD + bytes_size(header) + str_size(visit.counter)
    if visit.app_cookie is not header:
        size += bytes_size(visit.app_cookie)
    size += 2 * TUPLE_OVERHEAD + POINTER * (len(visit.sent) + len(visit.refused))
    size += sum(TUPLE_OVERHEAD + POINTER + (str_size(name) if len(name) > 1 else 0) for name, _ in visit.sent)
    decision = visit.decision
    if decision is not None:
        size += str_size(decision.consent_id) + str_size(decision.policy_version) + 64 * len(decision.accepted)
    return size


def _expiry_bytes(key: tuple[tuple[str, ...], str, bool], headers: list[tuple[bytes, bytes]]) -> int:
    names, host, _ = key
    size = ENTRY_OVERHEAD + 2 * TUPLE_OVERHEAD + str_size(host) + sum(POINTER + str_size(n) for n in names)
    return size + TUPLE_OVERHEAD + sum(TUPLE_OVERHEAD + POINTER + bytes_size(value) for _, value in headers)
