"""The gate's collaborators, built once from the settings, and their lifecycle.

This is the one place that knows every part and wires them: the classifier feeds the
inventory, the visit resolver reads the classifier and the withdrawals, the statistics
(the only part here from `stats/`) count the page views the responders emit and drain
the inventory into the store. `CookieGateMiddleware` routes requests to the parts;
everything below it depends only on what it is handed, so imports point one way. What flows
back is change notices, as callbacks registered here (`CookieClassifier.on_change`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread
from publicsuffixlist import PublicSuffixList

from cookie_gate.classify import CookieClassifier
from cookie_gate.clock import Clock
from cookie_gate.config import Config, ConfigError
from cookie_gate.consent import ConsentCodec
from cookie_gate.cookies import DomainVariants
from cookie_gate.endpoints import Endpoints
from cookie_gate.hosts import AllowedHosts
from cookie_gate.inventory import Inventory
from cookie_gate.placement import BannerSource
from cookie_gate.request import RequestReader
from cookie_gate.responder import ResponsePolicy
from cookie_gate.set_cookie_filter import SetCookieFilter
from cookie_gate.shown import shown_digests
from cookie_gate.stats.clock import SiteClock
from cookie_gate.stats.recorder import Statistics
from cookie_gate.stats.retention import DailyRetention, Retention
from cookie_gate.store import StoreError, open_store, start_store_check
from cookie_gate.store.sql import SQLStore
from cookie_gate.visit import VisitResolver
from cookie_gate.withdrawals import Withdrawals

#: Share of `shutdown_timeout` one store connect or statement may take, so a flush fits in it.
STORE_TIMEOUT_SHARE = 0.4


@dataclass(frozen=True, slots=True)
class GateParts:
    config: Config
    clock: Clock
    classifier: CookieClassifier
    #: Names filed for the first time, on their way to the store (drained by the statistics writer).
    inventory: Inventory
    #: The banner for the page rewriter and for every `BannerPlacement` alike.
    banner: BannerSource
    store: SQLStore
    withdrawals: Withdrawals
    visits: VisitResolver
    #: None with `statistics = false`.
    statistics: Statistics | None
    #: The daily purge on a thread of its own, for a gate without statistics (whose writer's tick runs it).
    retention: DailyRetention | None
    endpoints: Endpoints
    requests: RequestReader
    responses: ResponsePolicy

    @classmethod
    def build(cls, config: Config, clock: Clock = time.time, store: SQLStore | None = None) -> GateParts:
        """Every part for `config`; `store` given, it is used instead of opening `config.store`."""
        inventory = Inventory()
        classifier = CookieClassifier(config, inventory=inventory)
        shown = shown_digests(config)
        codec = ConsentCodec(
            config.secret_keys,
            policy_version=config.policy_version,
            categories=config.category_names,
            shown=shown.short_digests if config.reprompt_on_change else None,
        )
        variants = DomainVariants(PublicSuffixList().privatesuffix, AllowedHosts(config.allowed_hosts))
        banner = BannerSource(config)
        if store is None:
            try:
                store = open_store(config.store, timeout=config.shutdown_timeout * STORE_TIMEOUT_SHARE)
            except StoreError as error:
                raise ConfigError("store", str(error)) from None
        withdrawals = Withdrawals(store.withdrawals, lifetime_seconds=config.consent_lifetime_seconds, clock=clock)
        visits = VisitResolver(config, codec, classifier, variants, withdrawals)
        statistics = Statistics(config, store, inventory, clock=clock) if config.statistics else None
        retention = (
            DailyRetention(Retention(config, store, SiteClock(config.timezone)), clock) if statistics is None else None
        )
        endpoints = Endpoints(
            config,
            codec,
            classifier,
            visits,
            variants,
            store,
            clock,
            writer_health=statistics.writer.health if statistics is not None else None,
            shown=shown,
        )
        responses = ResponsePolicy(config, SetCookieFilter(classifier), visits, banner, statistics)
        return cls(
            config,
            clock,
            classifier,
            inventory,
            banner,
            store,
            withdrawals,
            visits,
            statistics,
            retention,
            endpoints,
            RequestReader(visits, clock),
            responses,
        )

    def startup(self) -> None:
        """At lifespan startup: the writer (its first round checks the store), or the store check and purge thread."""
        if self.statistics is not None:
            self.statistics.writer.start()
        else:
            start_store_check(self.store)
        if self.retention is not None:
            self.retention.start()

    async def shutdown(self) -> None:
        """At lifespan shutdown: flush every queued event, stop the purge thread, release the store.

        One deadline (`shutdown_timeout`) for all three: a writer stuck in a hung store
        holds the store's lock, and is never waited for past it. Each runs on a thread of
        a limiter of its own, so the app's sync endpoints (anyio's default limiter) cannot
        delay them.
        """
        deadline = time.monotonic() + self.config.shutdown_timeout
        limiter = anyio.CapacityLimiter(1)
        stops: list[Callable[[float], object]] = []
        if self.statistics is not None:
            stops.append(self.statistics.writer.stop)
        if self.retention is not None:
            stops.append(self.retention.stop)
        stops.append(self.store.close)
        for stop in stops:
            await anyio.to_thread.run_sync(stop, max(deadline - time.monotonic(), 0.0), limiter=limiter)
