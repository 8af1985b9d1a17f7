"""`watcher backfill`: talks already seen, queued on purpose (the newest N, or those
published since a date), through the filters, to the feed's destinations; not to a
destination that accepted one before, unless forced."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from watcher.clock import iso, utcnow
from watcher.config import Config, FeedConfig
from watcher.filters import routes
from watcher.resolve import fetch_through_page
from watcher.schema import ConfigError
from watcher.select import identity_keys, publication_order
from watcher.store import NewDelivery, Store
from watcher.store.records import delivery_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    last: int | None = None  # the newest N talks
    since: datetime | None = None  # or those published since then
    destinations: tuple[str, ...] = ()  # only these (else the feed's)
    force: bool = False  # also to destinations that accepted them before


def parse_since(value: str) -> datetime:
    """`2026-06-01` or an ISO 8601 time → a UTC time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--since: expected a date like 2026-06-01, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def selection(request: Any, feed: FeedConfig) -> Selection:
    """A backfill's choice from its request (the command's, or the daemon's POST body),
    checked: a bad one is a ConfigError, which says what."""
    if not isinstance(request, Mapping):
        raise ConfigError("backfill: expected a JSON object")
    last, since = request.get("last"), request.get("since")
    if (last is None) == (since is None):
        raise ConfigError("backfill: give one of --last N or --since DATE")
    if last is not None and (not isinstance(last, int) or isinstance(last, bool) or last < 1):
        raise ConfigError(f"--last: expected a whole number of talks, 1 or more, got {last!r}")
    if since is not None and not isinstance(since, str):
        raise ConfigError(f"--since: expected a date like 2026-06-01, got {since!r}")
    names = request.get("destinations") or []
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError("backfill: destinations: expected a list of names")
    strangers = [name for name in names if name not in feed.notify]
    if strangers:
        notified = ", ".join(feed.notify)
        raise ConfigError(
            f"feed {feed.name} does not notify {strangers[0]!r} (it notifies: {notified})"
        )
    return Selection(
        last=last,
        since=parse_since(since) if since is not None else None,
        destinations=tuple(names),
        force=bool(request.get("force")),
    )


async def backfill(
    store: Store, client: httpx.AsyncClient, config: Config, feed: FeedConfig, chosen: Selection
) -> list[NewDelivery]:
    """Fetch the feed (its state untouched) and queue the chosen seen talks; returns what
    was queued."""
    fetched, _ = await fetch_through_page(
        client, feed.url, max_bytes=config.max_bytes, deadline=config.timeout
    )
    from watcher.skim import read_feed  # feedparser: only when something was fetched

    read = await asyncio.to_thread(read_feed, fetched.body)
    if read.error:
        raise ConfigError(f"feed {feed.name}: {read.error}")
    seen = store.seen_talks(feed.name)
    by_key = {key: talk for talk in seen for key in talk.keys}
    known = [
        (talk, by_key[key])
        for talk in reversed(publication_order(read.identities))
        for key in sorted(identity_keys(talk, feed.dedup) & by_key.keys())[:1]
    ]
    if chosen.since is not None:
        since = iso(chosen.since)
        known = [(talk, row) for talk, row in known if (talk.published or "") >= since]
    if chosen.last is not None:
        known = known[: chosen.last]
    full = {
        talk.guid: talk for talk in await asyncio.to_thread(read.talks, [t.guid for t, _ in known])
    }
    names = chosen.destinations or feed.notify
    filters = [(name, config.destinations[name].filter) for name in names]
    stamp = iso(utcnow())
    wanted = []
    unknown = 0
    for identity, row in reversed(known):  # oldest first: the queue's order
        talk = full.get(identity.guid)
        if talk is None:
            continue
        for name, passes, _ in routes(talk, feed.name, feed.filter, filters):
            # None: seen before deliveries were recorded; it may have been sent.
            maybe_sent = row.delivered is None or name in row.delivered
            if not passes or (maybe_sent and not chosen.force):
                unknown += passes and row.delivered is None
                continue
            # A talk maybe sent before gets a new id when forced: receivers drop repeats.
            named = f"{row.guid}\nbackfill {stamp}" if maybe_sent else row.guid
            talk_seen = dataclasses.replace(talk, guid=row.guid)  # as it was announced
            wanted.append(
                NewDelivery(delivery_id(feed.name, named, name), feed.name, name, talk_seen, stamp)
            )
    if unknown:
        log.warning(
            "feed %s: %d deliveries left out: their talks were seen before this watcher recorded"
            " deliveries, so they may have been sent; --force sends them",
            feed.name,
            unknown,
        )
    return store.queue(feed.name, wanted)
