"""User-Agent -> (browser family, OS family, device class, bot class) for anonymised visit statistics.

The statistics need to know *what kind* of client visited, never *which* client: so an
`Agent` keeps only families and classes. Version numbers are dropped because together
with the other fields they narrow a visitor down far more than a report needs. This
module never logs and never puts the User-Agent into an exception message; the raw
string lives only as a key of the in-memory LRU cache.

Bot detection ORs two sources because each misses what the other sees: ua-parser's
`is_bot` (its device family "Spider") catches generic "...bot/1.0" names but misses
e.g. `Mediapartners-Google`, `GoogleOther`, `Wget/...` or `python-requests/...`; the
crawler-user-agents list (the `crawleruseragents` package's own JSON) names 1,500
specific crawlers and says what each is for (its `tags`), which gives the bot class.

An uncached classification costs ~0.5 ms (almost all of it ua-parser; the crawler
patterns add ~40 us), a cached one ~0.3 us: so callers classify off the request path
(the statistics writer thread) and every result is cached per string.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import user_agents

from cookie_gate.cache import CacheStats

__all__ = ["BOT_CLASS_PRIORITY", "OTHER", "PATTERN_OVERRIDES", "Agent", "AgentClassifier", "crawler_entries"]


@dataclass(frozen=True, slots=True)
class Agent:
    """What the statistics keep of a User-Agent: families and classes, never the string or a version.

    `device` is what the string claims, for bots too (Googlebot's smartphone crawler
    says "mobile"), so reports should split on `bot` first.
    """

    browser: str  # user-agents family, e.g. "Chrome", "Mobile Safari", "Other"
    os: str  # e.g. "Windows", "iOS", "Other"
    device: str  # "mobile" | "tablet" | "desktop" | "other"
    bot: str | None  # None for a person; else a class from BOT_CLASS_PRIORITY or "other"


#: Bot class of a string matched by no crawler pattern but flagged by ua-parser, of an
#: entry without a known tag, and of an empty User-Agent.
OTHER = "other"

#: When a crawler entry has several tags, or a string matches several entries, the
#: first class here wins. Purpose-specific classes come first (an AI crawler that also
#: feeds a search product is reported as "ai-crawler": that is the distinction a site
#: owner asks about); generic tools come last, so a named bot that happens to mention
#: its HTTP library (`... python-requests/2.x`) is reported as the bot, not the library.
BOT_CLASS_PRIORITY: tuple[str, ...] = (
    "ai-crawler",
    "search-engine",
    "advertising",
    "social-preview",
    "feed-reader",
    "archiver",
    "academic",
    "monitoring",
    "seo",
    "scanner",
    "browser-automation",
    "http-library",
)

#: Upstream patterns that are bare words also found in *browser* UAs as a phone's
#: model or brand name, replaced by a stricter form that still matches every example
#: the upstream entry gives (tests check both). Each found by the uap-core device
#: corpus flagging these real phones: "HTC Butterfly" / "HTC J Butterfly";
#: "ViewSonic-V350" / "Lucky Ultra Sonic U8650"; HTC's "speedy" codename inside
#: Yahoo Mail's UA; model "sprd-L008/1.0". The rule is "the bot's own product token,
#: not a substring of someone else's", so it is not a tuning knob on the test data.
#: Deliberately *not* overridden: `WhatsApp` (67 uap-core device cases such as
#: "WhatsApp/2.11.112 Android/4.2.1 Device/...") and `WordPress/` (2 cases): those
#: strings are the app's / the CMS's own HTTP client (link previews, pingbacks), never
#: a person's browser, so counting them as bots is right for page-view statistics.
PATTERN_OVERRIDES: Mapping[str, str] = {
    "Butterfly": r"Butterfly/",
    "Sonic": r"\bSonic/|RankSonic",
    "speedy": r"Speedy ?Spider",
    r"008\/": r"\b008/",
}

#: Real UAs are under 500 characters (uap-core's longest is 492). Cutting longer ones
#: bounds both the memory the cache key holds and ua-parser's regex time on hostile input.
MAX_UA_LENGTH = 1024

#: ua-parser copies unknown apps' and bots' product names into the family ("FooBot/1.0"
#: -> "FooBot"); anything longer than this is not a product name worth a report row.
#: uap-core's longest expected family is 50 characters.
MAX_FAMILY_LENGTH = 64

_REGEX_METACHARACTERS = frozenset(".^$*+?{}[]|()\\")


def _as_literal(pattern: str) -> str | None:
    """The string `pattern` matches if it is a plain literal (`\\/` etc. unescaped), else None."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 < len(pattern) and not pattern[i + 1].isalnum():
                out.append(pattern[i + 1])
                i += 2
                continue
            return None  # \d, \s, \b, ...: a real regex
        if char in _REGEX_METACHARACTERS:
            return None
        out.append(char)
        i += 1
    return "".join(out) or None


