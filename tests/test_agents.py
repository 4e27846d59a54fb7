"""Tests for User-Agent classification (cookie_gate.stats.agents).

Data comes from tests/data (see tests/data/README.md): uap-core's conformance suite
(browser/OS/device families, with bots labelled as device "Spider") and the
crawler-user-agents list's example strings. The classifier itself reads the crawler
patterns from the installed `crawleruseragents` package, which may be newer than the
snapshot here; the recall test therefore also catches a package update that drops or
breaks patterns. uap-core's device file is the held-out set for false positives: the
only adjustments made for it are the documented `_PATTERN_OVERRIDES`.

Every test uses a fresh classifier, so "uncached" figures really are uncached.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import user_agents
import yaml
from hypothesis import given, settings, strategies as st

from cookie_gate.stats import agents
from cookie_gate.stats.agents import Agent, AgentClassifier

DATA = Path(__file__).resolve().parent / "data"
CRAWLERS = DATA / "crawler-user-agents" / "crawler-user-agents.json"
UAP = DATA / "uap-core"

DEVICE_CLASSES = {"mobile", "tablet", "desktop", "other"}
BOT_CLASSES = {*agents.BOT_CLASS_PRIORITY, agents.OTHER}

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)


@functools.cache
def _yaml_cases(name: str) -> list[dict[str, Any]]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 0.5 s instead of 3 s for test_device
    with (UAP / name).open(encoding="utf-8") as f:
        cases: list[dict[str, Any]] = yaml.load(f, Loader=loader)["test_cases"]
    return cases


@functools.cache
def crawler_entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(CRAWLERS.read_text(encoding="utf-8"))
    return entries


@functools.cache
def crawler_instances() -> list[str]:
    return [ua for entry in crawler_entries() for ua in entry.get("instances", [])]


@functools.cache
def installed_crawler_entries() -> list[dict[str, Any]]:
    text = resources.files("crawleruseragents").joinpath("crawler-user-agents.json").read_text(encoding="utf-8")
    entries: list[dict[str, Any]] = json.loads(text)
    return entries


def _share(count: int, total: int) -> str:
    return f"{count}/{total} = {100 * count / total:.2f}%"


# --- (a) recall ------------------------------------------------------------------------------------------------


def test_flags_at_least_99_percent_of_the_crawler_list_examples_as_bots() -> None:
    classifier = AgentClassifier()
    instances = crawler_instances()
    assert len(instances) == 2116
    results = [classifier.classify(ua) for ua in instances]
    flagged = sum(agent.bot is not None for agent in results)
    by_ua_parser = sum(user_agents.parse(ua).is_bot for ua in instances)  # the dependency alone, for comparison
    classes = collections.Counter(agent.bot for agent in results)
    alone = _share(by_ua_parser, len(instances))
    print(f"\nrecall: {_share(flagged, len(instances))} (user-agents is_bot alone: {alone})")
    print("bot classes over the crawler examples:", dict(classes.most_common()))
    missed = [ua for ua, agent in zip(instances, results, strict=True) if agent.bot is None]
    print("missed:", missed[:10])
    assert flagged / len(instances) >= 0.99
    assert round(by_ua_parser / len(instances), 3) == 0.596  # the data README's figure: is_bot alone is not enough


def test_bot_class_is_the_highest_priority_tag_of_every_matching_entry() -> None:
    """The fast path (trie + per-class sets) agrees with naively trying each installed entry."""
    entries = agents.crawler_entries()
    compiled = [(re.compile(pattern), bot_class) for pattern, bot_class in entries]
    rank = {bot_class: i for i, bot_class in enumerate((*agents.BOT_CLASS_PRIORITY, agents.OTHER))}
    classifier = AgentClassifier()
    corpus = crawler_instances() + [case["user_agent_string"] for case in _yaml_cases("test_ua.yaml")[:400]]
    for ua in (ua[: agents.MAX_UA_LENGTH] for ua in corpus if ua.strip()):
        matching = [bot_class for regex, bot_class in compiled if regex.search(ua)]
        if matching:
            expected: str | None = min(matching, key=rank.__getitem__)
        else:  # no crawler entry: only ua-parser's own verdict can make it a bot
            expected = agents.OTHER if user_agents.parse(ua).is_bot else None
        assert classifier.classify(ua).bot == expected, ua


def test_every_installed_crawler_entry_is_used_and_every_override_still_applies() -> None:
    installed = installed_crawler_entries()
    assert AgentClassifier().crawler_patterns == len(installed)  # none skipped as empty or invalid
    by_pattern = {entry["pattern"]: entry for entry in installed}
    for upstream, stricter in agents.PATTERN_OVERRIDES.items():
        assert upstream in by_pattern, f"override for a pattern the list no longer has: {upstream!r}"
        for example in by_pattern[upstream].get("instances", []):
            assert re.search(stricter, example), (upstream, example)  # the override loses no recall
    unknown_tags = {tag for entry in installed for tag in entry.get("tags", [])} - BOT_CLASSES
    assert not unknown_tags, f"new crawler tags to place in BOT_CLASS_PRIORITY: {unknown_tags}"


# --- (b) precision ---------------------------------------------------------------------------------------------


def test_flags_at_most_half_a_percent_of_uap_core_non_bot_user_agents() -> None:
    """All 16,056 non-Spider strings, uncached: the slowest test (~8 s), also the timing figure."""
    cases = _yaml_cases("test_device.yaml")
    people = [case for case in cases if case["family"] != "Spider"]
    spiders = [case["user_agent_string"] for case in cases if case["family"] == "Spider"]
    assert (len(people), len(spiders)) == (16056, 73)
    classifier = AgentClassifier(cache_size=0)
    started = time.perf_counter()
    flagged = [(case, agent) for case in people if (agent := classifier.classify(case["user_agent_string"])).bot]
    elapsed = time.perf_counter() - started
    print(f"\nfalse positives: {_share(len(flagged), len(people))}; uncached {1e6 * elapsed / len(people):.0f} us/UA")
    print("flagged, by bot class:", dict(collections.Counter(agent.bot for _, agent in flagged)))
    print("flagged, by browser family:", dict(collections.Counter(agent.browser for _, agent in flagged)))
    spider_hits = sum(classifier.classify(ua).bot is not None for ua in spiders)
    print(f"uap-core Spider cases flagged: {_share(spider_hits, len(spiders))}")
    assert len(flagged) / len(people) <= 0.005
    assert spider_hits == len(spiders)


# --- (c) conformance pin ---------------------------------------------------------------------------------------


def test_browser_and_os_families_match_uap_core_exactly() -> None:
    """Pinned: a user-agents / ua-parser / builtins bump that changes parsing must be noticed here."""
    classifier = AgentClassifier()
    ua_cases = _yaml_cases("test_ua.yaml")
    os_cases = _yaml_cases("test_os.yaml")
    browsers = sum(classifier.classify(case["user_agent_string"]).browser == case["family"] for case in ua_cases)
    systems = sum(classifier.classify(case["user_agent_string"]).os == case["family"] for case in os_cases)
    print(f"\nconformance: browser {browsers}/{len(ua_cases)}, OS {systems}/{len(os_cases)}")
    assert (browsers, len(ua_cases)) == (1601, 1601)
    assert (systems, len(os_cases)) == (483, 483)


# --- (d) hand-picked classes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (IPHONE_SAFARI, Agent("Mobile Safari", "iOS", "mobile", None)),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
            "Mobile/15E148 Safari/604.1",
            Agent("Mobile Safari", "iOS", "tablet", None),
        ),
        (WINDOWS_CHROME, Agent("Chrome", "Windows", "desktop", None)),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
            "Mobile Safari/537.36",
            Agent("Chrome Mobile", "Android", "mobile", None),
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
            "Safari/537.36",
            Agent("Chrome", "Android", "tablet", None),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0",
            Agent("Firefox", "Mac OS X", "desktop", None),
        ),
        (  # a real phone whose model name the upstream `Butterfly` pattern used to match
            "Mozilla/5.0 (Linux; Android 4.1.1; HTC Butterfly Build/JRO03C) AppleWebKit/535.19 (KHTML, like Gecko) "
            "Chrome/18.0.1025.166 Mobile Safari/535.19",
            Agent("Chrome Mobile", "Android", "mobile", None),
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Agent("Googlebot", "Other", "other", "search-engine"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/41.0.2272.96 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            Agent("Googlebot", "Android", "mobile", "search-engine"),
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
            Agent("GPTBot", "Other", "other", "ai-crawler"),
        ),
        (  # tagged ai-crawler and search-engine: ai-crawler has priority
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; OAI-SearchBot/1.0; "
            "+https://openai.com/searchbot",
            Agent("OAI-SearchBot", "Other", "other", "ai-crawler"),
        ),
        ("Mediapartners-Google", Agent("Mediapartners-Google", "Other", "mobile", "advertising")),
        (
            "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
            Agent("UptimeRobot", "Other", "other", "monitoring"),
        ),
        (
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            Agent("AhrefsBot", "Other", "other", "seo"),
        ),
        ("WhatsApp/2.23.20.0 A", Agent("WhatsApp", "Other", "other", "social-preview")),  # the link-preview fetcher
        ("python-requests/2.31.0", Agent("Python Requests", "Other", "other", "http-library")),
        ("curl/8.4.0", Agent("curl", "Other", "other", "http-library")),
        ("Wget/1.21.4", Agent("Wget", "Other", "other", "http-library")),
        ("", Agent("Other", "Other", "other", "other")),
        ("   ", Agent("Other", "Other", "other", "other")),
    ],
    ids=[
        "iphone-safari",
        "ipad-safari",
        "windows-chrome",
        "android-phone-chrome",
        "android-tablet-chrome",
        "mac-firefox",
        "htc-butterfly-phone",
        "googlebot",
        "googlebot-smartphone",
        "gptbot",
        "oai-searchbot",
        "mediapartners-google",
        "uptimerobot",
        "ahrefsbot",
        "whatsapp",
        "python-requests",
        "curl",
        "wget",
        "empty",
        "blank",
    ],
)
def test_classifies_hand_picked_user_agents(user_agent: str, expected: Agent) -> None:
    assert AgentClassifier().classify(user_agent) == expected


def test_a_generic_bot_unknown_to_the_crawler_list_is_still_a_bot() -> None:
    agent = AgentClassifier().classify("Mozilla/5.0 (compatible; Zqx7ExampleBot/1.0; +https://bot.example)")
    assert agent.bot == agents.OTHER  # ua-parser's "Spider", no crawler-list entry


# --- (e) caching -----------------------------------------------------------------------------------------------


def test_classifying_the_same_string_again_is_a_cache_hit() -> None:
    classifier = AgentClassifier(cache_size=8)
    first = classifier.classify(IPHONE_SAFARI)
    before = classifier.cache_stats
    second = classifier.classify(IPHONE_SAFARI)
    after = classifier.cache_stats
    assert second is first  # the very object cached, not an equal re-parse
    assert (after.entries, after.misses) == (before.entries, before.misses) == (1, 1)
    for n in range(20):
        classifier.classify(f"{WINDOWS_CHROME} build/{n}")
    assert classifier.cache_stats.entries == 8  # bounded by cache_size


def test_very_long_user_agents_are_cut_before_caching_and_parsing() -> None:
    classifier = AgentClassifier()
    head = WINDOWS_CHROME + " " + "x" * agents.MAX_UA_LENGTH
    first = classifier.classify(head + "a" * 100_000)
    assert classifier.classify(head + "b" * 50) is first  # same 1,024-character key
    assert classifier.cache_stats.entries == 1
    assert first == Agent("Chrome", "Windows", "desktop", None)


def test_cached_and_uncached_timings() -> None:
    """Figures only (no timing assertion): 2,000 distinct uap-core strings, a miss pass then a hit pass."""
    distinct = sorted({case["user_agent_string"] for case in _yaml_cases("test_device.yaml")})
    sample = random.Random(2000).sample(distinct, 2000)
    classifier = AgentClassifier(cache_size=len(sample))
    started = time.perf_counter()
    for ua in sample:
        classifier.classify(ua)
    misses = time.perf_counter() - started
    started = time.perf_counter()
    for ua in sample:
        classifier.classify(ua)
    hits = time.perf_counter() - started
    per_miss, per_hit = 1e6 * misses / len(sample), 1e6 * hits / len(sample)
    print(f"\n{len(sample)} distinct UAs: uncached {per_miss:.0f} us, cached {per_hit:.2f} us")
    assert classifier.cache_stats.misses == len(sample)  # the second pass was all hits


# --- (f) privacy -----------------------------------------------------------------------------------------------

MARKER = "Zq7uniqueMarker93"


@pytest.mark.parametrize(
    "user_agent",
    [
        f"{WINDOWS_CHROME} {MARKER}",
        f"{WINDOWS_CHROME} {MARKER}/4.5.6",
        IPHONE_SAFARI.replace("(iPhone;", f"(iPhone; {MARKER};"),
        f"Mozilla/5.0 (Windows NT 10.0; {MARKER}) Gecko/20100101 Firefox/125.0",
        f"{MARKER}",
        f"Mozilla/5.0 ({MARKER})",
    ],
    ids=["appended", "appended-product", "iphone-comment", "firefox-comment", "alone", "alone-in-comment"],
)
def test_no_field_keeps_a_token_of_the_raw_user_agent(user_agent: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        agent = AgentClassifier().classify(user_agent)
    assert MARKER not in repr(agent)  # the dataclass repr shows every field
    assert all(MARKER not in str(getattr(agent, field.name)) for field in fields(agent))
    assert not caplog.records  # nothing logged at all, with or without the UA


def test_agent_holds_only_families_and_classes() -> None:
    assert [field.name for field in fields(Agent)] == ["browser", "os", "device", "bot"]
    assert not hasattr(Agent("a", "b", "other", None), "__dict__")  # slots: nothing else can be attached
    classifier = AgentClassifier()
    cases: Sequence[Mapping[str, Any]] = _yaml_cases("test_ua.yaml")
    for case in cases:
        agent = classifier.classify(case["user_agent_string"])
        assert agent.device in DEVICE_CLASSES
        assert agent.bot is None or agent.bot in BOT_CLASSES
        assert len(agent.browser) <= agents.MAX_FAMILY_LENGTH and len(agent.os) <= agents.MAX_FAMILY_LENGTH
        version = ".".join(str(case[part]) for part in ("major", "minor", "patch") if case.get(part))
        if version.count(".") >= 1:  # e.g. "124.0": a full version never survives into a field
            assert version not in agent.browser and version not in agent.os


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_well_formed_agent_without_raising(user_agent: str) -> None:
    agent = AgentClassifier(cache_size=0).classify(user_agent)
    assert agent.device in DEVICE_CLASSES
    assert agent.bot is None or agent.bot in BOT_CLASSES
    if not user_agent.strip():
        assert agent.bot == agents.OTHER
