"""Is a cookie nobody declared a tracker? A small rule set over what the gateway sees.

Names that neither the site nor the built-in catalogue knows are judged from one
sighting: the value the browser sent or the app set, whether the app was seen
setting it (with its lifetime and ``HttpOnly``), and the words of its name. The
features are the ones CookieBlock (Bollinger et al., "Automating Cookie Consent and
GDPR Violation Detection", USENIX Security 2022) found to separate trackers from
the rest: identifier-shaped values (UUIDs, Google Analytics-style ``GA1.2.<id>.<time>``,
ids with an embedded Unix time), long lifetimes, who can read the cookie, and name
tokens such as ``visitor`` or ``uid``. CookieBlock feeds them to a learned model;
here they are a handful of rules a reader can check by hand, each giving its reason.

The rules lean towards keeping a cookie, because refusing an app's own session logs
its visitors out:

- ``HttpOnly`` set by the app: no script can read it, so no script tracks with it.
- A name that says what it is for (``csrf``, ``cart``, ``lang``, ``consent``...) is kept.
- A value shaped like an analytics id (``GA1.2.<id>.<time>``, an id with an embedded
  Unix time) is a tracker's: session ids are random, not timestamped.
- A tracker's word in the name (``visitor``, ``uid``, ``track``...) with an
  identifier-shaped value (UUID, long random string, a long number).
- A long-lived identifier that scripts can read: set by the app for 180 days or more,
  without ``HttpOnly``.

A random value alone, seen only in requests, is never enough: that is what a session
cookie looks like after the gateway restarts, before the app sets it again.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["Sighting", "Verdict", "judge", "set_cookie_sighting"]

#: Lifetimes from which a readable identifier counts as long-lived (about six months).
LONG_LIVED_SECONDS = 180 * 86400
#: Only this much of a value is looked at: enough for any identifier, bounded for hostile input.
MAX_VALUE = 256

_WORDS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])")
_TRACKER_WORDS = frozenset(
    {
        "ab", "ad", "ads", "analytics", "anon", "anonymous", "campaign", "cid", "click", "clickid", "device",
        "distinct", "experiment", "fbclid", "fingerprint", "fp", "gclid", "landing", "lead", "pageview",
        "pixel", "pv", "ref", "referer", "referrer", "segment", "stat", "stats", "track", "tracker",
        "tracking", "uid", "utm", "uuid", "vid", "visit", "visitor", "visits",
    }
)  # fmt: skip
_PURPOSE_WORDS = frozenset(
    {
        "auth", "basket", "captcha", "cart", "checkout", "consent", "csrf", "currency", "lang", "language",
        "locale", "login", "logged", "theme", "xsrf",
    }
)  # fmt: skip
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_HEX_UUID = re.compile(r"[0-9a-f]{32}", re.IGNORECASE)
_ANALYTICS_ID = re.compile(r"^[A-Za-z]{2,3}\d?\.\d\.\d{5,}\.\d{9,}")
# A Unix time in seconds or milliseconds between 2001 and 2033, not part of a longer number.
_UNIX_TIME = re.compile(r"(?<![0-9])1[0-9]{9}(?:[0-9]{3})?(?![0-9])")
_RANDOM_ALPHABET = re.compile(r"[A-Za-z0-9+/=_.-]+")
_LONG_NUMBER = re.compile(r"[0-9]{6,}")
_ALPHANUMERIC_RUN = re.compile(r"(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])[A-Za-z0-9]{8,}")


@dataclass(frozen=True, slots=True)
class Sighting:
    """What the gateway saw of one cookie: its value, and whether and how the app set it."""

    value: str
    #: The app sent a Set-Cookie for it (else it was only ever seen in requests: a script set it).
    set_by_app: bool = False
    #: Max-Age, or Expires minus the response's time, in seconds; None for a session cookie or one not seen set.
    lifetime: int | None = None
    http_only: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    suspect: bool
    #: Why, in words, for the inventory and `cookie-gate cookies NAME`.
    reasons: tuple[str, ...]

    def describe(self) -> str:
        head = "suspected tracker" if self.suspect else "not suspected"
        return f"{head}: {'; '.join(self.reasons)}"


def name_words(name: str) -> list[str]:
    """``_visitorId`` -> ["visitor", "id"]; ``omni_visit_id`` -> ["omni", "visit", "id"]."""
    return [word.lower() for word in _WORDS.split(name) if word]


def value_shape(value: str) -> str | None:
    """What kind of identifier the value is, if any, in words."""
    value = value[:MAX_VALUE].strip('"')
    if _ANALYTICS_ID.search(value):
        return "an analytics-style id (<version>.<n>.<id>.<time>)"
    times = _UNIX_TIME.findall(value)
    if times:
        rest = value.replace(times[0], "", 1)  # what is left beside the time must be an id of its own
        if _UUID.search(rest) or _LONG_NUMBER.search(rest) or _ALPHANUMERIC_RUN.search(rest):
            return "an id with an embedded Unix time"
    if _UUID.search(value) or _HEX_UUID.fullmatch(value):
        return "a UUID"
    if _is_random(value):
        return "a long random string"
    if _LONG_NUMBER.fullmatch(value) and not times:
        return "a long number"
    return None


def _is_random(value: str) -> bool:
    """At least 16 characters of letters and digits mixed, with high per-character entropy."""
    if len(value) < 16 or not _RANDOM_ALPHABET.fullmatch(value):
        return False
    if not (any(ch.isdigit() for ch in value) and any(ch.isalpha() for ch in value)):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.5


def judge(name: str, sighting: Sighting) -> Verdict:
    """The verdict for an undeclared name, from one sighting; every branch says why."""
    if sighting.set_by_app and sighting.http_only:
        return Verdict(False, ("set by the app with HttpOnly: no script can read it",))
    words = name_words(name)
    purpose = sorted(set(words) & _PURPOSE_WORDS)
    if purpose:
        return Verdict(False, (f"its name says what it is for ({', '.join(purpose)})",))
    shape = value_shape(sighting.value)
    if shape is None:
        return Verdict(False, ("its value is not an identifier",))
    reasons = [f"value is {shape}"]
    tracker_words = sorted(set(words) & _TRACKER_WORDS)
    long_lived = sighting.set_by_app and sighting.lifetime is not None and sighting.lifetime >= LONG_LIVED_SECONDS
    if shape.startswith(("an analytics-style", "an id with")):
        suspect = True
    elif tracker_words:
        reasons.append(f"name says {', '.join(tracker_words)}")
        suspect = True
    elif long_lived:
        assert sighting.lifetime is not None
        reasons.append(f"kept {sighting.lifetime // 86400} days and readable by scripts")
        suspect = True
    else:
        reasons.append("no tracker's word in its name, and not long-lived")
        suspect = False
    if suspect:
        reasons.append("set by the app" if sighting.set_by_app else "only seen in requests: a script set it")
    return Verdict(suspect, tuple(reasons))


def set_cookie_sighting(header: bytes, value: str, now: float) -> Sighting:
    """A sighting from one of the app's Set-Cookie headers: its lifetime and HttpOnly.

    The lifetime is Max-Age, else Expires minus ``now`` (the response's time, passed in
    so that tests need no clock); Max-Age wins as RFC 6265 section 5.3 says.
    """
    max_age: int | None = None
    expires: int | None = None
    http_only = False
    for attribute in header[:4096].split(b";")[1:]:
        key, _, raw = attribute.strip().partition(b"=")
        key = key.strip().lower()
        if key == b"httponly":
            http_only = True
        elif key == b"max-age":
            digits = raw.strip()
            if digits.isdigit() and len(digits) <= 12:
                max_age = int(digits)
        elif key == b"expires":
            expires = _seconds_until(raw.strip().decode("latin-1"), now)
    lifetime = max_age if max_age is not None else expires
    return Sighting(value, set_by_app=True, lifetime=lifetime, http_only=http_only)


def _seconds_until(date: str, now: float) -> int | None:
    try:
        when = email.utils.parsedate_to_datetime(date[:64])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0, int(when.timestamp() - now))
