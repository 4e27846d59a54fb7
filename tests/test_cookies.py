"""Specification of `cookie_gate.cookies`, the byte-level Cookie / Set-Cookie helpers.

The gateway drops refused cookies from the request `Cookie` header and refused
`Set-Cookie` headers from the response, and expires what the visitor refused. It
does so by name only, on raw bytes, so these tests pin three things:

* every cookie it keeps reaches the app byte for byte, whatever the value holds;
* the name it reads is the name a browser stores (checked against the IETF
  http-state vectors, with the RFC 6265 / RFC 6265bis differences marked xfail);
* no header, however malformed, can make a helper raise (property tests).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import NotRequired, TypedDict, cast

import pytest
from hypothesis import given, settings, strategies as st
from publicsuffixlist import PublicSuffixList

from cookie_gate.cookies import (
    MAX_COOKIE_NAME,
    MAX_DOMAIN_ATTRIBUTES,
    MAX_EXPIRED_PER_RESPONSE,
    MAX_EXPIRY_BYTES,
    DomainVariants,
    cookie_segments,
    cookie_value,
    expiries,
    expiring_set_cookies,
    is_deletion,
    join_segments,
    set_cookie_name,
)
from cookie_gate.hosts import AllowedHosts, request_host

DATA = Path(__file__).parent / "data" / "http-state"
WHITESPACE = b" \t"


def drop(header: bytes, names: Iterable[str]) -> bytes:
    """The Cookie header the app sees once the cookies called `names` are removed."""
    refused = set(names)
    return join_segments(segment for name, segment in cookie_segments(header) if name not in refused)


def attributes(set_cookie: bytes) -> list[tuple[str, str]]:
    """The `(lower-cased name, value)` attributes after the name-value pair."""
    pairs = []
    for attribute in set_cookie.split(b";")[1:]:
        key, _, value = attribute.partition(b"=")
        pairs.append((key.strip(WHITESPACE).decode("latin-1").lower(), value.strip(WHITESPACE).decode("latin-1")))
    return pairs


# -- 1. Request `Cookie` header: segments, values, dropping names --------------------------------------------------

SEGMENT_CASES = [
    pytest.param(b'a="x y"; b=2', [("a", b'a="x y"'), ("b", b" b=2")], id="quoted value with a space"),
    pytest.param(
        b'lt={"id":"0.38","d":"2020"}; _ga=GA1.2.3',
        [("lt", b'lt={"id":"0.38","d":"2020"}'), ("_ga", b" _ga=GA1.2.3")],
        id="JSON value with commas and quotes",
    ),
    pytest.param(b"a=b==; c=d", [("a", b"a=b=="), ("c", b" c=d")], id="base64 value: only the first = splits"),
    pytest.param(b"a=1, b=2; c=3", [("a", b"a=1, b=2"), ("c", b" c=3")], id="a comma never splits"),
    pytest.param(b"a=1;\tb=2", [("a", b"a=1"), ("b", b"\tb=2")], id="tab after the separator"),
    pytest.param(b"  A  = BC; d=e", [("A", b"  A  = BC"), ("d", b" d=e")], id="spaces around the name"),
    pytest.param(b"a=1;;b=2", [("a", b"a=1"), ("b", b"b=2")], id="empty segment is dropped"),
    pytest.param(b"a=1; \t ;b=2", [("a", b"a=1"), ("b", b"b=2")], id="whitespace-only segment is dropped"),
    pytest.param(b"a=1;", [("a", b"a=1")], id="trailing separator"),
    pytest.param(b"", [], id="empty header"),
    pytest.param(b"foo; a=1", [("", b"foo"), ("a", b" a=1")], id="nameless segment has the name empty"),
    pytest.param(b"=x; a=1", [("", b"=x"), ("a", b" a=1")], id="empty name before ="),
    pytest.param(b"a=1; a=2", [("a", b"a=1"), ("a", b" a=2")], id="duplicated name kept twice"),
    pytest.param(b"a=" + b"v" * 5000, [("a", b"a=" + b"v" * 5000)], id="5000-byte value"),
    pytest.param(b"a=\xff\xfe; b=1", [("a", b"a=\xff\xfe"), ("b", b" b=1")], id="non-UTF-8 value"),
    pytest.param(b"\xff\xfe=1", [("\xff\xfe", b"\xff\xfe=1")], id="non-UTF-8 name decodes as latin-1"),
    pytest.param(b"caf\xe9=1", [("caf\xe9", b"caf\xe9=1")], id="latin-1 name"),
    pytest.param(b"SID=1; sid=2", [("SID", b"SID=1"), ("sid", b" sid=2")], id="names are case-sensitive"),
]


@pytest.mark.parametrize(("header", "expected"), SEGMENT_CASES)
def test_cookie_header_splits_into_named_raw_segments(header: bytes, expected: list[tuple[str, bytes]]) -> None:
    assert cookie_segments(header) == expected


DROP_CASES = [
    pytest.param(b'a="x y"; t=1; b=2', {"t"}, b'a="x y"; b=2', id="quoted value"),
    pytest.param(b't=1; lt={"id":"0.38","d":"2020"}', {"t"}, b'lt={"id":"0.38","d":"2020"}', id="JSON value"),
    pytest.param(b"t=1; a=b==", {"t"}, b"a=b==", id="base64 value"),
    pytest.param(b"a=1, t=2; t=3", {"t"}, b"a=1, t=2", id="comma inside a kept value"),
    pytest.param(b"a=1;\tt=2;\tb=3", {"t"}, b"a=1;\tb=3", id="tabs"),
    pytest.param(b"  A  = BC; t=1", {"t"}, b"A  = BC", id="spaces around the name; only the outer space goes"),
    pytest.param(b"a=1;;t=2;b=3", {"t"}, b"a=1;b=3", id="empty segments"),
    pytest.param(b"foo; t=1; bar", {"t"}, b"foo; bar", id="nameless segments are kept"),
    pytest.param(b"foo; t=1", {""}, b"t=1", id="nameless segments can be dropped"),
    pytest.param(b"t=1; a=1; t=2; a=2", {"t"}, b"a=1; a=2", id="every duplicate is dropped"),
    pytest.param(b"t=1; big=" + b"v" * 5000, {"t"}, b"big=" + b"v" * 5000, id="5000-byte value"),
    pytest.param(b"a=\xff\xfe; \xff\xfe=1; t=1", {"t"}, b"a=\xff\xfe; \xff\xfe=1", id="non-UTF-8 bytes kept"),
    pytest.param(b"a=\xff\xfe; \xff\xfe=1; t=1", {"\xff\xfe"}, b"a=\xff\xfe; t=1", id="non-UTF-8 name dropped"),
    pytest.param(b"SID=1; sid=2", {"sid"}, b"SID=1", id="dropping sid keeps SID"),
    pytest.param(b"SID=1; sid=2", {"SID"}, b"sid=2", id="dropping SID keeps sid"),
    pytest.param(b"a=1; b=2", set(), b"a=1; b=2", id="nothing dropped"),
    pytest.param(b"a=1; b=2", {"a", "b"}, b"", id="everything dropped"),
]


@pytest.mark.parametrize(("header", "names", "expected"), DROP_CASES)
def test_dropping_names_keeps_every_other_segment_byte_for_byte(
    header: bytes, names: set[str], expected: bytes
) -> None:
    assert drop(header, names) == expected


VALUE_CASES = [
    pytest.param(b'a="x y"', "x y", id="one pair of quotes removed"),
    pytest.param(b'a=""', "", id="empty quoted value"),
    pytest.param(b'a="', '"', id="a lone quote stays"),
    pytest.param(b'a="x"y"', 'x"y', id="only the outer pair goes"),
    pytest.param(b" a = 1 \t", "1", id="whitespace around the value"),
    pytest.param(b"a=b==", "b==", id="= inside the value"),
    pytest.param(b'lt={"id":"0.38"}', '{"id":"0.38"}', id="JSON value"),
    pytest.param(b"a=", "", id="empty value"),
    pytest.param(b"foo", "", id="nameless segment"),
    pytest.param(b"a=\xff\xfe", "\xff\xfe", id="non-UTF-8 value decodes as latin-1"),
]


@pytest.mark.parametrize(("segment", "expected"), VALUE_CASES)
def test_cookie_value_is_the_unquoted_value(segment: bytes, expected: str) -> None:
    assert cookie_value(segment) == expected


# -- 2. `Set-Cookie` name -------------------------------------------------------------------------------------------

SET_COOKIE_NAME_CASES = [
    pytest.param(b"sid=1", "sid", id="plain"),
    pytest.param(b"sid=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/", "sid", id="Expires comma never splits"),
    pytest.param(b"a=1, b=2", "a", id="comma in the value never splits"),
    pytest.param(b"a=b==; Path=/", "a", id="= in the value"),
    pytest.param(b"  sid  =1", "sid", id="spaces around the name"),
    pytest.param(b"\tsid\t=1", "sid", id="tabs around the name"),
    pytest.param(b"foo bar=baz", "foo bar", id="inner space is part of the name"),
    pytest.param(b"sid", "", id="no = is a nameless cookie"),
    pytest.param(b"sid; Path=/", "", id="no = before the first ;"),
    pytest.param(b"=1", "", id="empty name"),
    pytest.param(b"=", "", id="only ="),
    pytest.param(b"", "", id="empty header"),
    pytest.param(b"; Max-Age=0; Path=/", "", id="attributes only"),
    pytest.param(b"Secure; HttpOnly", "", id="attribute-like words without ="),
    pytest.param(b"Path=/; Secure", "Path", id="the first pair is always the cookie, even named Path"),
    pytest.param(b'a="x;y"', "a", id="; inside quotes still ends the pair"),
    pytest.param(b'"a=b"=c', '"a', id="quotes are not special in names"),
    pytest.param(b"__Host-sid=1; Secure; Path=/", "__Host-sid", id="__Host- prefix"),
    pytest.param(b"__Secure-id=1; Secure", "__Secure-id", id="__Secure- prefix"),
    pytest.param(b"SID=1", "SID", id="case kept"),
    pytest.param(b"\xff\xfe=1", "\xff\xfe", id="non-UTF-8 name decodes as latin-1"),
    pytest.param(b"caf\xc3\xa9=1", "caf\xc3\xa9", id="UTF-8 name seen as its latin-1 bytes"),
    pytest.param(b"a=\xff\xfe; Path=/\xff", "a", id="non-UTF-8 value and attribute"),
]


@pytest.mark.parametrize(("header", "expected"), SET_COOKIE_NAME_CASES)
def test_set_cookie_name_is_what_precedes_the_first_equals_sign(header: bytes, expected: str) -> None:
    assert set_cookie_name(header) == expected


# -- 3. IETF http-state vectors (RFC 6265, abarth/http-state) ----------------------------------------------------------


class Sent(TypedDict):
    name: str
    value: str


Vector = TypedDict("Vector", {"test": str, "received": list[str], "sent": list[Sent], "sent-to": NotRequired[str]})

PARSER_JSON = DATA / "parser.json"
VECTORS = cast(list[Vector], json.loads(PARSER_JSON.read_text(encoding="utf-8")))
UPSTREAM_BLOB = "c40ad54b81db97f17258f6b65a33e37d6f70d05c"  # abarth/http-state@155e45c tests/data/parser.json


def wire(text: str) -> bytes:
    """A vector string as the bytes a server sends (the vectors' non-ASCII cases are UTF-8)."""
    return text.encode("utf-8")


def as_name(text: str) -> str:
    """A vector name as cookie_gate sees it: its UTF-8 bytes decoded as latin-1."""
    return wire(text).decode("latin-1")


def single_header(vector: Vector) -> bool:
    """One Set-Cookie and the Cookie header checked on the same URL: the name alone decides."""
    return len(vector["received"]) == 1 and "sent-to" not in vector


SIMPLE = [v for v in VECTORS if single_header(v) and len(v["sent"]) == 1]
NAMELESS = [v for v in VECTORS if single_header(v) and set_cookie_name(wire(v["received"][0])) == ""]

#: Single headers without a name. RFC 6265 (5.2 steps 2 and 5: no `=`, or an empty name) ignores them, so the
#: vectors send nothing; RFC 6265bis, like current browsers, stores a cookie with an empty name and the header's
#: text as its value, sent back as `Cookie: foo`. cookie_gate follows 6265bis: `set_cookie_name` returns "" for
#: them, so the consent filter classifies them under the empty name instead of assuming the browser drops them.
RFC6265BIS_NAMELESS = {
    "0004",  # foo
    "CHROMIUM0009",  # BLAHHH; path=/;
    "CHROMIUM0010",  # "BLA\"HHH"; path=/;
    "CHROMIUM0012",  # =ABC
    "MOZILLA0014",  # six
    "NAME0017",  # =a=bar
    "NAME0023",  # foo;bar=baz
    "NAME0025",  # ===a=bar
    "NAME0028",  # =a
    "NAME0031",  # "foo;bar"=baz
    "NAME0032",  # "foo\"bar;baz"=qux
}
NAMELESS_REASON = (
    "RFC 6265 ignores a Set-Cookie without a name; cookie_gate follows RFC 6265bis and current browsers, "
    "which store it as a nameless cookie (name '', value = the text), so set_cookie_name returns ''"
)


def rfc6265bis_stores_nameless(header: bytes) -> bool:
    """Whether an RFC 6265bis browser stores a cookie for a `Set-Cookie` whose name is empty.

    6265bis parsing: a name-value pair without `=` is all value; whitespace is trimmed; the
    header is ignored when name and value are both empty or together exceed 4096 octets.
    """
    pair = header.partition(b";")[0]
    _, eq, value = pair.partition(b"=")
    value = (value if eq else pair).strip(WHITESPACE)
    return 0 < len(value) <= 4096


def vector_params(vectors: list[Vector], xfail: Collection[str] = (), reason: str = "") -> list[object]:
    """One pytest param per vector, named by its id; the ids in `xfail` are strict xfails."""
    return [
        pytest.param(
            v, id=v["test"], marks=[pytest.mark.xfail(strict=True, reason=reason)] if v["test"] in xfail else []
        )
        for v in vectors
    ]


def test_http_state_vectors_are_the_upstream_file_unchanged() -> None:
    data = PARSER_JSON.read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # what `git hash-object` prints
    assert blob == UPSTREAM_BLOB, "parser.json differs from upstream; mark cases xfail instead of editing the data"


def test_http_state_vector_counts() -> None:
    received = sum(len(v["received"]) for v in VECTORS)
    print(
        f"http-state: {len(VECTORS)} vectors, {received} Set-Cookie values read without error, "
        f"{len(SIMPLE)} single-header names checked, {len(NAMELESS)} nameless headers "
        f"({len(RFC6265BIS_NAMELESS)} xfail: RFC 6265bis), {len(VECTORS)} Cookie headers rebuilt"
    )
    assert (len(VECTORS), received, len(SIMPLE), len(NAMELESS)) == (222, 271, 83, 15)
    assert {v["test"] for v in NAMELESS} >= RFC6265BIS_NAMELESS, "an xfail id does not name a nameless vector"


@pytest.mark.parametrize("vector", vector_params(VECTORS))
def test_http_state_every_set_cookie_is_read_without_error(vector: Vector) -> None:
    for received in vector["received"]:
        assert isinstance(set_cookie_name(wire(received)), str)
        assert isinstance(is_deletion(wire(received)), bool)


@pytest.mark.parametrize("vector", vector_params(SIMPLE))
def test_http_state_name_is_the_name_the_browser_stores(vector: Vector) -> None:
    assert set_cookie_name(wire(vector["received"][0])) == as_name(vector["sent"][0]["name"])


@pytest.mark.parametrize("vector", vector_params(NAMELESS, RFC6265BIS_NAMELESS, NAMELESS_REASON))
def test_http_state_header_without_a_name_is_the_nameless_cookie(vector: Vector) -> None:
    header = wire(vector["received"][0])
    assert set_cookie_name(header) == ""
    assert rfc6265bis_stores_nameless(header) == bool(vector["sent"])


@pytest.mark.parametrize("vector", vector_params(VECTORS))
def test_http_state_cookie_header_sent_back_reads_back(vector: Vector) -> None:
    pairs = [wire(f"{sent['name']}={sent['value']}") for sent in vector["sent"]]
    segments = cookie_segments(b"; ".join(pairs))
    assert [name for name, _ in segments] == [as_name(sent["name"]) for sent in vector["sent"]]
    assert [segment for _, segment in segments] == [(b" " if i else b"") + pair for i, pair in enumerate(pairs)]
    for (_, segment), sent in zip(segments, vector["sent"], strict=True):
        value = sent["value"]
        unquoted = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
        assert cookie_value(segment) == as_name(unquoted)


# -- 4. Deletions -----------------------------------------------------------------------------------------------------

DELETION_CASES = [
    pytest.param(b"a=; Max-Age=0", True, id="Max-Age=0"),
    pytest.param(b"a=b; Max-Age=-1", True, id="Max-Age=-1"),
    pytest.param(b"a=b; max-age=0", True, id="lower-case attribute name"),
    pytest.param(b"a=b; MAX-AGE = 0 ", True, id="whitespace around name and value"),
    pytest.param(b"a=b; Max-Age=-0", True, id="Max-Age=-0"),
    pytest.param(b"a=b; Max-Age=3600; Max-Age=0", True, id="the last Max-Age wins"),
    pytest.param(b"a=b; Max-Age=abc; Max-Age=0", True, id="an invalid Max-Age is skipped"),
    pytest.param(b"a=b; Max-Age=abc", False, id="Max-Age=abc is not a deletion"),
    pytest.param(b"a=b", False, id="no Max-Age"),
    pytest.param(b"a=b; Max-Age=3600", False, id="positive Max-Age"),
    pytest.param(b"a=b; Max-Age=0; Max-Age=3600", False, id="a later positive Max-Age keeps the cookie"),
    pytest.param(b"a=b; Max-Age=", False, id="empty Max-Age"),
    pytest.param(b"a=b; Max-Age", False, id="Max-Age without ="),
    pytest.param(b"a=b; Max-Age=-", False, id="a lone minus"),
    pytest.param(b"a=b; Max-Age=+0", False, id="a plus sign makes browsers ignore it"),
    pytest.param(b"a=b; Max-Age=0_0", False, id="Python digit separators are not digits"),
    pytest.param(b"a=b; Max-Age=0.5", False, id="decimal"),
    pytest.param(b"a=b; Max-Age=\x0b0", False, id="vertical tab is not cookie whitespace"),
    pytest.param(b"a=b; Max-Age=" + b"0" * 1025, False, id="attribute value over 1024 bytes is ignored"),
    pytest.param(b"a=b; Max-Age=\xff", False, id="non-UTF-8 Max-Age"),
    pytest.param(b"Max-Age=0", False, id="a cookie named Max-Age"),
    pytest.param(b"a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT", False, id="Expires alone is not read"),
]


@pytest.mark.parametrize(("header", "expected"), DELETION_CASES)
def test_is_deletion_when_the_browser_reads_max_age_at_most_zero(header: bytes, expected: bool) -> None:
    assert is_deletion(header) is expected


# -- 5. Host header: see test_hosts.py --------------------------------------------------------------------------------

# -- 6. Domains a cookie may have been set under (real public suffix list) ---------------------------------------------


@pytest.fixture(scope="module")
def psl() -> PublicSuffixList:
    return PublicSuffixList()


@pytest.fixture(scope="module")
def variants(psl: PublicSuffixList) -> DomainVariants:
    return DomainVariants(psl.privatesuffix)


DOMAIN_CASES = [
    pytest.param(
        "www.shop.example.co.kr",
        ("", "www.shop.example.co.kr", "shop.example.co.kr", "example.co.kr"),
        id="stops at the registrable domain under co.kr",
    ),
    pytest.param("example.com", ("", "example.com"), id="registrable domain itself"),
    pytest.param("foo.github.io", ("", "foo.github.io"), id="private PSL section: github.io is a suffix"),
    pytest.param("github.io", ("",), id="private public suffix"),
    pytest.param("co.kr", ("",), id="bare public suffix"),
    pytest.param("localhost", ("",), id="single label"),
    pytest.param("127.0.0.1", ("",), id="IPv4"),
    pytest.param("::1", ("",), id="IPv6"),
    pytest.param("", ("",), id="no host"),
]


@pytest.mark.parametrize(("host", "expected"), DOMAIN_CASES)
def test_domain_variants_walk_up_to_the_registrable_domain(
    variants: DomainVariants, host: str, expected: tuple[str, ...]
) -> None:
    assert variants.domains(host) == expected


@pytest.mark.parametrize(
    "host",
    [
        "www.shop.example.co.kr",
        "a.b.c.example.com",
        "foo.github.io",
        "x.y.s3.amazonaws.com",
        "Example.COM",
        "example.com.",
    ],
)
def test_domain_variants_never_name_a_public_suffix(psl: PublicSuffixList, variants: DomainVariants, host: str) -> None:
    domains = variants.domains(host)
    assert domains[0] == ""
    assert len(set(domains)) == len(domains)
    for domain in domains[1:]:
        assert psl.privatesuffix(domain) is not None, domain


def test_domain_variants_ask_the_suffix_list_once_per_host_and_never_for_ips() -> None:
    asked: list[str] = []

    def registrable(host: str) -> str | None:
        asked.append(host)
        return "example.com"

    variants = DomainVariants(registrable)
    for _ in range(3):
        assert variants.domains("www.example.com") == ("", "www.example.com", "example.com")
        assert variants.domains("10.0.0.1") == ("",)
    assert asked == ["www.example.com"]


def test_domain_variants_stay_host_only_when_the_registrable_domain_is_not_a_suffix() -> None:
    assert DomainVariants(lambda host: "other.org").domains("www.example.com") == ("",)


def test_a_deep_host_is_expired_under_itself_and_the_names_nearest_its_registrable_domain(
    variants: DomainVariants,
) -> None:
    host = "a.b.c.d.e.f.g.shop.example.co.kr"
    assert variants.domains(host) == ("", host, "g.shop.example.co.kr", "shop.example.co.kr", "example.co.kr")
    longest = "a." * 120 + "example.com"
    assert len(variants.domains(longest)) == 1 + MAX_DOMAIN_ATTRIBUTES


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.shop.example.co.kr", ("", "www.shop.example.co.kr", "shop.example.co.kr", "example.co.kr")),
        ("shop.example.co.kr", ("", "shop.example.co.kr", "example.co.kr")),
        ("www.elsewhere.example", ("",)),
        ("shop.example.co.kr.evil.example", ("",)),
    ],
)
def test_hosts_outside_allowed_hosts_get_host_only_deletions(
    psl: PublicSuffixList, host: str, expected: tuple[str, ...]
) -> None:
    variants = DomainVariants(psl.privatesuffix, AllowedHosts([".shop.example.co.kr"]))
    assert variants.domains(host) == expected


