"""One feed's cycle: fetch → parse → diff → record (seen + outbox in one write)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from watcher.clock import iso
from watcher.config import Config, FeedConfig
from watcher.feed import parse_feed
from watcher.fetch import FetchError, fetch
from watcher.store import Store
from watcher.talk import Talk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    feed: str
    ok: bool
    error: str | None = None
    announced: int = 0
    retry_after: float | None = None


def identity_keys(talk: Talk, dedup: Iterable[str]) -> set[str]:
    """The keys a talk is known by: its GUID, and (by default) its link and video id.

    Matching on link and video id keeps a feed that rewrites its GUIDs (new
    domain, http→https, a trailing slash) from re-announcing its back catalogue.
    """
    keys = {f"guid:{talk.guid}"}
    if "link" in dedup and talk.url:
        keys.add(f"link:{normalize_link(talk.url)}")
    if "video_id" in dedup and talk.video_id:
        keys.add(f"video:{talk.video_id}")
    return keys


def normalize_link(url: str) -> str:
    """Scheme-less, lower-case host, no trailing slash: `http://A.com/x/` ≡ `https://a.com/x`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{parts.path.rstrip('/')}{query}"


def publication_order(talks: list[Talk]) -> list[Talk]:
    """Oldest first. Undated talks and ties keep the feed's order read bottom-up
    (feeds list the newest first)."""
    indexed = list(enumerate(talks))
    indexed.sort(key=lambda pair: (pair[1].published or "", -pair[0]))
    return [talk for _, talk in indexed]


def delivery_id(feed: str, guid: str, destination: str) -> str:
    return hashlib.sha256(f"{feed}\n{guid}\n{destination}".encode()).hexdigest()[:32]


async def poll_feed(
    feed: FeedConfig, config: Config, store: Store, client: httpx.AsyncClient, now: datetime
) -> PollResult:
    state = store.feed_state(feed.name)
    same_source = state.get("url") == feed.url
    stamp = iso(now)
    try:
        fetched = await fetch(
            client,
            feed.url,
            etag=state.get("etag") if same_source else None,
            last_modified=state.get("last_modified") if same_source else None,
            max_bytes=config.max_bytes,
            deadline=config.timeout,
        )
    except FetchError as exc:
        return _failed(store, feed, state, stamp, str(exc), exc.retry_after)
    if fetched.permanent_redirect:
        log.warning(
            "feed %s: moved permanently to %s; update its url in the config",
            feed.name,
            fetched.permanent_redirect,
        )
    success = {
        "url": feed.url,
        "last_poll": stamp,
        "last_success": stamp,
        "last_error": None,
        "failures": 0,
    }
    if fetched.not_modified or (
        same_source and fetched.sha256 == state.get("body_sha256") and state.get("baselined")
    ):
        store.update_feed_state(
            feed.name,
            **success,
            etag=fetched.etag or state.get("etag"),
            last_modified=fetched.last_modified or state.get("last_modified"),
        )
        log.debug("feed %s: unchanged", feed.name)
        return PollResult(feed.name, ok=True)
    parsed = await asyncio.to_thread(parse_feed, fetched.body)
    if parsed.error:
        return _failed(store, feed, state, stamp, parsed.error)
    for warning in parsed.warnings:
        log.warning("feed %s: %s", feed.name, warning)
    announce = _record(store, feed, config, state, parsed.talks, now, success, fetched)
    return PollResult(feed.name, ok=True, announced=announce)


@dataclass(frozen=True)
class Diff:
    new: list[tuple[Talk, set[str]]]  # in publication order, with each talk's keys
    present: set[str]  # the keys of every talk in the document


def diff(talks: list[Talk], seen: set[str], dedup: Iterable[str]) -> Diff:
    """Which talks are new: none of their keys seen before (nor earlier in this document)."""
    seen = set(seen)
    new: dict[str, set[str]] = {}
    present: set[str] = set()
    for talk in talks:
        keys = identity_keys(talk, dedup)
        present |= keys
        if keys.isdisjoint(seen):
            new[talk.guid] = keys
            seen |= keys
    ordered = publication_order([talk for talk in talks if talk.guid in new])
    return Diff([(talk, new[talk.guid]) for talk in ordered], present)


def _record(store, feed, config, state, talks, now, success, fetched) -> int:
    stamp = iso(now)
    changes = diff(talks, store.seen_keys(feed.name), feed.dedup)
    baseline = not state.get("baselined")
    announce = [talk for talk, _ in changes.new]
    if baseline:
        announce = announce[len(announce) - feed.notify_existing :] if feed.notify_existing else []
    prune_before = iso(now - timedelta(seconds=config.retention))
    with store.batch():
        for talk, keys in changes.new:
            store.mark_seen(feed.name, talk.guid, keys, stamp)
        forgotten = store.refresh_presence(feed.name, changes.present, stamp, prune_before)
        for talk in announce:
            for destination in feed.notify:
                store.enqueue(
                    {
                        "id": delivery_id(feed.name, talk.guid, destination),
                        "feed": feed.name,
                        "destination": destination,
                        "talk": talk.to_dict(),
                        "created": stamp,
                    }
                )
        store.update_feed_state(
            feed.name,
            **success,
            baselined=True,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            body_sha256=fetched.sha256,
        )
    if forgotten:
        log.info(
            "feed %s: forgot %d talks gone from the feed for over %gs",
            feed.name,
            forgotten,
            config.retention,
        )
    if baseline:
        log.info(
            "feed %s: first poll, %d talks recorded as seen, %d announced",
            feed.name,
            len(changes.new),
            len(announce),
        )
    elif announce:
        log.info("feed %s: %d new talks", feed.name, len(announce))
    return len(announce)


def _failed(store, feed, state, stamp, error, retry_after=None) -> PollResult:
    failures = int(state.get("failures") or 0) + 1
    store.update_feed_state(
        feed.name, last_poll=stamp, last_error=error, last_error_at=stamp, failures=failures
    )
    log.error("feed %s: %s", feed.name, error)
    return PollResult(feed.name, ok=False, error=error, retry_after=retry_after)
