"""One feed's cycle: fetch → parse → diff → record (seen + outbox in one write)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from watcher.clock import iso
from watcher.config import Config, FeedConfig
from watcher.fetch import FeedGone, FetchError, NotAFeedError
from watcher.resolve import Source, fetch_source, not_a_feed
from watcher.schema import redact_feed_url
from watcher.select import Diff, diff
from watcher.store import Store, StoreError
from watcher.talk import Talk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    feed: str
    ok: bool
    error: str | None = None
    announced: int = 0
    outcome: str = "changed"  # see watcher.events.POLL_OUTCOMES
    degraded: bool = False


def delivery_id(feed: str, guid: str, destination: str) -> str:
    return hashlib.sha256(f"{feed}\n{guid}\n{destination}".encode()).hexdigest()[:32]


def backoff_delay(
    failures: int, interval: float, cap: float, retry_after: float | None, spread: float = 0.5
) -> float:
    """Seconds until a failing feed is polled again: its interval, doubled for each
    failure in a row after the first, up to `cap`; at least the server's Retry-After.
    `spread` (0 to 1, at random) moves it by up to a quarter either way, so that feeds
    failing together, or one feed and a server that flaps, fall out of step."""
    cap = max(cap, interval)
    delay = min(interval * 2 ** max(failures - 1, 0) * (0.75 + spread / 2), cap)
    return min(max(delay, retry_after), cap) if retry_after is not None else delay


def backing_off(feed: FeedConfig, state: dict, now: datetime) -> str | None:
    """Why the daemon should not poll this feed now, if it should not."""
    if state.get("gone") and state.get("gone_url") == feed.url:
        return "gone (HTTP 410); change its url in the config to poll it again"
    retry_at = state.get("retry_at")
    if retry_at and datetime.fromisoformat(retry_at) > now:
        return f"backing off after {state.get('failures')} failures until {retry_at}"
    return None


async def poll_feed(
    feed: FeedConfig,
    config: Config,
    store: Store,
    client: httpx.AsyncClient,
    now: datetime,
    respect_backoff: bool = False,
) -> PollResult:
    """One poll, in its stages: load the feed's state → fetch → read → select what to
    announce → record it all in one write."""
    state = store.feed_state(feed.name)
    if respect_backoff and (reason := backing_off(feed, state, now)):
        log.debug("feed %s: skipped: %s", feed.name, reason)
        return PollResult(feed.name, ok=False, error=reason, outcome="skipped")
    source = await _fetch(feed, config, store, client, state, now)
    if isinstance(source, PollResult):
        return source
    fetched = source.fetched
    success = _success(feed, source, now)
    if fetched.not_modified or (
        source.same_source and fetched.sha256 == state.get("body_sha256") and state.get("baselined")
    ):
        return _unchanged(store, feed, state, success, fetched)
    # Imported here: feedparser and lxml are a fifth of the start-up of a `watcher poll`
    # that gets a 304 and needs neither.
    from watcher.skim import read_feed

    read = await asyncio.to_thread(read_feed, fetched.body)
    if read.error:
        error = not_a_feed(store, feed, source, read.error)
        return _failed(store, feed, config, state, now, NotAFeedError(error))
    if read.degraded:
        success |= _degraded(state, read.warnings)
    changes = diff(read.identities, store.seen_keys(feed.name), feed.dedup)
    baseline = not state.get("baselined")
    announce = _to_announce(feed, source, changes, read.identities, baseline)
    talks = await asyncio.to_thread(read.talks, announce) if announce else []
    for warning in read.warnings:
        log.warning("feed %s: %s", feed.name, warning)
    changes, announced, unread = _read_in_full(feed, changes, announce, talks, success)
    try:
        _record(store, feed, config, changes, announced, baseline, now, success, fetched, unread)
    except (OSError, StoreError) as exc:  # e.g. a full disk: nothing of this poll was kept
        log.error("feed %s: cannot record this poll: %s", feed.name, exc)
        error = f"cannot record this poll: {exc}"
        return PollResult(feed.name, ok=False, error=error, outcome="failed")
    return PollResult(feed.name, ok=True, announced=len(announced), degraded=read.degraded)


async def _fetch(feed, config, store, client, state, now) -> Source | PollResult:
    """The fetch stage: what the feed's URL (or the feed its page advertises) holds, or the
    failed poll."""
    try:
        source = await fetch_source(feed, state, store, client, config)
    except FetchError as exc:
        return _failed(store, feed, config, state, now, exc)
    except Exception as exc:  # a fetch bug must fail this feed, never the whole cycle
        log.exception("feed %s: unexpected error while fetching", feed.name)
        unexpected = FetchError(f"unexpected {type(exc).__name__}: {exc}")
        return _failed(store, feed, config, state, now, unexpected)
    if source.fetched.permanent_redirect:
        log.warning(
            "feed %s: moved permanently to %s; update its url in the config",
            feed.name,
            redact_feed_url(source.fetched.permanent_redirect),
        )
    return source


def _success(feed: FeedConfig, source: Source, now: datetime) -> dict:
    """The feed's state after a poll that fetched what it asked for."""
    stamp = iso(now)
    return {
        "url": feed.url,
        "last_poll": stamp,
        "last_success": stamp,
        "last_error": None,
        "failures": 0,
        "retry_at": None,
        "gone": False,
        "degraded": False,
        **source.state,
    }


def _unchanged(store: Store, feed: FeedConfig, state: dict, success: dict, fetched) -> PollResult:
    """A 304, or the body read last time: only the feed's state changes."""
    store.update_feed_state(
        feed.name,
        **(success | _still_degraded(state)),
        etag=fetched.etag or state.get("etag"),
        last_modified=fetched.last_modified or state.get("last_modified"),
    )
    log.debug("feed %s: unchanged", feed.name)
    outcome = "not_modified" if fetched.not_modified else "unchanged"
    return PollResult(feed.name, ok=True, outcome=outcome)


