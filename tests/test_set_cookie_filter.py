"""`SetCookieFilter` remembers a name's category per spelling; it must decide exactly as the classifier does.

The reference is the slow path every header took before: not a deletion, and the category of
`set_cookie_name` not allowed. Hypothesis mixes well-known and made-up names, nameless headers,
spaces and semicolons around the name, deletions, and repeats (so the remembered path is taken).
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from cookie_gate.classify import CookieClassifier
from cookie_gate.config import load_config
from cookie_gate.consent import NECESSARY
from cookie_gate.cookies import is_deletion, set_cookie_name
from cookie_gate.set_cookie_filter import SetCookieFilter
from tests.conftest import SECRET

NOW = 1_800_000_000.0
NAMES = [b"_ga", b"_fbp", b"sessionid", b"csrftoken", b"lang", b"uid", b"abc", b"ab", b""]
SPACES = st.sampled_from([b"", b" ", b"\t", b"  "])
ATTRIBUTES = st.sampled_from(
    [b"", b"; Path=/", b"; Max-Age=0", b"; Max-Age=+0", b"; max-age=-1; Path=/", b"; HttpOnly"]
)


@st.composite
def set_cookies(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(NAMES) | st.binary(max_size=6))
    separator = draw(st.sampled_from([b"=", b"=", b"=", b";", b""]))
    value = draw(st.sampled_from([b"1", b"GA1.2.3.4", b"", b"a=b"]))
    return draw(SPACES) + name + draw(SPACES) + separator + value + draw(ATTRIBUTES)


def reference(classifier: CookieClassifier, set_cookie: bytes, allowed: frozenset[str]) -> bool:
    return not is_deletion(set_cookie) and classifier.category(set_cookie_name(set_cookie)) not in allowed


ALLOWED = st.sampled_from(
    [frozenset({NECESSARY}), frozenset({NECESSARY, "analytics"}), frozenset({NECESSARY, "marketing"})]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(set_cookies(), ALLOWED), min_size=1, max_size=30), st.sampled_from(["allow", "block"]))
def test_the_filter_decides_as_the_classifier_on_first_sight_and_on_repeats(
    headers: list[tuple[bytes, frozenset[str]]], unknown: str
) -> None:
    config = load_config(None, secret_key=SECRET, unknown_cookies=unknown)
    checker = CookieClassifier(config)
    classifier = CookieClassifier(config)
    gate = SetCookieFilter(classifier)
    for _ in range(2):  # the second round takes the remembered path for every name the app set
        for set_cookie, allowed in headers:
            assert gate.refuses(set_cookie, allowed, NOW) == reference(checker, set_cookie, allowed), set_cookie
        positions = list(range(len(headers)))
        pairs = [(b"set-cookie", set_cookie) for set_cookie, _ in headers]
        for allowed in {allowed for _, allowed in headers}:
            expected = [i for i, (value, _) in enumerate(headers) if reference(checker, value, allowed)]
            assert gate.refused(pairs, positions, allowed, NOW) == expected


def test_a_nameless_header_is_not_taken_for_a_remembered_name() -> None:
    """`_ga` (no "=") is a nameless cookie whose value is "_ga": it is not the `_ga` the app set before."""
    config = load_config(None, secret_key=SECRET, unknown_cookies="block")
    gate = SetCookieFilter(CookieClassifier(config))
    analytics = frozenset({NECESSARY, "analytics"})
    assert not gate.refuses(b"_ga=GA1.2.3; Path=/", analytics, NOW)
    assert gate.refuses(b"_ga", analytics, NOW), "a nameless cookie is undeclared, so blocked"
    assert gate.refuses(b"_ga; Path=/", analytics, NOW)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(set_cookies(), ALLOWED), min_size=1, max_size=30),
    st.lists(
        st.tuples(
            st.sampled_from(["_ga", "abc", "ab", "uid", "zq"]), st.sampled_from(["1", "GA1.2.1234567890.1234567890"])
        )
    ),
)
def test_in_suspect_mode_the_filter_follows_every_judgment(
    headers: list[tuple[bytes, frozenset[str]]], sightings: list[tuple[str, str]]
) -> None:
    """Judgments change categories as requests and the app's own headers come: the filter must follow them."""
    classifier = CookieClassifier(load_config(None, secret_key=SECRET, unknown_cookies="suspect"))
    gate = SetCookieFilter(classifier)
    for round_ in range(2):
        for index, (set_cookie, allowed) in enumerate(headers):
            if index < len(sightings) and round_:
                classifier.sent(*sightings[index])  # a request's value judged between two responses
            refused = gate.refuses(set_cookie, allowed, NOW)
            assert refused == reference(classifier, set_cookie, allowed), set_cookie
