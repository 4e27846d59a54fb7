"""Referrers that are IP addresses are counted under one bucket and never stored (issue 7)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.referrer import IP_ADDRESS, is_ip_literal, referrer_host, stored_referrer
from cookie_gate.stats.report import build_report
from cookie_gate.stats.writer import CountedView, StatsWriter
from cookie_gate.store.sql import StatsBatch
from cookie_gate.store.sqlite import SQLiteStore

CLOCK = SiteClock("UTC")
NOW = 1_796_000_000.0  # 2026-12-01, a Tuesday
CHROME = (
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)

IP_REFERRERS = [
    "http://10.20.30.40/",
    "https://10.20.30.40:8443/admin?x=1",
    "http://[::1]/",
    "http://[2001:DB8::99]:8080/",
    "http://[fe80::1%25eth0]/",
    "http://[::ffff:10.20.30.40]/",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/",  # hexadecimal, and a short form
    "http://0177.0.0.1/",  # octal
    "http://127.1/",
    "http://0X7F000001/",
    "http://10.20.30.40./",  # a trailing dot
    "http://%31%30.20.30.%34%30/",  # percent-escaped digits
    "http://１０.２０.３０.４０/",  # full-width digits
    "http://10。20。30。40/",  # ideographic full stops
    "http://user:secret@10.20.30.40/",
    "http://10.20.30.40.nip.io/",  # wildcard DNS that spells the address out
    "http://10-20-30-40.sslip.io/",
    "http://app.10.20.30.40.example/",
]
NAMES = [
    ("https://www.google.com/search?q=x", "www.google.com"),
    ("https://search.naver.com/", "search.naver.com"),
    ("https://web.1password.com/", "web.1password.com"),
    ("https://1-800-flowers.com/", "1-800-flowers.com"),
    ("https://www.123.com/", "www.123.com"),
    ("https://shop.example:8443/", "shop.example"),
    ("https://v1.2.example/", "v1.2.example"),
    ("https://x.y.0z/", "x.y.0z"),
]


@pytest.mark.parametrize("referrer", IP_REFERRERS)
def test_an_ip_address_referrer_is_stored_as_the_bucket(referrer: str) -> None:
    assert stored_referrer(referrer_host(referrer.encode("utf-8"))) == IP_ADDRESS


@pytest.mark.parametrize("referrer, host", NAMES)
def test_a_host_name_referrer_is_stored_as_it_is(referrer: str, host: str) -> None:
    assert stored_referrer(referrer_host(referrer.encode())) == host


@given(st.ip_addresses())
def test_every_ip_address_in_its_standard_form_is_an_ip_literal(address: IPv4Address | IPv6Address) -> None:
    text = str(address)
    assert is_ip_literal(text)
    assert stored_referrer(referrer_host(f"http://{'[' + text + ']' if ':' in text else text}/".encode())) == IP_ADDRESS


@given(st.ip_addresses(v=4))
def test_browser_spellings_of_an_ipv4_address_are_ip_literals(address: IPv4Address) -> None:
    number = int(address)
    for spelling in (str(number), hex(number), "0" + oct(number)[2:], f"{number >> 24}.{number & 0xFFFFFF}"):
        assert is_ip_literal(spelling), spelling


def test_the_writer_counts_ip_referrers_as_entries_in_one_bucket_and_stores_no_address(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "referrers.sqlite3")
    writer = StatsWriter(store, CLOCK, capacity=100, interval=60.0, daily_hash=False)
    referrers = [*IP_REFERRERS, "https://www.google.com/", "http://www.shop.example/internal"]
    for referrer in referrers:
        writer.record(CountedView(NOW, "/", b"www.shop.example", CHROME, referrer.encode("utf-8"), None, None, False))
    writer.stop()
    report = build_report(store, CLOCK, days=1, now=NOW)
    store.close()
    assert report["pageviews"] == len(referrers)
    assert report["entries"] == len(referrers) - 1  # a page of the site itself is no entry
    assert report["referrers"] == [
        {"host": IP_ADDRESS, "entries": len(IP_REFERRERS)},
        {"host": "www.google.com", "entries": 1},
    ]
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    for needle in (b"10.20.30.40", b"10-20-30-40", b"2001:db8::99", b"2130706433", b"0x7f.1", b"127.1", b"fe80"):
        assert needle not in stored.lower(), needle


def test_referrers_stored_before_the_bucket_existed_are_reported_in_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "old.sqlite3")
    day = CLOCK.at(NOW).day_key
    store.add_stats(StatsBatch(detail={(day, "referrer", "10.20.30.40"): 2, (day, "referrer", "::1"): 1}))
    report = build_report(store, CLOCK, days=1, now=NOW)
    store.close()
    assert report["referrers"] == [{"host": IP_ADDRESS, "entries": 3}]
