"""The `Host` header, read as a host name the gateway may trust with `Domain` attributes.

The client writes `Host`, so it may be anything: a port, an IPv6 literal in brackets,
a trailing dot, upper case, or kilobytes of `a.a.a.…` made to multiply the expiring
`Set-Cookie`s sent for every parent domain. `request_host` keeps only what a browser
could have been visiting: a host name by RFC 1123 (labels of 1-63 letters, digits and
inner hyphens, 253 characters in all, the last label not all digits, which URL parsers
read as an IPv4 address) or an IP literal. Anything else reads as "" and gets
host-only deletions, which can only ever touch the cookies of the host that answered.

`AllowedHosts` narrows further which host names earn `Domain` variants at all, with
Django's `ALLOWED_HOSTS` patterns. It never refuses a request: an app may already
answer 400 with its own trusted-host middleware, and the gateway must not break it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cookie_gate.cache import ENTRY_OVERHEAD, BoundedCache, bytes_size, str_size

#: RFC 1123 2.1 and RFC 1035 2.3.4: the longest host name, without its trailing dot.
MAX_HOST_NAME = 253
#: A `Host` longer than this cannot hold a host name and a port, nor an IPv6 literal and a port.
_MAX_RAW_HOST = MAX_HOST_NAME + len(".:65535")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DIGITS = re.compile(r"[0-9]+")
_PORT = re.compile(r"[0-9]{1,5}")
_WHITESPACE = " \t"


def request_host(raw_host: bytes) -> str:
    """The lower-cased host name or IP address a `Host` header names; "" when it names none.

    A port and the brackets of an IPv6 literal are removed, as is one trailing dot
    (`example.com.` is the same site). IPv6 addresses come back in their compressed form.
    """
    if len(raw_host) > _MAX_RAW_HOST:
        return ""
    text = raw_host.decode("latin-1").strip(_WHITESPACE).lower()
    if text.startswith("["):
        literal, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and _is_port(rest[1:]))):
            return ""
        return _ipv6(literal)
    name, colon, port = text.partition(":")
    if colon and not _is_port(port):
        return ""
    if _is_ipv4(name):
        return name
    return name.removesuffix(".") if is_host_name(name.removesuffix(".")) else ""


def is_host_name(name: str) -> bool:
    """Whether `name` (lower case, no trailing dot) is a host name by RFC 1123, not an IP address."""
    if not name or len(name) > MAX_HOST_NAME:
        return False
    labels = name.split(".")
    if _DIGITS.fullmatch(labels[-1]):
        return False
    return all(_LABEL.fullmatch(label) for label in labels)


def is_ip(host: str) -> bool:
    """Whether a host from `request_host` is an IP address (which has host-only cookies only)."""
    return _is_ipv4(host) or ":" in host


def _is_port(text: str) -> bool:
    return _PORT.fullmatch(text) is not None and int(text) <= 65535


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _ipv6(text: str) -> str:
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        return ""


class AllowedHosts:
    """Which host names may earn `Domain` variants, by Django's `ALLOWED_HOSTS` patterns.

    `example.com` matches that host only; `.example.com` matches it and every subdomain;
    `*` matches any host. No pattern at all means any valid host name, so a gateway
    mounted with zero configuration still expires trackers set on a parent domain.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        exact: set[str] = set()
        suffixes: list[str] = []
        self._any = False
        for pattern in patterns:
            pattern = pattern.lower().removesuffix(".")
            if pattern == "*":
                self._any = True
            elif pattern.startswith("."):
                suffixes.append(pattern)
                exact.add(pattern[1:])
            else:
                exact.add(pattern)
        self._any = self._any or not (exact or suffixes)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)

    def allows(self, host: str) -> bool:
        """Whether `host`, as `request_host` gives it, may be walked up for `Domain` variants."""
        return self._any or host in self._exact or host.endswith(self._suffixes)


def host_pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is not an `allowed_hosts` entry, or None when it is one (for the config check)."""
    if pattern == "*":
        return None
    name = pattern.lower().removesuffix(".")
    if is_host_name(name.removeprefix(".")) or _is_ipv4(name) or _ipv6(name.removeprefix("[").removesuffix("]")):
        return None
    return "must be a host name such as 'example.com', '.example.com' for it and its subdomains, or '*'"


#: Host header -> host name, for the request path: at most 256 KB of them (a header above 2 KB is parsed every time).
HOST_CACHE_BYTES = 256 * 2**10
cached_request_host = BoundedCache(
    request_host,
    lambda raw, host: ENTRY_OVERHEAD + bytes_size(raw) + str_size(host),
    max_bytes=HOST_CACHE_BYTES,
    max_entry_bytes=2 * 2**10,
)
