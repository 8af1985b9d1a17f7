"""One feed's poll, in its stages: the state → fetch → read → select → commit.

The feed's state is in memory; its file is read only when there is a document to
read (the talks seen, the items known), and written once (`Store.commit`, one write
of the feed's file); what is new is decided by pure functions of what was read
(`watcher.readers`, `watcher.select`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from watcher.alerts import cadence, deliveries, feed_alerts
from watcher.backoff import PERMANENT_HEAD_START, backing_off, backoff_delay
from watcher.clock import iso
from watcher.config import Config, FeedConfig
from watcher.events import PollOutcome
from watcher.fetch import FeedGone, Fetched, FetchError
from watcher.filters import routes
from watcher.readers import Readers, Reading
from watcher.resolve import Source, fetch_source, forget, not_a_feed
from watcher.schema import redact_feed_url
from watcher.select import Diff
from watcher.store import FeedCommit, FeedState, NewDelivery, SeenTalk, Store, StoreError
from watcher.store.records import delivery_id
from watcher.talk import Talk

log = logging.getLogger(__name__)

_IN_THREADS = Readers(workers=0)
HASH_APART_BYTES = 256 * 1024  # a body this large is hashed in a thread (0.2 ms or more)


@dataclass(frozen=True)
class PollResult:
    feed: str
    outcome: PollOutcome
    error: str | None = None
    announced: int = 0
    degraded: bool = False
    fetch_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome not in (PollOutcome.FAILED, PollOutcome.SKIPPED)


async def poll_feed(
    feed: FeedConfig,
    config: Config,
    store: Store,
    client: httpx.AsyncClient,
    now: datetime,
    respect_backoff: bool = False,
    readers: Readers | None = None,
) -> PollResult:
    """One poll, in its stages: the feed's state (in memory) → fetch → read → the talks
    seen (from its file, only once there is a document to read) → select what to
    announce → commit it all in one write."""
    state = store.feed_state(feed.name)
    readers = readers or _IN_THREADS
    if respect_backoff and (reason := backing_off(feed, state, now)):
        log.debug("feed %s: skipped: %s", feed.name, reason)
        return PollResult(feed.name, PollOutcome.SKIPPED, error=reason)
    started = time.monotonic()
    source = await _fetch(feed, config, client, state)
    fetch_seconds = time.monotonic() - started
    if isinstance(source, FetchError):
        return _failed(store, feed, config, state, now, source, fetch_seconds)
    fetched = source.fetched
    if len(fetched.body) >= HASH_APART_BYTES:  # hashlib lets go of the GIL: off the loop
        await asyncio.to_thread(lambda: fetched.sha256)
    success = _success(feed, state, source, now)
    if fetched.not_modified or (
        source.same_source and fetched.sha256 == state.body_sha256 and state.baselined
    ):
        return _unchanged(store, feed, config, state, success, fetched, now, fetch_seconds)
    seen_keys = store.seen_keys(feed.name)
    baseline = not state.baselined
    known = store.known_items(feed.name)
    read = await readers.read(
        fetched.body, seen_keys, feed.dedup, baseline, feed.notify_existing, known
    )
    if read.lost:  # no fault of the feed's: a transient failure, tried again next poll
        failure = FetchError(f"unreadable: {read.error}")
        return _failed(store, feed, config, state, now, failure, fetch_seconds)
    if read.error:
        failure = not_a_feed(feed, source, read.error)
        return _failed(store, feed, config, state, now, failure, fetch_seconds)
    log.debug(
        "feed %s: %d items, %d of them known from the last read (not read again)",
        feed.name,
        len(read.identities),
        read.reused,
    )
    if read.degraded:
        success = _degraded(success, state, read.warnings)
    newest, usual = cadence(talk.published for talk in read.identities)
    if usual is not None:
        success = dataclasses.replace(success, newest_talk=newest, median_gap=usual)
    changes = read.changes
    assert changes is not None  # a reading without an error has them (`read_for_poll`)
    for guid, kinds in changes.matched:
        log.info(
            "feed %s: item %s matches a seen talk by %s (its GUID changed?); not announced",
            feed.name,
            guid,
            " and ".join(kinds),
        )
    announce = _to_announce(feed, source, changes, read.identities, baseline)
    talks = await _read_talks(fetched.body, read, announce)
    for warning in read.warnings:
        log.warning("feed %s: %s", feed.name, warning)
    changes, announced, success = _read_in_full(feed, changes, announce, talks, success, fetched)
    try:
        success, alerts = _alerts(feed, config, state, success, now)
        commit = _commit(feed, config, changes, announced, now, success)
        forgotten = await store.record(
            dataclasses.replace(commit, deliveries=[*commit.deliveries, *alerts], items=read.items)
        )
    except (OSError, StoreError) as exc:  # e.g. a full disk: nothing of this poll was kept
        log.error("feed %s: cannot record this poll: %s", feed.name, exc)
        error = f"cannot record this poll: {exc}"
        return PollResult(feed.name, PollOutcome.FAILED, error, fetch_seconds=fetch_seconds)
    queued = {d.talk.guid for d in commit.deliveries}  # the filters may drop some for all
    _log_recorded(feed, config, changes, announced, baseline, forgotten, len(queued))
    return PollResult(
        feed.name, PollOutcome.CHANGED, None, len(queued), read.degraded, fetch_seconds
    )


async def _read_talks(body: bytes, read: Reading, announce: list[str]) -> list[Talk]:
    """The talks to announce, read in full: the reading has them (it read those that could
    be); any other is read here, from the document, so that none is left out."""
    wanted = set(announce)
    talks = [talk for talk in read.talks if talk.guid in wanted]
    missing = wanted - {talk.guid for talk in talks}
    if not missing:
        return talks
    from watcher.skim import read_feed

    return await asyncio.to_thread(lambda: read_feed(body).talks(wanted))


async def _fetch(
    feed: FeedConfig, config: Config, client: httpx.AsyncClient, state: FeedState
) -> Source | FetchError:
    """The fetch stage: what the feed's URL (or the feed its page advertises) holds, or why
    it could not be fetched."""
    try:
        source = await fetch_source(feed, state, client, config)
    except FetchError as exc:
        return exc
    except Exception as exc:  # a fetch bug must fail this feed, never the whole cycle
        log.exception("feed %s: unexpected error while fetching", feed.name)
        return FetchError(f"unexpected {type(exc).__name__}: {exc}")
    if source.fetched.permanent_redirect:
        log.warning(
            "feed %s: moved permanently to %s; update its url in the config",
            feed.name,
            redact_feed_url(source.fetched.permanent_redirect),
        )
    return source


def _success(feed: FeedConfig, state: FeedState, source: Source, now: datetime) -> FeedState:
    """The feed's state after a poll that fetched what it asked for."""
    stamp = iso(now)
    return dataclasses.replace(
        state,
        url=feed.url,
        last_poll=stamp,
        last_success=stamp,
        last_error=None,
        failures=0,
        retry_at=None,
        gone=False,
        degraded=False,
        failing_since=None,
        discovered_url=source.discovered_url,
        page_url=source.page_url,
    )


