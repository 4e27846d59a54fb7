"""What the statistics keep of a referrer: its host name, or one bucket for every IP address.

A `Referer: http://10.20.30.40/` names a machine, often a person's own (an intranet
page, a router, a developer's laptop): an IP address, which must never reach disk.
Every IP-literal referrer is therefore counted under `IP_ADDRESS` and the literal is
dropped. "IP literal" is what a browser would parse as one, not only the dotted form:
bracketed IPv6, and every host that ends in a number (WHATWG URL's IPv4 rule), which
takes in `2130706433`, `0x7f.1`, `0177.0.0.1` and `127.1`. Percent-escapes and
full-width digits or dots are undone before the test, as a browser's host parser does.
No real domain ends in a number (top-level domains are letters). Names that spell an
address out (`10.20.30.40.nip.io`, `10-20-30-40.sslip.io`, wildcard DNS that resolves
to it) would put it on disk as well, so they go into the same bucket.
"""

from __future__ import annotations

import re
import string
import unicodedata
from urllib.parse import unquote_to_bytes, urlsplit

#: The one bucket every IP-address referrer is counted in.
IP_ADDRESS = "(ip address)"
_HEX = frozenset(string.hexdigits)
#: Four numbers of at most three digits, dotted or dashed, as whole labels of a host name.
_SPELLED_IPV4 = re.compile(r"(?:^|[.-])\d{1,3}([.-])\d{1,3}\1\d{1,3}\1\d{1,3}(?:[.-]|$)", re.ASCII)


def referrer_host(referrer: bytes | None) -> str:
    """The host a `Referer` header names (lower-cased, at most 253 characters), "" for none or a malformed URL."""
    if not referrer:
        return ""
    try:
        return (urlsplit(referrer.decode("latin-1")).hostname or "")[:253]
    except ValueError:
        return ""


def stored_referrer(host: str) -> str:
    """`host` as the statistics store it: unchanged, or `IP_ADDRESS` for an IP address in any form."""
    return IP_ADDRESS if is_ip_literal(host) or _SPELLED_IPV4.search(host) else host


def is_ip_literal(host: str) -> bool:
    """Whether a referrer's host (brackets removed) is an IP address in any form a browser accepts."""
    if ":" in host:  # only an IPv6 literal has a colon once the port is gone
        return True
    try:
        raw = unquote_to_bytes(host.encode("latin-1"))  # back to the bytes the header carried
    except UnicodeEncodeError:
        raw = unquote_to_bytes(host)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    # NFKC folds full-width digits and dots; the ideographic full stops are dots to IDNA as well.
    text = unicodedata.normalize("NFKC", text).translate({0x3002: ".", 0xFF61: "."}).lower()
    if ":" in text:
        return True
    labels = text.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # one trailing dot is allowed
    last = labels[-1]
    if last.isascii() and last.isdigit():
        return True
    return last.startswith("0x") and all(c in _HEX for c in last[2:])
