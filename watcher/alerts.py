"""When to tell `[watcher] alerts` of trouble (pure): a feed failing without a break for
`alert_after` (once), its recovery (once), a feed that publishes regularly gone quiet for
much longer than usual (once, until it brings a talk again).

An alert is queued in the same commit as the poll that raised it, through the same
outbox as talks: durable, retried, and never raised twice for one spell, since the
feed's state says which alert is in force (`FeedState.alerted`)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import statistics
from collections.abc import Callable, Iterable
from datetime import datetime

from watcher.clock import iso
from watcher.config import Config, FeedConfig
from watcher.events import DeliveryEvent, DeliveryOutcome, Event
from watcher.notifiers.base import ALERT_GUID_PREFIX, Alert
from watcher.store import FeedState, NewDelivery, Store
from watcher.store.records import delivery_id

log = logging.getLogger(__name__)

QUIET_FACTOR = 3  # quiet: this many times its usual gap between talks, at least quiet_after
CADENCE_TALKS = 4  # fewest dated talks to tell a feed's usual gap


def cadence(published: Iterable[str | None]) -> tuple[str | None, float | None]:
    """The newest publication, and the median gap between talks (None with too few)."""
    dates = sorted(datetime.fromisoformat(stamp) for stamp in published if stamp)
    if not dates:
        return None, None
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(dates)]
    usual = statistics.median(gaps) if len(dates) >= CADENCE_TALKS else None
    return iso(dates[-1]), usual if usual and usual > 0 else None


def feed_alerts(
    feed: FeedConfig, config: Config, before: FeedState, after: FeedState, now: datetime
) -> tuple[FeedState, list[Alert]]:
    """The feed's state after this poll with the alert in force, and the alerts to send."""
    if not config.alerts:
        return after, []
    stamp = iso(now)
    if after.failures and after.failing_since and after.last_error:
        failing_for = (now - datetime.fromisoformat(after.failing_since)).total_seconds()
        limit = feed.alert_after or config.alert_after
        # A feed gone (410) is polled no more, so it is reported at once, not after a while.
        if before.alerted != "failing" and (failing_for >= limit or after.gone):
            text = (
                f"feed {feed.name} has failed for {span(failing_for)} ({after.failures} polls"
                f" in a row): {after.last_error}"
            )
            failing = dataclasses.replace(after, alerted="failing")
            return failing, [Alert("feed_failing", feed.name, text, stamp)]
        return after, []
    if before.alerted == "failing" and not after.failures:
        since = before.failing_since
        spell = f" after failing for {span(_seconds(now, since))}" if since else ""
        text = f"feed {feed.name} is read again{spell}"
        return dataclasses.replace(after, alerted=None), [
            Alert("feed_recovered", feed.name, text, stamp)
        ]
    return _quiet(feed, config, after, now)


def _quiet(
    feed: FeedConfig, config: Config, state: FeedState, now: datetime
) -> tuple[FeedState, list[Alert]]:
    if not state.newest_talk or not state.median_gap:
        return state, []
    quiet_for = _seconds(now, state.newest_talk)
    limit = max(QUIET_FACTOR * state.median_gap, config.quiet_after)
    if quiet_for <= limit:
        cleared = dataclasses.replace(state, alerted=None) if state.alerted == "quiet" else state
        return cleared, []
    if state.alerted == "quiet":
        return state, []
    text = (
        f"feed {feed.name} has brought no new talk for {span(quiet_for)}; it usually brings"
        f" one every {span(state.median_gap)}"
    )
    return dataclasses.replace(state, alerted="quiet"), [
        Alert("feed_quiet", feed.name, text, iso(now))
    ]


class DeadLetterAlerts:
    """An observer of deliveries: the first dead letter of a destination is reported to
    the other alert destinations (once, until it accepts a delivery again). An alert that
    is dead-lettered itself raises none."""

    def __init__(
        self, store: Store, alerts: Callable[[], tuple[str, ...]], kick: Callable[[list[str]], None]
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.kick = kick

    def __call__(self, event: Event) -> None:
        if not isinstance(event, DeliveryEvent):
            return
        state = self.store.destination(event.destination)
        if event.outcome is DeliveryOutcome.SENT and state.alerted_dead:
            self.store.save_destination(dataclasses.replace(state, alerted_dead=False))
            self.store.flush()
            return
        if event.outcome is not DeliveryOutcome.DEAD or event.guid.startswith(ALERT_GUID_PREFIX):
            return
        told = [name for name in self.alerts() if name != event.destination]
        if not told or state.alerted_dead:
            return
        text = (
            f"destination {event.destination} is dead-lettering deliveries (feed {event.feed}):"
            f" {event.error}; see `watcher status`, then `watcher redeliver {event.destination}`"
        )
        alert = Alert("dead_letters", event.destination, text, iso(event.at))
        log.warning("destination %s: alert to %s: %s", event.destination, ", ".join(told), text)
        self.store.queue(event.feed, deliveries(event.feed, [alert], told))
        self.store.save_destination(dataclasses.replace(state, alerted_dead=True))
        self.store.flush()  # written now, as the alert was: a restart does not raise it again
        self.kick(told)


def deliveries(feed: str, alerts: list[Alert], destinations: Iterable[str]) -> list[NewDelivery]:
    """Each alert queued for each alert destination, in `feed`'s outbox."""
    return [
        NewDelivery(
            delivery_id(feed, talk.guid, destination), feed, destination, talk, alert.at, alert
        )
        for alert in alerts
        for talk in [alert.as_talk()]
        for destination in destinations
    ]


def span(seconds: float) -> str:
    """`3d 4h`, `2h 5m`, `40m`, `12s`: how long, as a person says it."""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{secs}s"


def _seconds(now: datetime, stamp: str) -> float:
    return (now - datetime.fromisoformat(stamp)).total_seconds()
