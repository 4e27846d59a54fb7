"""Specification of `cookie_gate.hosts`: which Host headers name a host the gateway may trust.

A refused cookie is expired under every parent Domain of the host, so a Host header
is an amplifier: only RFC 1123 host names (and IP literals, host-only) may earn that
walk, and `allowed_hosts` may narrow it further.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from cookie_gate.hosts import MAX_HOST_NAME, AllowedHosts, host_pattern_problem, is_host_name, is_ip, request_host

HOST_CASES = [
    pytest.param(b"Example.COM:8080", "example.com", id="lower-cased, port removed"),
    pytest.param(b"example.com", "example.com", id="plain"),
    pytest.param(b"example.com.", "example.com", id="trailing dot"),
    pytest.param(b"example.com.:8080", "example.com", id="trailing dot and port"),
    pytest.param(b"127.0.0.1:8000", "127.0.0.1", id="IPv4 with port"),
    pytest.param(b"127.0.0.1", "127.0.0.1", id="IPv4"),
    pytest.param(b"[::1]:8000", "::1", id="IPv6 with port"),
    pytest.param(b"[::1]", "::1", id="IPv6"),
    pytest.param(b"[2001:DB8::1]:443", "2001:db8::1", id="IPv6 lower-cased"),
    pytest.param(b"[2001:db8:0:0:0:0:0:1]", "2001:db8::1", id="IPv6 compressed"),
    pytest.param(b" example.com ", "example.com", id="surrounding whitespace"),
    pytest.param(b"localhost", "localhost", id="single label"),
    pytest.param(b"xn--bcher-kva.example", "xn--bcher-kva.example", id="punycode"),
    pytest.param(b"a1-b.9z.example", "a1-b.9z.example", id="digits and inner hyphens"),
    pytest.param(b"", "", id="empty"),
    pytest.param(b"\xff.example", "", id="non-ASCII byte"),
    pytest.param(b"b\xc3\xbccher.example", "", id="raw UTF-8 (browsers send punycode)"),
    pytest.param(b"exa_mple.com", "", id="underscore"),
    pytest.param(b"-a.example", "", id="label starts with a hyphen"),
    pytest.param(b"a-.example", "", id="label ends with a hyphen"),
    pytest.param(b"a..example", "", id="empty label"),
    pytest.param(b".example.com", "", id="leading dot"),
    pytest.param(b"example.com..", "", id="two trailing dots"),
    pytest.param(b"a" * 64 + b".example", "", id="64-character label"),
    pytest.param(b"a" * 63 + b".example", "a" * 63 + ".example", id="63-character label"),
    pytest.param(b"a." * 125 + b"com", "a." * 125 + "com", id="253 characters"),
    pytest.param(b"a." * 126 + b"com", "", id="255 characters"),
    pytest.param(b"a." * 1000 + b"com", "", id="2 KB of labels"),
    pytest.param(b"1.2.3", "", id="numeric last label (an IPv4 address to URL parsers)"),
    pytest.param(b"256.1.1.1", "", id="IPv4 out of range"),
    pytest.param(b"example.com:", "", id="empty port"),
    pytest.param(b"example.com:99999", "", id="port out of range"),
    pytest.param(b"example.com:80:80", "", id="two ports"),
    pytest.param(b"example.com:8o", "", id="port with a letter"),
    pytest.param(b"[::1", "", id="unclosed bracket"),
    pytest.param(b"[::1]x", "", id="junk after the bracket"),
    pytest.param(b"[example.com]", "", id="host name in brackets"),
    pytest.param(b"::1", "", id="IPv6 without brackets"),
    pytest.param(b"user@example.com", "", id="userinfo"),
    pytest.param(b"example.com/path", "", id="path"),
    pytest.param(b"exa mple.com", "", id="inner space"),
    pytest.param(b"example.com\r\nx: y", "", id="CR LF"),
    pytest.param(b"example.com\x00", "", id="NUL"),
]


@pytest.mark.parametrize(("raw", "expected"), HOST_CASES)
def test_request_host_is_the_bare_lower_case_host_or_nothing(raw: bytes, expected: str) -> None:
    assert request_host(raw) == expected


@given(st.one_of(st.binary(max_size=400), st.text(alphabet="aZ0-.:[]_ \xff", max_size=300).map(str.encode)))
def test_any_host_header_reads_as_a_host_name_an_ip_or_nothing(raw: bytes) -> None:
    host = request_host(raw)
    assert host == "" or is_ip(host) or is_host_name(host)
    assert len(host) <= MAX_HOST_NAME
    assert host == host.lower()


@pytest.mark.parametrize(
    ("host", "expected"), [("127.0.0.1", True), ("::1", True), ("2001:db8::1", True), ("example.com", False)]
)
def test_ip_addresses_are_recognised(host: str, expected: bool) -> None:
    assert is_ip(host) is expected


ALLOWED_CASES = [
    pytest.param((), "anything.example", True, id="no patterns: every host"),
    pytest.param(("*",), "anything.example", True, id="star"),
    pytest.param(("shop.example",), "shop.example", True, id="exact"),
    pytest.param(("shop.example",), "www.shop.example", False, id="exact does not cover subdomains"),
    pytest.param(("Shop.Example.",), "shop.example", True, id="patterns are lower-cased, trailing dot dropped"),
    pytest.param((".shop.example",), "shop.example", True, id="leading dot: the domain itself"),
    pytest.param((".shop.example",), "a.b.shop.example", True, id="leading dot: any subdomain"),
    pytest.param((".shop.example",), "evilshop.example", False, id="leading dot is not a bare suffix"),
    pytest.param((".shop.example",), "shop.example.evil", False, id="not a prefix match"),
    pytest.param(("shop.example", "127.0.0.1"), "other.example", False, id="a list restricts"),
]


@pytest.mark.parametrize(("patterns", "host", "expected"), ALLOWED_CASES)
def test_allowed_hosts_match_like_djangos(patterns: tuple[str, ...], host: str, expected: bool) -> None:
    assert AllowedHosts(patterns).allows(host) is expected


@pytest.mark.parametrize("pattern", ["*", "example.com", ".example.com", "localhost", "127.0.0.1", "[::1]", "::1"])
def test_allowed_host_patterns_that_pass(pattern: str) -> None:
    assert host_pattern_problem(pattern) is None


@pytest.mark.parametrize("pattern", ["", "*.example.com", "https://example.com", "example.com:8000", "a b", ".", ".."])
def test_allowed_host_patterns_that_do_not(pattern: str) -> None:
    assert host_pattern_problem(pattern) is not None
