"""`Withdrawals`: what the gateway remembers of withdrawn consent ids, bounded and never in a request's way."""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest

from cookie_gate import withdrawals as module
from cookie_gate.classify import CookieClassifier
from cookie_gate.config import load_config
from cookie_gate.consent import ConsentCodec, Decision
from cookie_gate.cookies import DomainVariants
from cookie_gate.visit import VisitResolver
from cookie_gate.withdrawals import Withdrawals
from tests.clocks import SteppedClock
from tests.conftest import SECRET

NOW = 1_796_000_000
DAY = 86_400


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

    def ids(self) -> list[str]:
        return [i for batch in self.asked for i in batch]


class CountingCodec(ConsentCodec):
    """The real codec, counting the cookie values it is asked to read: one per analysed Cookie header."""

    decoded = 0

    def decode(self, value: str) -> Decision | None:
        self.decoded += 1
        return super().decode(value)


class Gateway:
    """A visit resolver on a `Withdrawals`, and signed consent cookies to send it."""

    def __init__(self, withdrawals: Withdrawals) -> None:
        config = load_config(secret_key=SECRET, environ={})
        self.codec = CountingCodec(config.secret_keys, policy_version="1", categories=config.category_names)
        self.resolver = VisitResolver(
            config, self.codec, CookieClassifier(config), DomainVariants(lambda host: None), withdrawals
        )

    def header(self, consent_id: str, decided_at: int = NOW - DAY) -> bytes:
        value = self.codec.encode(Decision(frozenset({"necessary", "analytics"}), "1", decided_at, consent_id))
        return f"cookie_gate={value}; _ga=GA1.2.3.4".encode()

    def counts(self, header: bytes, now: float = NOW) -> bool:
        """Whether the visitor's decision stands: decided, and the app sees its analytics cookie."""
        visit = self.resolver.resolve(header, False, now)
        return visit.consent.decided and visit.app_cookie is not None and b"_ga=" in visit.app_cookie


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


def test_a_failed_lookup_is_counted_logged_once_and_tried_again(caplog: pytest.LogCaptureFixture) -> None:
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


def test_memory_is_bounded_and_a_forgotten_withdrawal_is_looked_up_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MAX_WITHDRAWN", 10)
    monkeypatch.setattr(module, "MAX_CHECKED", 10)
    log = Log({"w-0": 5})
    known = Withdrawals(log, background=False)
    known.check_later("w-0")
    known.check_pending()
    for n in range(1, 100):
        known.add(f"w-{n}", n)
    assert len(known.times) <= 10 and known.withdrawn("w-99", 99)
    assert not known.withdrawn("w-0", 5)  # forgotten for room...
    known.check_later("w-0")
    known.check_pending()
    assert log.ids() == ["w-0", "w-0"] and known.withdrawn("w-0", 5)  # ...so asked again, not taken as never withdrawn
    for n in range(100):
        known.check_later(f"c-{n}")
    known.check_pending()
    assert known.checked == 10  # the oldest forgotten, the newest kept


def test_withdrawals_that_outlived_every_cookie_they_could_stop_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MAX_WITHDRAWN", 10)
    clock = SteppedClock(NOW)
    known = Withdrawals(lifetime_seconds=180 * DAY, clock=clock)
    known.add("recent-first", NOW - DAY)  # the first in, which plain first-in-first-out would drop
    for n in range(9):
        known.add(f"old-{n}", NOW - 200 * DAY)  # every cookie decided before these expired 20 days ago
    for n in range(5):
        known.add(f"new-{n}", NOW)
    assert known.withdrawn("recent-first", NOW - DAY)
    assert all(known.withdrawn(f"new-{n}", NOW) for n in range(5))
    assert len(known.times) <= 10


def test_a_full_memory_of_recent_withdrawals_is_not_swept_on_every_withdrawal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MAX_WITHDRAWN", 64)

    class Counted(dict[str, int]):
        scans = 0

        def items(self):  # type: ignore[no-untyped-def]
            Counted.scans += 1
            return super().items()

    clock = SteppedClock(NOW)
    known = Withdrawals(lifetime_seconds=180 * DAY, clock=clock)
    known.times = Counted()
    known.add("old", NOW - 200 * DAY)
    for n in range(1000):
        known.add(f"recent-{n}", NOW)
    assert Counted.scans == 1  # the one sweep that could find something (and dropped "old")
    assert not known.withdrawn("old", NOW - 200 * DAY) and known.withdrawn("recent-999", NOW)
    clock.advance(181 * DAY)  # now every withdrawal held has outlived the lifetime
    known.add("latest", int(clock()))
    assert Counted.scans == 2 and list(known.times) == ["latest"]


def test_a_withdrawn_id_forgotten_for_room_is_looked_up_before_its_cookie_counts_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(module, "MAX_WITHDRAWN", 16)
    log = Log({"visitor": NOW})
    known = Withdrawals(log, background=False)
    gateway = Gateway(known)
    replayed = gateway.header("visitor")
    assert gateway.counts(replayed)
    known.check_pending()
    assert not gateway.counts(replayed)  # the log says withdrawn
    for n in range(16):  # other visitors withdraw, all of them recently
        known.add(f"other-{n}", NOW)
    assert not known.withdrawn("visitor", NOW - DAY)  # forgotten for room
    for _ in range(3):
        gateway.counts(replayed)  # met again while the lookup runs
        known.check_pending()
    assert log.ids().count("visitor") == 2
    assert not gateway.counts(replayed)


