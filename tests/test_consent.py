"""The signed consent cookie: compact, verified once per value, never an error."""

from __future__ import annotations

import pytest

from cookie_gate.consent import NECESSARY, ConsentCodec, Decision, new_consent_id, strictest
from tests.conftest import SECRET

CATEGORIES = ("preferences", "analytics", "marketing")


def codec(keys: tuple[str, ...] = (SECRET,), policy: str = "1") -> ConsentCodec:
    return ConsentCodec(keys, policy_version=policy, categories=CATEGORIES)


def decision(*accepted: str) -> Decision:
    return Decision(frozenset(accepted) | {NECESSARY}, "1", 1_796_000_000, new_consent_id())


def test_a_decision_round_trips() -> None:
    original = decision("analytics", "marketing")
    assert codec().decode(codec().encode(original)) == original


def test_the_payload_is_small_and_cookie_safe() -> None:
    value = codec().encode(decision(*CATEGORIES))
    assert len(value) < 128
    assert all(c.isalnum() or c in "-_.:+" for c in value)


def test_verification_happens_once_per_value() -> None:
    signer = codec()
    value = signer.encode(decision("analytics"))
    for _ in range(5):
        assert signer.decode(value) is not None
    assert signer.cache_stats.misses == 1


def test_categories_the_site_no_longer_has_are_ignored() -> None:
    value = ConsentCodec((SECRET,), policy_version="1", categories=(*CATEGORIES, "chat")).encode(decision("chat"))
    assert codec().decode(value) == Decision(
        frozenset({NECESSARY}), "1", 1_796_000_000, value.split(":")[4].split(".")[0]
    )


@pytest.mark.parametrize(
    "value",
    ["", ".", "1:analytics:1:tpcql0:id", "x" * 600, "\udcff\udcfe.sig", "2:analytics:1:tpcql0:id.sig"],
)
def test_anything_else_is_undecided(value: str) -> None:
    assert codec().decode(value) is None


def test_a_validly_signed_but_oversized_value_is_not_verified() -> None:
    signer = codec()
    huge = Decision(frozenset({NECESSARY}), "1", 1, "i" * 600)
    assert signer.decode(signer.encode(huge)) is None
    assert signer.cache_stats.entries == 0


def test_the_strictest_of_several_decisions_stands_whole() -> None:
    everything = decision(*CATEGORIES)
    nothing = decision()
    assert strictest([everything, nothing]) is nothing
    assert strictest([nothing, everything]) is nothing
    assert strictest([everything]) is everything


def test_decisions_that_each_refuse_something_leave_their_common_categories() -> None:
    early = Decision(frozenset({NECESSARY, "analytics", "preferences"}), "1", 100, "early")
    late = Decision(frozenset({NECESSARY, "analytics", "marketing"}), "1", 200, "late")
    assert strictest([late, early]) == Decision(frozenset({NECESSARY, "analytics"}), "1", 100, "early")
