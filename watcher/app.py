"""The wiring: polls (fetch → parse → record) wake the delivery loops of their destinations."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from urllib.parse import urlsplit

import httpx

from watcher.alerts import DeadLetterAlerts
from watcher.config import Config, DeliveryPolicy, FeedConfig
from watcher.deliver import Deliverer
from watcher.events import Observers, PollEvent, PollOutcome
from watcher.logs import log_context
from watcher.notifiers import build_notifier
from watcher.notifiers.base import Notifier
from watcher.poll import PollResult, poll_feed
from watcher.readers import Readers
from watcher.retry import DrainResult
from watcher.store import Store

log = logging.getLogger(__name__)


def host_key(url: str) -> str:
    """Which feeds share a per-host slot: `host:port` of an http(s) URL, "file" for a local feed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return "file"
    return f"{parts.hostname}:{parts.port or (443 if scheme == 'https' else 80)}"


class Watcher:
    def __init__(
        self,
        config: Config,
        store: Store,
        client: httpx.AsyncClient,
        clock: Callable[[], datetime],
        observers: Observers | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.clock = clock
        self.observers = observers or Observers()
        notifiers, policies = _destinations(config)
        self.deliverer = Deliverer(
            store, notifiers, policies, client, clock, observers=self.observers
        )
        self.observers.subscribe(
            DeadLetterAlerts(store, lambda: self.config.alerts, self.deliverer.kick)
        )
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self.readers = Readers()

    def close(self) -> None:
        """Stop what reads documents in other processes (see `watcher.readers`)."""
        self.readers.close()

    def reconfigure(self, config: Config) -> None:
        """Work with this config from now on (a reload): polls started after it use it;
        the deliverer sends to its destinations. Polls in flight end as they began."""
        if config.max_concurrency != self.config.max_concurrency:
            self._slots = asyncio.Semaphore(config.max_concurrency)
        if config.max_per_host != self.config.max_per_host:
            self._host_slots = {}
        self.config = config
        self.deliverer.reconfigure(*_destinations(config))

    async def poll(self, feed: FeedConfig, respect_backoff: bool = False) -> PollResult:
        """Poll one feed; its new talks are queued, and the delivery loops woken.

        The host's slot is taken before the global one, so feeds waiting on a busy
        host hold no global slot and never delay the feeds of other hosts."""
        host = host_key(feed.url)
        if host not in self._host_slots:
            self._host_slots[host] = asyncio.Semaphore(self.config.max_per_host)
        async with log_context(feed=feed.name), self._host_slots[host], self._slots:
            started = time.monotonic()
            try:
                result = await poll_feed(
                    feed,
                    self.config,
                    self.store,
                    self.client,
                    self.clock(),
                    respect_backoff,
                    self.readers,
                )
            except Exception as exc:  # a bug must fail this feed, never the others' cycle
                log.exception("feed %s: the poll failed unexpectedly", feed.name)
                error = f"unexpected {type(exc).__name__}: {exc}"
                result = PollResult(feed.name, PollOutcome.FAILED, error)
            finally:
                self.store.release(feed.name)
        self.observers.emit(
            PollEvent(
                feed.name,
                result.outcome,
                self.clock(),
                time.monotonic() - started,
                result.announced,
                result.error,
                result.degraded,
                result.fetch_seconds,
            )
        )
        if result.announced:
            self.deliverer.kick(feed.notify)
        self.deliverer.kick(self.config.alerts)  # a poll may have raised an alert
        return result

    async def poll_all(self, feeds: Iterable[FeedConfig]) -> list[PollResult]:
        return list(await asyncio.gather(*(self.poll(feed) for feed in feeds)))

    async def poll_and_deliver(self, feeds: Iterable[FeedConfig]) -> list[PollResult]:
        """Poll each feed once, delivering what they queue as they go, then deliver what is
        left (`Deliverer.deliver_during`): what `watcher poll` does."""
        return await self.deliverer.deliver_during(self._poll_then_close(feeds))

    async def _poll_then_close(self, feeds: Iterable[FeedConfig]) -> list[PollResult]:
        try:
            return await self.poll_all(feeds)
        finally:
            self.close()  # the readers' processes are not needed for the last deliveries

    async def drain(self) -> DrainResult:
        return await self.deliverer.drain()


def _destinations(config: Config) -> tuple[dict[str, Notifier], dict[str, DeliveryPolicy]]:
    notifiers = {
        name: build_notifier(name, dest.type, dest.settings)
        for name, dest in config.destinations.items()
    }
    return notifiers, {name: dest.policy for name, dest in config.destinations.items()}
