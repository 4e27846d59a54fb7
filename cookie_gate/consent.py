"""The visitor's decision: the value the app sees, and its signed cookie form.

The cookie payload is deliberately tiny and versioned:
``2:<accepted categories joined by +>:<policy version>:<decided at, base 36>:<consent id>:<shown>``
signed with HMAC-SHA256 through itsdangerous, where ``<shown>`` is the short digest of the
banner the choice was made on (`cookie_gate.shown`): a cookie given on a banner that has
changed since decodes as undecided. Version 1 cookies (the same without ``:<shown>``) are
still read. Everything that is wrong with a cookie
(bad signature, unknown format, another policy version) decodes to ``None``, which the
gateway treats as "undecided": a broken cookie must never break a page. Expiry is not
part of the cached decode, so it is checked on every read by the caller.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer

from cookie_gate.cache import ENTRY_OVERHEAD, BoundedCache, CacheStats, str_size

NECESSARY = "necessary"
_FORMAT = "2"
_FORMAT_WITHOUT_SHOWN = "1"
_SEP = ":"
#: A genuine consent cookie is about 110 bytes; anything much longer is not ours and
#: is not worth an HMAC (nor a slot in the verification cache).
MAX_COOKIE_VALUE = 512
#: Verified (and rejected) values are remembered up to this many bytes: thousands of visitors.
DECODE_CACHE_BYTES = 2 * 2**20


@dataclass(frozen=True, slots=True)
class Decision:
    """What a valid consent cookie says. `accepted` always contains `necessary`."""

    accepted: frozenset[str]
    policy_version: str
    decided_at: int
    consent_id: str
    #: The short digest of the banner the choice was made on; empty in a version-1 cookie.
    shown: str = ""


@dataclass(frozen=True, slots=True)
class Consent:
    """The decision as the app sees it in ``request.state.consent``.

    `categories` is what is allowed right now: for an undecided visitor in opt-out
    mode that is everything but what Global Privacy Control refuses. Instances are
    shared between requests of the same visitor, hence frozen.
    """

    categories: frozenset[str]
    decided: bool
    gpc: bool = False
    policy_version: str | None = None
    decided_at: int | None = None
    expires_at: int | None = None
    consent_id: str | None = None

    def allows(self, category: str) -> bool:
        """Whether cookies of `category` may be set and read now."""
        return category in self.categories


def strictest(decisions: Sequence[Decision]) -> Decision:
    """One decision for several valid consent cookies: only what every one of them allows.

    A browser may hold several (one tossed from a sibling subdomain with `Domain`, one
    with a longer `Path`), and which comes first in its `Cookie` header is no sign of
    which is the visitor's. The first one that allows nothing beyond what all allow
    stands whole; when each allows something another refuses, the common categories
    stand under the earliest decision's id and time.
    """
    common = frozenset.intersection(*(d.accepted for d in decisions))
    for decision in decisions:
        if decision.accepted == common:
            return decision
    earliest = min(decisions, key=lambda d: d.decided_at)
    return Decision(common, earliest.policy_version, earliest.decided_at, earliest.consent_id, earliest.shown)


def new_consent_id() -> str:
    """A random id that links a visitor's decisions in the log, and nothing else."""
    return secrets.token_urlsafe(12)


class ConsentCodec:
    """Signs and verifies consent cookies; verification is cached per cookie value.

    `secret_keys` lists the newest key first (it signs); all of them verify, so keys
    can be rotated without asking every visitor again. With `shown` given, a version-2
    cookie counts only when it was given on one of those banners (short digests).
    """

    def __init__(
        self,
        secret_keys: Sequence[str],
        *,
        policy_version: str,
        categories: Iterable[str],
        shown: frozenset[str] | None = None,
        cache_bytes: int = DECODE_CACHE_BYTES,
    ) -> None:
        self._signer = Signer(
            list(reversed(secret_keys)),
            salt="cookie_gate.consent",
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )
        self._policy_version = policy_version
        self._known = frozenset(categories) | {NECESSARY}
        self._shown = shown
        self._cached_decode = BoundedCache(
            self._decode, _decision_bytes, max_bytes=cache_bytes, max_entry_bytes=min(cache_bytes // 2, 4096)
        )

    @property
    def cache_stats(self) -> CacheStats:
        """The verification cache: `misses` counts the values whose signature was checked."""
        return self._cached_decode.stats()

    def decode(self, value: str) -> Decision | None:
        """The decision a cookie value holds, or None for anything that is not a valid one."""
        if len(value) > MAX_COOKIE_VALUE:
            return None
        return self._cached_decode[value]

    def encode(self, decision: Decision) -> str:
        accepted = "+".join(sorted(decision.accepted - {NECESSARY}))
        payload = _SEP.join(
            (
                _FORMAT,
                accepted,
                decision.policy_version,
                _base36(decision.decided_at),
                decision.consent_id,
                decision.shown,
            )
        )
        return self._signer.sign(payload.encode("ascii")).decode("ascii")

    def _decode(self, value: str) -> Decision | None:
        try:
            payload = self._signer.unsign(value.encode("latin-1")).decode("ascii")
        except (BadSignature, UnicodeError):
            return None
        parts = payload.split(_SEP)
        if len(parts) == 6 and parts[0] == _FORMAT:
            _, accepted, policy_version, decided_at, consent_id, shown = parts
            if self._shown is not None and shown not in self._shown:
                return None  # given on a banner that has changed since: ask again
        elif len(parts) == 5 and parts[0] == _FORMAT_WITHOUT_SHOWN:
            _, accepted, policy_version, decided_at, consent_id = parts
            shown = ""
        else:
            return None
        if policy_version != self._policy_version or not consent_id:
            return None
        try:
            decided = int(decided_at, 36)
        except ValueError:
            return None
        names = frozenset(accepted.split("+")) if accepted else frozenset()
        return Decision(
            accepted=(names & self._known) | {NECESSARY},
            policy_version=policy_version,
            decided_at=decided,
            consent_id=consent_id,
            shown=shown,
        )


def _decision_bytes(value: str, decision: Decision | None) -> int:
    size = ENTRY_OVERHEAD + str_size(value)
    if decision is not None:
        # The object, its set of categories, and the strings split out of the payload.
        size += 300 + 64 * len(decision.accepted) + str_size(decision.policy_version) + str_size(decision.consent_id)
        size += str_size(decision.shown)
    return size


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number <= 0:
        return "0"
    out = []
    while number:
        number, rest = divmod(number, 36)
        out.append(digits[rest])
    return "".join(reversed(out))
