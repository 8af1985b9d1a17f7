"""Putting rows in a store the way a poll does (one commit per feed), for tests that
start from a given state."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from watcher.store import FeedCommit, NewDelivery, SeenTalk, Store
from watcher.talk import Talk

NOW = "2026-01-01T00:00:00Z"


def talk(guid: str = "g", title: str | None = None, **fields: Any) -> Talk:
    """A talk with these fields; the others empty."""
    base: dict[str, Any] = dict(
        guid=guid,
        title=title if title is not None else guid,
        speaker=None,
        event=None,
        raw_title=title if title is not None else guid,
        url=None,
        video_id=None,
        video_url=None,
        published=None,
        slide_count=None,
        slides_present=0,
        duration=None,
    )
    return Talk(**{**base, **fields})


def delivery(
    feed: str, guid: str, destination: str = "hook", *, id: str | None = None, created: str = NOW
) -> NewDelivery:
    return NewDelivery(id or f"{feed}-{guid}", feed, destination, talk(guid), created)


def record(
    store: Store,
    feed: str,
    *,
    seen: Iterable[tuple[str, Iterable[str]]] = (),
    deliveries: Iterable[NewDelivery] = (),
    at: str = NOW,
    **state: Any,
) -> int:
    """Commit to a feed: talks seen (guid, keys), deliveries queued, state fields set."""
    current = dataclasses.replace(store.load(feed).state, **state)
    rows = [SeenTalk(guid, tuple(sorted(keys)), at) for guid, keys in seen]
    return store.commit(FeedCommit(current, at=at, seen=rows, deliveries=list(deliveries)))


def queue(store: Store, *talks: tuple[str, str], destination: str = "hook", created: str = NOW):
    """Queue talks (feed, guid) for a destination, in this order; ids are `feed-guid`."""
    for feed, guid in talks:
        record(store, feed, deliveries=[delivery(feed, guid, destination, created=created)])