def _to_announce(
    feed: FeedConfig, source: Source, changes: Diff, talks: list[Talk], baseline: bool
) -> list[str]:
    """The select stage: the new talks to announce (their GUIDs). A first poll announces
    `notify_existing` of the newest; another feed found on the page, none."""
    announce = [talk.guid for talk, _ in changes.new]
    if baseline:
        return (
            announce[max(0, len(announce) - feed.notify_existing) :] if feed.notify_existing else []
        )
    if source.switched and _another_feed(changes, talks):
        log.warning(
            "feed %s: the feed found on its page now (%s) shares few talks with the one read "
            "before: its %d talks not seen yet are recorded as seen, not announced",
            feed.name,
            redact_feed_url(source.state["discovered_url"]),
            len(announce),
        )
        return []
    return announce


def _read_in_full(
    feed: FeedConfig, changes: Diff, announce: list[str], talks: list[Talk], success: dict
) -> tuple[Diff, list[Talk], list[str]]:
    """The talks to announce as read in full, and the GUIDs of those that could not be:
    these are neither marked seen nor queued, and the body is read again next poll."""
    by_guid = {talk.guid: talk for talk in talks}
    unread = [guid for guid in announce if guid not in by_guid]
    if unread:
        success["last_error"] = (
            f"{len(unread)} new talks could not be read in full; trying again next poll"
        )
        log.error("feed %s: %s", feed.name, success["last_error"])
        changes = dataclasses.replace(
            changes, new=[(t, keys) for t, keys in changes.new if t.guid not in unread]
        )
    return changes, [by_guid[guid] for guid in announce if guid in by_guid], unread


def _degraded(state: dict, warnings: list[str]) -> dict:
    """The bookkeeping of a poll whose document could only be read by recovering from
    broken XML: its talks count, but it is no sign that a failing feed is healthy again,
    so the failures in a row are kept (neither reset nor counted up)."""
    problem = next((w for w in warnings if w.startswith("malformed feed")), "malformed feed")
    return {
        "degraded": True,
        "failures": int(state.get("failures") or 0),
        "last_error": f"degraded: {problem}; read what could be recovered",
    }


def _still_degraded(state: dict) -> dict:
    """An unchanged body of a degraded poll is as degraded as it was."""
    if not state.get("degraded"):
        return {}
    return {
        "degraded": True,
        "failures": int(state.get("failures") or 0),
        "last_error": state.get("last_error"),
    }


def _another_feed(changes: Diff, talks: list[Talk]) -> bool:
    """Whether a feed newly found on a page is another feed than the one read before (not
    the same feed at a new address): most of its talks are new."""
    return len(changes.new) + len(changes.quiet) > len(talks) / 2


def _record(store, feed, config, changes, announced, baseline, now, success, fetched, unread):
    """One write: the new talks marked seen, their deliveries queued, the feed's state.

    With talks left `unread`, the validators and hash are not kept, so that the next
    poll fetches and reads the body again instead of ending at "unchanged"."""
    stamp = iso(now)
    prune_before = iso(now - timedelta(seconds=config.retention))
    with store.batch():
        seen = [*changes.new, *changes.quiet]
        store.mark_seen(feed.name, [(talk.guid, keys) for talk, keys in seen], stamp)
        store.add_seen_keys(feed.name, changes.rekeyed)
        forgotten = store.refresh_presence(feed.name, changes.present, stamp, prune_before)
        for talk in announced:
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
            etag=None if unread else fetched.etag,
            last_modified=None if unread else fetched.last_modified,
            body_sha256=None if unread else fetched.sha256,
        )
    if forgotten:
        log.info(
            "feed %s: forgot %d talks gone from the feed for over %gs",
            feed.name,
            forgotten,
            config.retention,
        )
    if changes.quiet:
        log.info(
            "feed %s: %d items that share a guid with a talk seen before recorded as seen, not "
            "announced (the state is from before such items were told apart)",
            feed.name,
            len(changes.quiet),
        )
    if baseline:
        log.info(
            "feed %s: first poll, %d talks recorded as seen, %d announced",
            feed.name,
            len(changes.new),
            len(announced),
        )
    elif announced:
        log.info("feed %s: %d new talks", feed.name, len(announced))


# A failure that will repeat until something changes (404, not a feed) is backed off as
# this many more failures in a row would be: its first retry is 4 intervals out, not 1.
PERMANENT_HEAD_START = 2


def _failed(store, feed, config, state, now, exc: FetchError) -> PollResult:
    """Record a failed poll; the back-off is chosen by the error's class (watcher.errors)."""
    failures = int(state.get("failures") or 0) + 1
    error = str(exc)
    gone = isinstance(exc, FeedGone)
    steps = failures + PERMANENT_HEAD_START if exc.permanent else failures
    delay = backoff_delay(
        steps, feed.interval, config.max_backoff, exc.retry_after, random.random()
    )
    backing_off = steps > 1 or exc.retry_after is not None
    store.update_feed_state(
        feed.name,
        last_poll=iso(now),
        last_error=error,
        last_error_at=iso(now),
        failures=failures,
        retry_at=iso(now + timedelta(seconds=delay)) if backing_off else None,
        gone=gone,
        gone_url=feed.url if gone else None,
    )
    if gone:
        log.warning(
            "feed %s: %s: the feed is gone; no more polls until its url changes", feed.name, error
        )
    else:
        log.error("feed %s: %s", feed.name, error)
    return PollResult(feed.name, ok=False, error=error, outcome="failed")