def _unchanged(
    store: Store,
    feed: FeedConfig,
    config: Config,
    state: FeedState,
    success: FeedState,
    fetched: Fetched,
    now: datetime,
    fetch_seconds: float,
) -> PollResult:
    """A 304, or the body read last time: only the feed's state changes (and an alert of
    its recovery, or of its silence, may be queued)."""
    if state.degraded:  # as degraded as it was
        success = dataclasses.replace(
            success,
            degraded=True,
            failures=state.failures,
            failing_since=state.failing_since,
            last_error=state.last_error,
        )
    success = dataclasses.replace(
        success,
        etag=fetched.etag or state.etag,
        last_modified=fetched.last_modified or state.last_modified,
    )
    success, alerts = _alerts(feed, config, state, success, now)
    try:
        store.commit(FeedCommit(success, at=success.last_poll or "", deliveries=alerts))
    except (OSError, StoreError) as exc:  # a full disk: one line, as at the other commits
        log.error("feed %s: cannot record this poll: %s", feed.name, exc)
        error = f"cannot record this poll: {exc}"
        return PollResult(feed.name, PollOutcome.FAILED, error, fetch_seconds=fetch_seconds)
    log.debug("feed %s: unchanged", feed.name)
    outcome = PollOutcome.NOT_MODIFIED if fetched.not_modified else PollOutcome.UNCHANGED
    return PollResult(feed.name, outcome, fetch_seconds=fetch_seconds)


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
            redact_feed_url(source.discovered_url or ""),
            len(announce),
        )
        return []
    return announce


def _read_in_full(
    feed: FeedConfig,
    changes: Diff,
    announce: list[str],
    talks: list[Talk],
    success: FeedState,
    fetched: Fetched,
) -> tuple[Diff, list[Talk], FeedState]:
    """The talks to announce as read in full, and the state to record. Talks that could
    not be read in full are neither marked seen nor queued, and the validators and hash
    are not kept, so that the next poll fetches and reads the body again instead of
    ending at "unchanged"."""
    by_guid = {talk.guid: talk for talk in talks}
    unread = [guid for guid in announce if guid not in by_guid]
    announced = [by_guid[guid] for guid in announce if guid in by_guid]
    if not unread:
        success = dataclasses.replace(
            success,
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            body_sha256=fetched.sha256,
        )
        return changes, announced, success
    error = f"{len(unread)} new talks could not be read in full; trying again next poll"
    log.error("feed %s: %s", feed.name, error)
    changes = dataclasses.replace(
        changes, new=[(t, keys) for t, keys in changes.new if t.guid not in unread]
    )
    success = dataclasses.replace(
        success, last_error=error, etag=None, last_modified=None, body_sha256=None
    )
    return changes, announced, success


