"""The feed behind a URL: the URL itself, or, when it is an HTML page, the feed it advertises.

People configure a channel's or a site's address. When a feed's URL answers with an HTML
page that advertises feeds (`watcher.discover`), the first one is read instead, and the
poll remembers it in the feed's state: `discovered_url`, with `page_url`, the configured
URL it was found on (a change of the config forgets it). Later polls fetch it directly,
with its own ETag and Last-Modified. When it answers 404 or 410, or with an HTML page, it
is forgotten and the page read again in the same poll; when it answers with something else
that is not a feed, it is forgotten and the page read again on the next poll.

The stored validators and body hash always belong to the URL they were fetched from: the
discovered feed's while there is one, else the configured URL's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass

import httpx

from watcher.config import Config, FeedConfig
from watcher.discover import advertised_feeds, is_html_page
from watcher.fetch import Fetched, FetchError, NotAFeedError, fetch, new_client
from watcher.schema import redact_feed_url
from watcher.store import FeedState

log = logging.getLogger(__name__)

NO_FEED = "not a feed: got an HTML page that advertises no RSS or Atom feed"
GONE_STATUSES = (404, 410)  # a discovered feed answering these is looked for again


@dataclass(frozen=True)
class Discovery:
    """A page and the feeds it advertises; `feed_url` is the one read."""

    page_url: str  # the page, as fetched (after redirects)
    feeds: list[str]  # every feed it advertises, in order
    feed_url: str  # the first, or where it redirects permanently

    @property
    def note(self) -> str:
        """What to add when the page advertises more than the feed taken."""
        if len(self.feeds) < 2:
            return ""
        return f" (it advertises {len(self.feeds)} feeds; taking the first)"


async def fetch_through_page(
    client: httpx.AsyncClient,
    source: str,
    *,
    max_bytes: int,
    deadline: float,
    etag: str | None = None,
    last_modified: str | None = None,
    failed: AdvertisedFeedError | None = None,
) -> tuple[Fetched, Discovery | None]:
    """Fetch `source`; when it is an HTML page, fetch the first feed it advertises instead.

    The validators go to `source` only. The feed's own permanent redirect moves
    `Discovery.feed_url`; the `Fetched` returned carries the page's (the config names the
    page). Raises `FetchError` for a page that advertises no feed, or a feed that fails;
    if the page still advertises the feed that just `failed`, that failure again.
    """
    page = await fetch(
        client,
        source,
        etag=etag,
        last_modified=last_modified,
        max_bytes=max_bytes,
        deadline=deadline,
    )
    if page.not_modified or not is_html_page(page.body):
        return page, None
    feeds = await asyncio.to_thread(advertised_feeds, page.body, page.url or source)
    if not feeds:
        raise NotAFeedError(NO_FEED)
    if failed is not None and feeds[0] == failed.url:
        raise failed
    fetched = await fetch_advertised(client, feeds[0], max_bytes=max_bytes, deadline=deadline)
    discovery = Discovery(page.url or source, feeds, fetched.permanent_redirect or feeds[0])
    return dataclasses.replace(fetched, permanent_redirect=page.permanent_redirect), discovery


async def fetch_advertised(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """Fetch a feed a page advertises; its failures name it.

    A 410 from it is not the configured URL's: the feed is not marked gone (`status` is
    dropped), since the page may advertise another feed later. An HTML page is an error:
    a page is never followed from a page."""
    try:
        fetched = await fetch(
            client,
            url,
            etag=etag,
            last_modified=last_modified,
            max_bytes=max_bytes,
            deadline=deadline,
        )
    except FetchError as exc:
        raise AdvertisedFeedError(url, exc, gone=exc.status in GONE_STATUSES) from None
    if not fetched.not_modified and is_html_page(fetched.body):
        raise AdvertisedFeedError(url, NotAFeedError("not a feed: got an HTML page"), gone=True)
    return fetched


class AdvertisedFeedError(FetchError):
    """A feed a page advertises failed; `gone` when it is no longer at its URL (404, 410,
    or an HTML page there now), so that the page is worth reading again."""

    def __init__(self, url: str, original: FetchError, gone: bool) -> None:
        super().__init__(
            f"advertised feed {redact_feed_url(url)}: {original}",
            retry_after=original.retry_after,
            status=None if original.status == 410 else original.status,
        )
        self.url = url
        self.gone = gone
        self.permanent = original.permanent  # a 410 of it is no FeedGone: see fetch_advertised


# Polls: which URL to fetch for a configured feed, and what to remember about it.


@dataclass(frozen=True)
class Source:
    """What a poll fetched for a feed, and what to record with its success."""

    fetched: Fetched
    same_source: bool  # the stored validators and body hash are those of the URL fetched
    discovered_url: str | None = None  # the feed read, found on the page at `page_url`
    page_url: str | None = None
    # A feed found on the page where another URL was read before: maybe another feed
    switched: bool = False

    @property
    def discovered(self) -> bool:
        return self.discovered_url is not None


def remembered_feed(feed: FeedConfig, state: FeedState) -> str | None:
    """The feed found on this feed's page, if one was, on the page its config names now."""
    if state.page_url == feed.url and state.discovered_url:
        return state.discovered_url
    return None


