"""`Withdrawals`: what the gateway remembers of withdrawn consent ids, bounded and never in a request's way."""

from __future__ import annotations

import logging

import pytest

from cookie_gate import withdrawals as module
from cookie_gate.withdrawals import Withdrawals


class Log:
    """A consent log stand-in that records the lookups it is asked for."""

    def __init__(self, withdrawn: dict[str, int], fail: bool = False) -> None:
        self.withdrawn = withdrawn
        self.fail = fail
        self.asked: list[list[str]] = []

    def __call__(self, ids: list[str]) -> dict[str, int]:
        self.asked.append(ids)
        if self.fail:
            raise OSError("store down")
        return {i: self.withdrawn[i] for i in ids if i in self.withdrawn}


def test_a_decision_is_withdrawn_only_by_a_withdrawal_at_or_after_it() -> None:
    known = Withdrawals()
    known.add("id", 200)
    assert known.withdrawn("id", 100) and known.withdrawn("id", 200)
    assert not known.withdrawn("id", 201)  # decided again after the withdrawal
    assert not known.withdrawn("other", 0)
    known.add("id", 150)  # an older withdrawal learnt later changes nothing
    assert known.times["id"] == 200


def test_ids_are_looked_up_once_in_batches() -> None:
    log = Log({"b": 7})
    known = Withdrawals(log, background=False)
    for consent_id in ["a", "b", "a", "c"] * 3:
        known.check_later(consent_id)
    known.check_pending()
    known.check_later("a")
    known.check_pending()
    assert log.asked == [["a", "b", "c"]]
    assert known.withdrawn("b", 7) and not known.withdrawn("a", 0)


def test_a_failed_lookup_is_counted_logged_once_and_tried_again_when_the_id_comes_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = Log({"a": 5}, fail=True)
    known = Withdrawals(log, background=False)
    for _ in range(3):
        known.check_later("a")
        known.check_pending()
    assert known.failed == 3 and len(log.asked) == 3
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    log.fail = False
    known.check_later("a")
    known.check_pending()
    assert known.withdrawn("a", 5)


def test_a_full_queue_drops_and_counts(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(module, "MAX_QUEUED", 3)
    log = Log({})
    known = Withdrawals(log, background=False)
    for n in range(5):
        known.check_later(f"id-{n}")
    assert known.dropped == 2
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1
    known.check_pending()
    assert log.asked == [["id-0", "id-1", "id-2"]]


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MAX_WITHDRAWN", 10)
    monkeypatch.setattr(module, "MAX_CHECKED", 10)
    known = Withdrawals(Log({}), background=False)
    for n in range(100):
        known.add(f"w-{n}", n)
        known.check_later(f"c-{n}")
        known.check_pending()
    assert len(known.times) == 10 and known.withdrawn("w-99", 99) and not known.withdrawn("w-0", 0)
    assert len(known._checked) == 10


def test_without_a_store_nothing_is_queued() -> None:
    known = Withdrawals()
    known.check_later("a")
    known.check_pending()
    assert known.wait(0)