def _degraded(success: FeedState, state: FeedState, warnings: list[str]) -> FeedState:
    """The state after a poll whose document could only be read by recovering from broken
    XML: its talks count, but it is no sign that a failing feed is healthy again, so the
    failures in a row are kept (neither reset nor counted up)."""
    problem = next((w for w in warnings if w.startswith("malformed feed")), "malformed feed")
    return dataclasses.replace(
        success,
        degraded=True,
        failures=state.failures,
        failing_since=state.failing_since,
        last_error=f"degraded: {problem}; read what could be recovered",
    )


def _another_feed(changes: Diff, talks: list[Talk]) -> bool:
    """Whether a feed newly found on a page is another feed than the one read before (not
    the same feed at a new address): most of its talks are new."""
    return len(changes.new) + len(changes.quiet) > len(talks) / 2


def _commit(
    feed: FeedConfig,
    config: Config,
    changes: Diff,
    announced: list[Talk],
    now: datetime,
    state: FeedState,
) -> FeedCommit:
    """The commit stage: the new talks marked seen, their deliveries queued, the feed's
    state, as one write."""
    stamp = iso(now)
    seen = [*changes.new, *changes.quiet]
    # A first poll's talks were there before the watcher: they say nothing of how often
    # the feed brings new ones.
    last_new_talk = stamp if announced and state.baselined else state.last_new_talk
    return FeedCommit(
        dataclasses.replace(state, baselined=True, last_new_talk=last_new_talk),
        at=stamp,
        seen=[SeenTalk(talk.guid, tuple(sorted(keys)), stamp) for talk, keys in seen],
        rekeyed=changes.rekeyed,
        present=frozenset(changes.present),
        prune_before=iso(now - timedelta(seconds=config.retention)),
        deliveries=[
            NewDelivery(delivery_id(feed.name, talk.guid, name), feed.name, name, talk, stamp)
            for talk in announced
            for name in _chosen(feed, config, talk)
        ],
    )


def _chosen(feed: FeedConfig, config: Config, talk: Talk) -> list[str]:
    """The destinations a new talk goes to, through the feed's and their filters; with any
    filter, each decision is logged with the rule that made it."""
    filters = [(name, config.destinations[name].filter) for name in feed.notify]
    decided = routes(talk, feed.name, feed.filter, filters)
    if not feed.filter.empty or any(not chosen.empty for _, chosen in filters):
        for name, passes, why in decided:
            said = "sent" if passes else "dropped"
            log.info("feed %s: talk %s to %s: %s (%s)", feed.name, talk.guid, name, said, why)
    return [name for name, passes, _ in decided if passes]


def _alerts(
    feed: FeedConfig, config: Config, before: FeedState, after: FeedState, now: datetime
) -> tuple[FeedState, list[NewDelivery]]:
    """The alerts this poll raises (`watcher.alerts`), queued with its commit."""
    after, alerts = feed_alerts(feed, config, before, after, now)
    for alert in alerts:
        log.warning("feed %s: alert to %s: %s", feed.name, ", ".join(config.alerts), alert.text)
    return after, deliveries(feed.name, alerts, config.alerts)


def _log_recorded(
    feed: FeedConfig,
    config: Config,
    changes: Diff,
    announced: list[Talk],
    baseline: bool,
    forgotten: int,
    queued: int,
) -> None:
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
            queued,
        )
    elif announced:
        log.info("feed %s: %d new talks, %d queued", feed.name, len(announced), queued)


def _failed(
    store: Store,
    feed: FeedConfig,
    config: Config,
    state: FeedState,
    now: datetime,
    exc: FetchError,
    fetch_seconds: float,
) -> PollResult:
    """Record a failed poll; the back-off is chosen by the error's class (watcher.errors)."""
    failures = state.failures + 1
    error = str(exc)
    gone = isinstance(exc, FeedGone)
    steps = failures + PERMANENT_HEAD_START if exc.permanent else failures
    delay = backoff_delay(
        steps, feed.interval, config.max_backoff, exc.retry_after, random.random()
    )
    backing_off = steps > 1 or exc.retry_after is not None
    stamp = iso(now)
    failed = dataclasses.replace(
        forget(state) if exc.forgot_discovered else state,
        last_poll=stamp,
        last_error=error,
        last_error_at=stamp,
        failures=failures,
        retry_at=iso(now + timedelta(seconds=delay)) if backing_off else None,
        gone=gone,
        gone_url=feed.url if gone else None,
        failing_since=(state.failing_since if state.failures else None) or stamp,
    )
    failed, alerts = _alerts(feed, config, state, failed, now)
    try:
        store.commit(FeedCommit(failed, at=stamp, deliveries=alerts))
    except (OSError, StoreError) as exc_store:
        log.error("feed %s: cannot record this poll: %s", feed.name, exc_store)
    if gone:
        log.warning(
            "feed %s: %s: the feed is gone; no more polls until its url changes", feed.name, error
        )
    else:
        log.error("feed %s: %s", feed.name, error)
    return PollResult(feed.name, PollOutcome.FAILED, error, fetch_seconds=fetch_seconds)