def test_expiries_stop_at_the_cookie_limit() -> None:
    names = [f"_ga_{n}" for n in range(100)]
    headers = expiries(names, DOMAINS, secure=False)
    assert [set_cookie_name(h) for h in headers[:: len(DOMAINS)]] == names[:MAX_EXPIRED_PER_RESPONSE]
    assert len(headers) == MAX_EXPIRED_PER_RESPONSE * len(DOMAINS)


def test_expiries_stop_at_the_byte_limit_but_always_expire_the_first_cookie() -> None:
    long_domains = ("", "a" * 60 + ".example.com", "b" * 60 + ".example.com", "example.com")
    names = ["x" * 1000 + str(n) for n in range(10)]
    headers = expiries(names, long_domains, secure=True)
    one_cookie = sum(map(len, expiring_set_cookies(names[0], long_domains, secure=True)))
    assert sum(map(len, headers)) <= MAX_EXPIRY_BYTES
    assert len(headers) == len(long_domains) * (MAX_EXPIRY_BYTES // one_cookie)
    huge = ["y" * 3000]
    assert len(expiries(huge, long_domains, secure=True)) == len(long_domains)


def test_expiries_pass_over_names_no_browser_could_store() -> None:
    headers = expiries(["z" * (MAX_COOKIE_NAME + 1), "_ga"], DOMAINS, secure=False)
    assert {set_cookie_name(h) for h in headers} == {"_ga"}


# -- 7. Expiring refused cookies ------------------------------------------------------------------------------------

DOMAINS = ("", "www.example.com", "example.com")


def test_expiring_headers_expire_under_every_domain_at_the_root_path() -> None:
    headers = expiring_set_cookies("_ga", DOMAINS, secure=False)
    assert headers[0] == b"_ga=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"
    assert len(headers) == len(DOMAINS)
    for header, domain in zip(headers, DOMAINS, strict=True):
        attrs = attributes(header)
        assert ("max-age", "0") in attrs
        assert ("path", "/") in attrs
        assert [v for k, v in attrs if k == "domain"] == ([domain] if domain else [])
        assert ("secure", "") not in attrs
        assert is_deletion(header)


@pytest.mark.parametrize("name", ["__Host-x", "__HOST-x", "__host-x"])
@pytest.mark.parametrize("secure", [False, True])
def test_host_prefixed_cookie_is_expired_host_only_and_secure(name: str, secure: bool) -> None:
    assert expiring_set_cookies(name, DOMAINS, secure) == [
        name.encode() + b"=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure"
    ]


@pytest.mark.parametrize("name", ["__Secure-x", "__SECURE-x", "__secure-x"])
def test_secure_prefixed_cookie_is_expired_with_secure_under_every_domain(name: str) -> None:
    headers = expiring_set_cookies(name, DOMAINS, secure=False)
    assert len(headers) == len(DOMAINS)
    assert all(("secure", "") in attributes(header) for header in headers)


def test_secure_request_adds_secure_to_every_header() -> None:
    headers = expiring_set_cookies("sid", DOMAINS, secure=True)
    assert len(headers) == len(DOMAINS)
    assert all(("secure", "") in attributes(header) for header in headers)


ODD_NAMES = [
    "sid",
    "_ga_ABC123",
    "__Host-x",
    "__Secure-x",
    "$Version",
    '"a',
    "foo bar",
    "a,b",
    "{json}",
    "!#$%&'*+-.^_`|~",
    "\xff\xfe",
    "caf\xc3\xa9",
]


@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize("secure", [False, True])
def test_expiring_header_names_the_cookie_it_expires(name: str, secure: bool) -> None:
    for header in expiring_set_cookies(name, DOMAINS, secure):
        assert set_cookie_name(header) == name
        assert is_deletion(header)


# -- 8. Properties: any bytes, never an exception, never a changed kept byte ------------------------------------------

# Bytes that matter to the parsers, so that random headers hit the interesting paths.
cookieish = st.lists(
    st.sampled_from([b"a", b"B", b"=", b";", b" ", b"\t", b'"', b",", b"\xff", b"\x00", b"-", b"0"])
).map(b"".join)
any_bytes = st.one_of(st.binary(max_size=300), cookieish)
segment_bytes = any_bytes.map(lambda raw: raw.replace(b";", b"")).filter(lambda raw: raw.strip(WHITESPACE) != b"")


@given(any_bytes)
def test_no_cookie_header_makes_the_request_helpers_raise(header: bytes) -> None:
    segments = cookie_segments(header)
    for name, segment in segments:
        assert isinstance(name, str)
        assert isinstance(cookie_value(segment), str)
        for header_value in expiring_set_cookies(name, DOMAINS, secure=False):
            assert is_deletion(header_value)
    assert isinstance(join_segments(segment for _, segment in segments), bytes)


@given(any_bytes)
def test_no_set_cookie_value_makes_the_response_helpers_raise(header: bytes) -> None:
    assert isinstance(set_cookie_name(header), str)
    assert isinstance(is_deletion(header), bool)


@settings(deadline=None)
@given(any_bytes)
def test_no_host_header_makes_the_domain_helpers_raise(variants: DomainVariants, raw: bytes) -> None:
    domains = variants.domains(request_host(raw))
    assert domains[0] == ""


@given(st.lists(segment_bytes, min_size=1))
def test_joining_all_segments_gives_back_the_header(segments: list[bytes]) -> None:
    header = b";".join(segments).lstrip(WHITESPACE)
    assert join_segments(segment for _, segment in cookie_segments(header)) == header


@given(st.lists(segment_bytes), st.data())
def test_dropping_names_never_alters_kept_segments(segments: list[bytes], data: st.DataObject) -> None:
    header = b";".join(segments)
    parsed = cookie_segments(header)
    names = data.draw(st.sets(st.sampled_from(sorted({n for n, _ in parsed}))) if parsed else st.just(set[str]()))
    kept = [segment for name, segment in parsed if name not in names]
    result = drop(header, names)
    if not kept:
        assert result == b""
        return
    assert result.split(b";") == [kept[0].lstrip(WHITESPACE), *kept[1:]]
    assert [name for name, _ in cookie_segments(result)] == [name for name, _ in parsed if name not in names]


@given(any_bytes, st.booleans())
def test_every_name_read_from_a_request_round_trips_through_its_expiry(header: bytes, secure: bool) -> None:
    for name, _ in cookie_segments(header):
        for header_value in expiring_set_cookies(name, DOMAINS, secure):
            assert set_cookie_name(header_value) == name