def test_updating_a_withdrawal_never_removes_it_even_for_a_moment() -> None:
    """The event loop reads `times` without the lock; an id missing for an instant is a request let through."""

    class Watched(dict[str, int]):
        removed: list[str] = []

        def pop(self, key: str, *default: int) -> int:  # type: ignore[override]
            self.removed.append(key)
            return super().pop(key, *default)

        def __delitem__(self, key: str) -> None:
            self.removed.append(key)
            super().__delitem__(key)

    known = Withdrawals()
    known.times = Watched()
    known.add("id", 100)
    known.add("id", 200)
    known.add("id", 150)
    assert Watched.removed == [] and known.times == {"id": 200}


# -- a process forked from one whose worker was alive, or held the lock ------------------------------


def _in_a_child(known: Withdrawals) -> int:
    """Fork; in the child look up "w-child" and exit 0 when it was found withdrawn in time. The exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        signal.alarm(10)  # a deadlocked child dies instead of hanging the suite
        known.check_later("w-child")
        os._exit(0 if known.wait(5) and known.withdrawn("w-child", 10) else 1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_looks_ids_up_although_the_parent_worker_was_alive() -> None:
    known = Withdrawals(Log({"w-parent": 10, "w-child": 10}))
    known.check_later("w-parent")
    assert known.wait(5) and known.worker_running  # alive and idle when the fork happens
    assert _in_a_child(known) == 0


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_does_not_deadlock_on_a_lock_held_at_the_fork() -> None:
    known = Withdrawals(Log({"w-child": 10}))
    with known._lock:  # as the worker holds it while it takes a batch
        status = _in_a_child(known)
    assert status == 0


# -- failed and dropped lookups are tried again ---------------------------------------------------------


def test_a_failed_lookup_is_tried_again_while_the_cookie_stays_cached() -> None:
    log = Log({"visitor": NOW}, fail=True)
    known = Withdrawals(log, background=False)
    gateway = Gateway(known)
    replayed = gateway.header("visitor")
    assert gateway.counts(replayed)
    known.check_pending()
    assert known.failed == 1 and gateway.counts(replayed)
    log.fail = False  # the store is back; the browser sends the very same header
    known.check_pending()
    assert not gateway.counts(replayed)


def test_the_worker_tries_a_failed_lookup_again_after_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "RETRY_FIRST_SECONDS", 0.01)
    second_try = threading.Event()

    class Flaky(Log):
        def __call__(self, ids: list[str]) -> dict[str, int]:
            if self.asked:
                second_try.set()
            self.fail = not self.asked
            return super().__call__(ids)

    log = Flaky({"visitor": NOW})
    known = Withdrawals(log)
    known.check_later("visitor")
    assert second_try.wait(30) and known.wait(30)
    assert known.failed == 1 and log.asked == [["visitor"], ["visitor"]] and known.withdrawn("visitor", NOW)


def test_failures_are_logged_again_with_the_totals_only_after_a_while(caplog: pytest.LogCaptureFixture) -> None:
    clock = SteppedClock(NOW)
    log = Log({}, fail=True)
    known = Withdrawals(log, clock=clock, background=False)
    known.check_later("a")
    for _ in range(5):
        known.check_pending()
    clock.advance(module.LOG_INTERVAL_SECONDS)
    known.check_pending()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "1 failures" in errors[0] and "6 failures" in errors[1]
    assert known.failed == 6


def test_ids_dropped_from_a_full_queue_are_met_again_once_it_drains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MAX_QUEUED", 2)
    log = Log({"visitor-3": NOW})
    known = Withdrawals(log, background=False)
    gateway = Gateway(known)
    headers = [gateway.header(f"visitor-{n}") for n in range(4)]
    assert all(gateway.counts(h) for h in headers)
    assert known.dropped == 2
    known.check_pending()  # drained: the cached visits are dropped so their ids are met again
    assert all(gateway.counts(h) for h in headers)
    known.check_pending()
    assert sorted(log.ids()) == [f"visitor-{n}" for n in range(4)]
    assert not gateway.counts(headers[3])


# -- a withdrawn or expired cookie sent again and again ---------------------------------------------------


@pytest.mark.parametrize("case", ["withdrawn", "expired"])
def test_a_stale_cookie_sent_again_and_again_is_analysed_once(case: str) -> None:
    known = Withdrawals()
    gateway = Gateway(known)
    header = gateway.header("visitor", decided_at=NOW - DAY)
    assert gateway.counts(header)
    now = float(NOW)
    if case == "withdrawn":
        known.add("visitor", NOW)
    else:
        now = NOW + 180 * DAY
    before = gateway.codec.decoded
    assert not any(gateway.counts(header, now) for _ in range(20))
    assert gateway.codec.decoded - before == 1
    fresh = gateway.header("visitor", decided_at=NOW + 1)  # decided again after the withdrawal: counts
    assert gateway.counts(fresh, NOW + 2)


def test_without_a_store_nothing_is_queued() -> None:
    known = Withdrawals()
    known.check_later("a")
    known.check_pending()
    assert known.wait(0)
