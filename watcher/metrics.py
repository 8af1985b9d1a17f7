"""`/metrics`: what happened (counted from the poll and delivery events) and what the
state holds now (read from the store at each scrape), in the Prometheus text format.

Counters start at zero with the daemon, as Prometheus expects of a process; the
state's gauges (queue depth, dead letters, last success, failures in a row) are
true at the scrape, whatever happened before the daemon started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from watcher.events import DeliveryEvent, Event, PollEvent, PollOutcome
from watcher.store import FeedState, Snapshot

disable_created_metrics()  # type: ignore[no-untyped-call]  # `_created` series: noise here

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """An observer of events (`observe`) and the registry `/metrics` renders."""

    def __init__(
        self, snapshot: Callable[[], Snapshot], feeds: Callable[[], Iterable[str]]
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.polls = Counter(
            "watcher_polls",
            "Polls of a feed, by outcome (skipped: backing off or gone, not fetched).",
            ["feed", "outcome"],
            registry=self.registry,
        )
        self.fetch_seconds = Histogram(
            "watcher_fetch_duration_seconds",
            "How long fetching a feed took (the feed found on its page included).",
            ["feed"],
            buckets=FETCH_BUCKETS,
            registry=self.registry,
        )
        self.talks_new = Counter(
            "watcher_talks_new", "New talks queued for delivery.", ["feed"], registry=self.registry
        )
        self.deliveries = Counter(
            "watcher_deliveries",
            "Delivery attempts, by outcome.",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.registry.register(StateCollector(snapshot, feeds))

    def observe(self, event: Event) -> None:
        if isinstance(event, PollEvent):
            self.polls.labels(event.feed, str(event.outcome)).inc()
            if event.fetch_seconds is not None:
                self.fetch_seconds.labels(event.feed).observe(event.fetch_seconds)
            if event.new_talks:
                self.talks_new.labels(event.feed).inc(event.new_talks)
        elif isinstance(event, DeliveryEvent):
            self.deliveries.labels(event.destination, str(event.outcome)).inc()

    def start_feed(self, feed: str) -> None:
        """Show a feed's series from the start, at zero, before its first poll ends."""
        for outcome in PollOutcome:
            self.polls.labels(feed, str(outcome))
        self.talks_new.labels(feed)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector(Collector):
    """The gauges read from the state at each scrape (of the feeds configured: a feed
    removed from the config has no series)."""

    def __init__(
        self, snapshot: Callable[[], Snapshot], feeds: Callable[[], Iterable[str]]
    ) -> None:
        self.snapshot = snapshot
        self.feeds = feeds

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot()
        queued = GaugeMetricFamily(
            "watcher_queue_depth", "Deliveries queued (not dead-lettered).", labels=["destination"]
        )
        dead = GaugeMetricFamily(
            "watcher_dead_letters", "Deliveries dead-lettered.", labels=["destination"]
        )
        depth: dict[str, int] = {}
        letters: dict[str, int] = {}
        for entry in snapshot.outbox:
            counts = letters if entry.dead else depth
            counts[entry.destination] = counts.get(entry.destination, 0) + 1
        for name in sorted({*depth, *letters, *snapshot.destinations}):
            queued.add_metric([name], depth.get(name, 0))
            dead.add_metric([name], letters.get(name, 0))
        success = GaugeMetricFamily(
            "watcher_feed_last_success_timestamp_seconds",
            "When a feed was last fetched successfully (Unix time).",
            labels=["feed"],
        )
        failures = GaugeMetricFamily(
            "watcher_feed_consecutive_failures", "Failed polls of a feed in a row.", labels=["feed"]
        )
        for name in sorted(self.feeds()):
            state = snapshot.feeds.get(name) or FeedState(name)
            if state.last_success:
                stamp = datetime.fromisoformat(state.last_success).timestamp()
                success.add_metric([name], stamp)
            failures.add_metric([name], state.failures)
        yield from (queued, dead, success, failures)
