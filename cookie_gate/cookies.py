"""Byte-level Cookie / Set-Cookie handling.

Everything here works on the raw header bytes the ASGI server hands over, because
`http.cookies.SimpleCookie` silently drops real-world cookies (JSON values, stray
commas, tabs) and because re-serialising a parsed cookie changes its bytes. A cookie
header is a list of `;`-separated segments; we only ever look at the name before the
first `=` and keep or drop whole segments unchanged.

Names are decoded as latin-1: it maps every byte to one code point, so non-UTF-8 bytes
round-trip exactly and can never raise.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from cookie_gate.hosts import AllowedHosts, is_ip

_WHITESPACE = b" \t"
_EXPIRED = b"; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"
_MAX_ATTRIBUTE_VALUE = 1024  # RFC 6265bis: browsers ignore longer attribute values
_MAX_AGE = re.compile(rb";[ \t]*max-age[ \t]*=([^;]*)")  # applied to the lower-cased value
_INTEGER = re.compile(rb"-?[0-9]+")
#: More deletions than this in one response would only bloat it (see `expiries`).
MAX_EXPIRED_PER_RESPONSE = 32
#: Bytes of deletions in one response: reverse proxies often hold response headers in 4-8 KiB.
MAX_EXPIRY_BYTES = 8192
#: Domain attributes a cookie is expired under besides host-only (see `DomainVariants`).
MAX_DOMAIN_ATTRIBUTES = 4
#: RFC 6265bis 5.6: browsers ignore a cookie whose name and value exceed this together.
MAX_COOKIE_NAME = 4096


def cookie_segments(header: bytes) -> list[tuple[str, bytes]]:
    """Split a `Cookie` header into (name, raw segment) pairs.

    A segment without `=` is a nameless cookie (RFC 6265bis), so its name is "".
    Empty segments (`a=1;;b=2`) are dropped, as browsers never send them.
    """
    pairs: list[tuple[str, bytes]] = []
    for segment in header.split(b";"):
        name, eq, _ = segment.partition(b"=")
        if not eq:
            if not segment.strip(_WHITESPACE):
                continue
            name = b""
        pairs.append((name.strip(_WHITESPACE).decode("latin-1"), segment))
    return pairs


def cookie_value(segment: bytes) -> str:
    """The value of one Cookie segment, whitespace and one pair of quotes removed."""
    value = segment.partition(b"=")[2].strip(_WHITESPACE)
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
        value = value[1:-1]
    return value.decode("latin-1")


def join_segments(segments: Iterable[bytes]) -> bytes:
    """Re-join kept segments; each keeps its own bytes, only the outer space goes."""
    return b";".join(segments).lstrip(_WHITESPACE)


def set_cookie_name(header_value: bytes) -> str:
    """The name a browser stores for a `Set-Cookie` value.

    The name is what precedes the first `=` of the part before the first `;`. There is
    no splitting on commas: `Expires=Wed, 21 Oct 2015 ...` contains one, and ASGI
    never folds two Set-Cookie headers into one value. No `=` means a nameless cookie.
    """
    pair = header_value.partition(b";")[0]
    name, eq, _ = pair.partition(b"=")
    if not eq:
        return ""
    return name.strip(_WHITESPACE).decode("latin-1")


def is_deletion(header_value: bytes) -> bool:
    """True when a `Set-Cookie` only removes a cookie (`Max-Age` <= 0).

    An app that deletes a tracker the visitor refused is doing the right thing, so
    such headers pass even for refused categories. The answer must be the browser's:
    it ignores a `Max-Age` that is not `-`? DIGIT+ (RFC 6265 5.2.2; `int()` also takes
    `+0` and `0_0`) or is over 1024 bytes (RFC 6265bis), and uses the last valid one
    (5.3 step 3). Otherwise `tracker=1; Max-Age=+0` or `Max-Age=0; Max-Age=9999`
    would pass here as a deletion and be stored by the browser.
    """
    # The attributes repeat word for word across responses (the app's code writes them), so
    # the answer is cached by them; the name=value part is left out of the key.
    return _deletes(header_value.partition(b";")[2])


@functools.lru_cache(maxsize=1024)
def _deletes(attributes: bytes) -> bool:
    lowered = b";" + attributes.lower()
    at = lowered.find(b"max-age")
    if at < 0:
        return False
    if lowered.find(b"max-age", at + 7) < 0:
        # One Max-Age (what frameworks write): read its value without a regex scan.
        value = lowered[at + 7 :].partition(b";")[0].strip(_WHITESPACE)
        if value[:1] != b"=" or lowered[:at].rstrip(_WHITESPACE)[-1:] != b";":
            return False
        text = value[1:].strip(_WHITESPACE)
        return len(text) <= _MAX_ATTRIBUTE_VALUE and _INTEGER.fullmatch(text) is not None and int(text) <= 0
    max_age: bytes | None = None
    for match in _MAX_AGE.finditer(lowered):
        text = match.group(1).strip(_WHITESPACE)
        if len(text) <= _MAX_ATTRIBUTE_VALUE and _INTEGER.fullmatch(text):
            max_age = text
    return max_age is not None and int(max_age) <= 0


class DomainVariants:
    """Every `Domain` under which a cookie visible to a host may have been stored.

    A cookie can only be deleted with the Domain (and Path) it was set with, and the
    `Cookie` header does not say which. Browsers refuse a Domain that is a public
    suffix (`.co.kr`), so the walk up the name stops at the registrable domain given
    by the public suffix list. IP addresses, bare names, hosts `request_host` found
    invalid ("") and hosts outside `allowed` only have host-only cookies.

    A deep host would multiply every deletion by its depth, so at most
    `MAX_DOMAIN_ATTRIBUTES` Domains are named: the host itself, and the registrable
    domain with the names just below it, where scripts set their cookies.
    """

    def __init__(self, registrable_domain: Callable[[str], str | None], allowed: AllowedHosts | None = None) -> None:
        self._registrable_domain = registrable_domain
        self._allowed = AllowedHosts() if allowed is None else allowed
        self.domains = functools.lru_cache(maxsize=1024)(self._domains)

    def _domains(self, host: str) -> tuple[str, ...]:
        """Domain attribute values to expire under; "" stands for host-only."""
        if not host or is_ip(host) or not self._allowed.allows(host):
            return ("",)
        registrable = self._registrable_domain(host)
        if registrable is None:
            return ("",)
        registrable = registrable.lower()
        chain = []
        labels = host.split(".")
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            chain.append(candidate)
            if candidate.lower() == registrable:
                if len(chain) > MAX_DOMAIN_ATTRIBUTES:
                    chain = [chain[0], *chain[1 - MAX_DOMAIN_ATTRIBUTES :]]
                return ("", *chain)
        # The registrable domain is not a label suffix of the host (a host not passed
        # through `request_host`, e.g. `Example.COM` or `example.com.`): walking on
        # would reach the public suffix (`COM`) and beyond, so keep to host-only.
        return ("",)


def expiries(names: Iterable[str], domains: tuple[str, ...], secure: bool) -> list[bytes]:
    """`Set-Cookie` values expiring the first of `names` a response can carry.

    At most `MAX_EXPIRED_PER_RESPONSE` cookies, each under every one of `domains`, and
    no more than `MAX_EXPIRY_BYTES` of them once the first is in; the rest go on the
    next responses, since refused cookies are expired for as long as they come back.
    A name longer than a browser stores (`MAX_COOKIE_NAME`) was never a cookie and is
    passed over.
    """
    headers: list[bytes] = []
    size = count = 0
    for name in names:
        if len(name) > MAX_COOKIE_NAME:
            continue
        values = expiring_set_cookies(name, domains, secure)
        cost = sum(map(len, values))
        if count == MAX_EXPIRED_PER_RESPONSE or (headers and size + cost > MAX_EXPIRY_BYTES):
            break
        headers.extend(values)
        size += cost
        count += 1
    return headers


def expiring_set_cookies(name: str, domains: tuple[str, ...], secure: bool) -> list[bytes]:
    """`Set-Cookie` values that expire `name` under each domain, all with `Path=/`.

    `__Host-` cookies exist only host-only and need `Secure`; `__Secure-` cookies need
    `Secure` too, or the browser ignores the deletion. Browsers match these prefixes
    case-insensitively (RFC 6265bis), so `__HOST-x` is treated the same way.
    """
    raw_name = name.encode("latin-1")
    folded = name.lower()
    host_only = folded.startswith("__host-")
    needs_secure = secure or host_only or folded.startswith("__secure-")
    tail = _EXPIRED + (b"; Secure" if needs_secure else b"")
    if host_only:
        domains = ("",)
    headers = []
    for domain in domains:
        domain_attr = b"; Domain=" + domain.encode("latin-1") if domain else b""
        headers.append(raw_name + b"=" + tail + domain_attr)
    return headers