async def fetch_source(
    feed: FeedConfig, state: FeedState, client: httpx.AsyncClient, config: Config
) -> Source:
    """Fetch what a poll of `feed` reads: the feed found on its page before, if any (with
    its validators); else its URL, and, if that is a page, the feed the page advertises.

    When the feed found before is gone, it is forgotten and the page read again; if that
    fails, the error says so (`forgot_discovered`)."""
    failed = None
    # The validators are the configured URL's only if no discovered feed's replaced them.
    same_source = state.url == feed.url and not state.discovered_url
    read_before = state.url == feed.url and state.baselined
    previous = remembered_feed(feed, state) or (feed.url if read_before else None)
    if remembered := remembered_feed(feed, state):
        try:
            return await _fetch_remembered(feed, remembered, state, client, config)
        except AdvertisedFeedError as exc:
            if not exc.gone:
                raise
            log.info(
                "feed %s: %s; reading its page again for the feed it advertises now", feed.name, exc
            )
            state = forget(state)
            failed = exc
    try:
        fetched, discovery = await fetch_through_page(
            client,
            feed.url,
            max_bytes=config.max_bytes,
            deadline=config.timeout,
            etag=state.etag if same_source else None,
            last_modified=state.last_modified if same_source else None,
            failed=failed,
        )
    except FetchError as exc:
        exc.forgot_discovered = failed is not None
        raise
    if discovery is None:
        return Source(fetched, same_source)
    _log_discovery(feed, discovery)
    switched = previous is not None and discovery.feed_url != previous
    return Source(fetched, False, discovery.feed_url, feed.url, switched)


async def _fetch_remembered(
    feed: FeedConfig, url: str, state: FeedState, client: httpx.AsyncClient, config: Config
) -> Source:
    fetched = await fetch_advertised(
        client,
        url,
        etag=state.etag,
        last_modified=state.last_modified,
        max_bytes=config.max_bytes,
        deadline=config.timeout,
    )
    moved = fetched.permanent_redirect
    if moved:  # its validators are the new URL's already
        log.info("feed %s: its feed moved permanently to %s", feed.name, redact_feed_url(moved))
    fetched = dataclasses.replace(fetched, permanent_redirect=None)
    return Source(fetched, True, moved or url, feed.url)


def _log_discovery(feed: FeedConfig, discovery: Discovery) -> None:
    log.info(
        "feed %s: %s is a page; polling the feed it advertises: %s%s",
        feed.name,
        redact_feed_url(feed.url),
        redact_feed_url(discovery.feed_url),
        discovery.note,
    )


def forget(state: FeedState) -> FeedState:
    """The state with the feed found on its page forgotten, and its validators: the next
    fetch is the page's, unconditional."""
    return dataclasses.replace(
        state, discovered_url=None, page_url=None, etag=None, last_modified=None, body_sha256=None
    )


def not_a_feed(feed: FeedConfig, source: Source, error: str) -> NotAFeedError:
    """The error of a poll whose fetch is not a feed. A discovered feed that is not one
    any more is forgotten (`forgot_discovered`): the next poll reads its page again."""
    if source.discovered_url is None:
        return NotAFeedError(error)
    url = redact_feed_url(source.discovered_url)
    log.info("feed %s: forgetting %s; its page is read again next poll", feed.name, url)
    failure = NotAFeedError(f"advertised feed {url}: {error}")
    failure.forgot_discovered = True
    return failure


# `watcher check-config --fetch`: what each configured URL holds.


async def check_feeds(config: Config) -> dict[str, str]:
    """Per feed name, what its URL holds now, in a line: a feed, a page and the feed it
    advertises, or why it cannot be read. Fetched concurrently, `max_concurrency` at once."""
    slots = asyncio.Semaphore(config.max_concurrency)
    async with new_client(config.timeout) as client:

        async def check(feed: FeedConfig) -> tuple[str, str]:
            async with slots:
                return feed.name, await describe_source(client, feed.url, config)

        return dict(await asyncio.gather(*(check(feed) for feed in config.feeds)))


async def describe_source(client: httpx.AsyncClient, url: str, config: Config) -> str:
    """`feed OK, N talks`, `a page; its feed: URL, N talks`, or `error: why`."""
    try:
        fetched, discovery = await fetch_through_page(
            client, url, max_bytes=config.max_bytes, deadline=config.timeout
        )
    except FetchError as exc:
        return f"error: {exc}"
    except Exception as exc:  # one odd URL must not stop the check of the others
        return f"error: unexpected {type(exc).__name__}: {exc}"
    from watcher.skim import read_feed  # feedparser: only when something was fetched

    read = await asyncio.to_thread(read_feed, fetched.body)
    if discovery is None:
        return f"error: {read.error}" if read.error else f"feed OK, {len(read.identities)} talks"
    found = redact_feed_url(discovery.feed_url)
    if read.error:
        return f"error: advertised feed {found}: {read.error}"
    return f"a page; its feed: {found}, {len(read.identities)} talks{discovery.note}"