def _trie_regex(words: Iterable[str]) -> str:
    """One regex for "any of `words` starts here", shaped as a prefix trie.

    Python's `re` tries the alternatives of `a|b|c|...` one by one at every position,
    so 1,500 alternatives cost ~0.7 ms per UA (~0.16 ms in chunks of 25, as the package's
    own `is_crawler` does); as a trie, a position is dismissed after one branch per
    distinct first character (~13 us per UA for the 1,468 literal patterns).
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches: list[str] = []
        leaves: list[str] = []
        for char in sorted(key for key in node if key):
            child = node[char]
            if list(child) == [""]:
                leaves.append(re.escape(char))
            else:
                branches.append(re.escape(char) + build(child))
        if leaves:
            branches.append(leaves[0] if len(leaves) == 1 else "[" + "".join(leaves) + "]")
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie) if trie else r"(?!)"


class _PatternSet:
    """A set of crawler regexes compiled into (at most) two regexes: a trie of the
    literal ones (~97% of the list) and an alternation of the rest."""

    __slots__ = ("_literals", "_regexes")

    def __init__(self, patterns: Iterable[str]) -> None:
        literals: set[str] = set()
        regexes: list[str] = []
        for pattern in patterns:
            literal = _as_literal(pattern)
            if literal is not None:
                literals.add(literal)
            else:
                regexes.append(f"(?:{pattern})")
        self._literals = re.compile(_trie_regex(literals)) if literals else None
        self._regexes = re.compile("|".join(regexes)) if regexes else None

    def search(self, text: str) -> bool:
        if self._literals is not None and self._literals.search(text) is not None:
            return True
        return self._regexes is not None and self._regexes.search(text) is not None


def _entry_class(tags: Sequence[str]) -> str:
    """An entry's bot class: its highest-priority known tag, else "other"."""
    for bot_class in BOT_CLASS_PRIORITY:
        if bot_class in tags:
            return bot_class
    return OTHER


def crawler_entries() -> list[tuple[str, str]]:
    """(pattern, bot class) for every usable entry of the installed crawler-user-agents list.

    Read through importlib.resources, not `import crawleruseragents`, so the package's
    own module-level helpers (and its lack of type information) stay out of the way.
    Overrides are applied here; an empty or non-compiling pattern is skipped rather than
    breaking start-up after a data update (a test checks that none is skipped today).
    """
    data = resources.files("crawleruseragents").joinpath("crawler-user-agents.json").read_text(encoding="utf-8")
    entries: list[tuple[str, str]] = []
    for entry in json.loads(data):
        pattern = entry.get("pattern") if isinstance(entry, dict) else None
        if not isinstance(pattern, str) or not pattern:
            continue
        pattern = PATTERN_OVERRIDES.get(pattern, pattern)
        try:
            re.compile(f"(?:{pattern})")  # the form it takes inside the combined regexes
        except re.error:
            continue
        tags = entry.get("tags")
        tag_list = [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []
        entries.append((pattern, _entry_class(tag_list)))
    return entries


class _BotPatterns:
    """Crawler patterns: one fast "any match" test, then the class by priority.

    Most visitors are people, so the common case is a single miss of the combined set;
    only a hit pays for walking the per-class sets, and the first class that matches is,
    by construction, the highest-priority class among all entries that match.
    """

    __slots__ = ("_any", "_by_class", "size")

    def __init__(self, entries: Sequence[tuple[str, str]]) -> None:
        self.size = len(entries)
        self._any = _PatternSet(pattern for pattern, _ in entries)
        order = (*BOT_CLASS_PRIORITY, OTHER)
        self._by_class = [
            (bot_class, _PatternSet(pattern for pattern, cls in entries if cls == bot_class))
            for bot_class in order
            if any(cls == bot_class for _, cls in entries)
        ]

    def bot_class(self, user_agent: str) -> str | None:
        if not self._any.search(user_agent):
            return None
        for bot_class, patterns in self._by_class:
            if patterns.search(user_agent):
                return bot_class
        return OTHER  # unreachable: the union matched, so some class does


@functools.cache
def _bot_patterns() -> _BotPatterns:
    """Loaded and compiled once per process (~0.1 s) and shared by every classifier."""
    return _BotPatterns(crawler_entries())


def _family(name: object) -> str:
    return name if isinstance(name, str) and name and len(name) <= MAX_FAMILY_LENGTH else "Other"


def _device_class(parsed: Any) -> str:
    """Tablet before mobile: user-agents calls an iPad (iOS) mobile as well."""
    if parsed.is_tablet:
        return "tablet"
    if parsed.is_mobile:
        return "mobile"
    if parsed.is_pc:
        return "desktop"
    return "other"


#: Browsers always send a User-Agent, so a request without one is a script.
_NO_AGENT = Agent(browser="Other", os="Other", device="other", bot=OTHER)


class AgentClassifier:
    """Classifies User-Agent strings, caching each result (visitors repeat, parsing is slow).

    Thread-safe: the cache is functools' (locked), the regexes are immutable. Build one
    per process at start-up; the first construction compiles the crawler patterns.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        self._bots = _bot_patterns()
        # Bounded by entries of bounded size: strings are cut to MAX_UA_LENGTH first, so 4,096
        # entries hold about 6 MB at most (on the writer thread, never on the request path).
        self._cached = functools.lru_cache(maxsize=cache_size)(self._classify)
        user_agents.parse("")  # pay ua-parser's lazy set-up now, not on the first visit

    def classify(self, user_agent: str) -> Agent:
        """The visitor's `Agent`; an empty or missing User-Agent is a bot ("other")."""
        return self._cached(user_agent[:MAX_UA_LENGTH] if user_agent else "")

    @property
    def cache_stats(self) -> CacheStats:
        """The per-string cache: entries held (at most `cache_size`) and strings parsed."""
        info = self._cached.cache_info()
        return CacheStats(entries=info.currsize, misses=info.misses)

    @property
    def crawler_patterns(self) -> int:
        """How many crawler-list patterns this classifier matches (`crawler_entries()`, compiled)."""
        return self._bots.size

    def _classify(self, user_agent: str) -> Agent:
        if not user_agent or user_agent.isspace():
            return _NO_AGENT
        parsed = user_agents.parse(user_agent)
        bot = self._bots.bot_class(user_agent)
        if bot is None and parsed.is_bot:
            bot = OTHER
        return Agent(
            browser=_family(parsed.browser.family),
            os=_family(parsed.os.family),
            device=_device_class(parsed),
            bot=bot,
        )
