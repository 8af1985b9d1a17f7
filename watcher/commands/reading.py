"""Commands that read feeds for the user and touch no state: inspect, preview, check-config,
test-notify."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import TYPE_CHECKING

from watcher.config import Config, FeedConfig
from watcher.fetch import Fetched, FetchError, new_client
from watcher.filters import routes
from watcher.notifiers import build_notifier
from watcher.notifiers.base import Delivery, DeliveryError
from watcher.resolve import Discovery, check_feeds, fetch_through_page
from watcher.schema import ConfigError, redact_feed_url
from watcher.select import publication_order
from watcher.store.records import delivery_id
from watcher.talk import Talk

if TYPE_CHECKING:
    from watcher.feed import ParsedFeed


from watcher.commands import EXIT_FAILED, EXIT_OK, INSPECT_MAX_BYTES, config_of

log = logging.getLogger("watcher")


def cmd_inspect(args: argparse.Namespace) -> int:
    explained: FeedConfig | None = None
    config: Config | None = None
    if args.explain:
        config = config_of(args)
        explained = next((feed for feed in config.feeds if feed.name == args.source), None)
        if explained is None:
            known = ", ".join(feed.name for feed in config.feeds)
            raise ConfigError(f"{config.path}: no feed named {args.source!r} (feeds: {known})")
    url = explained.url if explained else args.source

    parsed = _read_feed(url, args.source)
    if parsed is None:
        return EXIT_FAILED
    if explained is not None and config is not None:
        return _explain(explained, config, parsed.talks, args.json)
    if args.json:
        json.dump(
            [talk.to_dict() for talk in parsed.talks], sys.stdout, indent=2, ensure_ascii=False
        )
        sys.stdout.write("\n")
    else:
        print(f"{len(parsed.talks)} talks in {parsed.title or args.source}\n")
        for talk in parsed.talks:
            from watcher.notifiers.console import render as render_console

            print(render_console(Delivery("", parsed.title or "feed", "", talk)))
    return EXIT_OK


def _read_feed(url: str, shown: str) -> ParsedFeed | None:
    """A feed read in full for the user (inspect, preview), touching no state; its
    problems said on standard error (None: it cannot be read)."""

    async def read() -> tuple[Fetched, Discovery | None]:
        async with new_client(30.0) as client:
            return await fetch_through_page(client, url, max_bytes=INSPECT_MAX_BYTES, deadline=60.0)

    try:
        fetched, discovery = asyncio.run(read())
    except FetchError as exc:
        print(f"watcher: error: {shown}: {exc}", file=sys.stderr)
        return None
    if discovery:  # in full: the user asked for this page, and may want its feed's address
        print(
            f"watcher: {shown} is a page; reading the feed it advertises: "
            f"{discovery.feed_url}{discovery.note}",
            file=sys.stderr,
        )
    from watcher.feed import parse_feed

    parsed = parse_feed(fetched.body)
    if parsed.error:
        print(f"watcher: error: {shown}: {parsed.error}", file=sys.stderr)
        return None
    for warning in parsed.warnings:
        print(f"watcher: warning: {shown}: {warning}", file=sys.stderr)
    return parsed


def cmd_preview(args: argparse.Namespace) -> int:
    """The rendered message per destination of the feed, for its newest talks; exit 1 if
    one breaks its destination's limits."""
    config = config_of(args)
    feed = next((feed for feed in config.feeds if feed.name == args.feed), None)
    if feed is None:
        known = ", ".join(feed.name for feed in config.feeds)
        raise ConfigError(f"{config.path}: no feed named {args.feed!r} (feeds: {known})")
    names = [args.dest] if args.dest else list(feed.notify)
    unknown = [name for name in names if name not in config.destinations]
    if unknown:
        known = ", ".join(config.destinations)
        raise ConfigError(
            f"{config.path}: no destination named {unknown[0]!r} (destinations: {known})"
        )
    parsed = _read_feed(feed.url, feed.name)
    if parsed is None:
        return EXIT_FAILED
    newest = list(reversed(publication_order(parsed.talks)))[: max(args.last, 0)]
    filters = [(name, config.destinations[name].filter) for name in names]
    broken = False
    for talk in newest:
        for name, sent, why in routes(talk, feed.name, feed.filter, filters):
            dest = config.destinations[name]
            print(
                f"=== {name} ({dest.type}): {talk.title}: {'sent' if sent else 'dropped'} ({why})"
            )
            if not sent:
                continue
            notifier = build_notifier(name, dest.type, dest.settings)
            render = getattr(notifier, "preview", None)
            if render is None:
                print(f"(no preview for {dest.type} destinations)\n")
                continue
            delivery = Delivery(delivery_id(feed.name, talk.guid, name), feed.name, name, talk)
            text, problems = render(delivery)
            print(text.rstrip("\n") + "\n")
            for problem in problems:
                broken = True
                print(f"!!! breaks {dest.type}'s limits: {problem}")
    return EXIT_FAILED if broken else EXIT_OK


def _explain(feed: FeedConfig, config: Config, talks: list[Talk], as_json: bool) -> int:
    """Per talk and destination of the feed: sent or dropped, and by which rule."""
    filters = [(name, config.destinations[name].filter) for name in feed.notify]
    decided = [(talk, routes(talk, feed.name, feed.filter, filters)) for talk in talks]
    if as_json:
        report = [
            {
                "talk": talk.to_dict(),
                "routes": [{"destination": d, "sent": sent, "why": why} for d, sent, why in found],
            }
            for talk, found in decided
        ]
        json.dump(report, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return EXIT_OK
    for talk, found in decided:
        print(f"{talk.title} ({talk.guid})")
        for name, sent, why in found:
            print(f"  {name}: {'sent' if sent else 'dropped'} ({why})")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    config = config_of(args)
    found = asyncio.run(check_feeds(config)) if args.fetch else {}
    print(f"{config.path}: OK")
    print(f"  state: {config.state}")
    print(f"  feeds ({len(config.feeds)}):")
    for feed in config.feeds:
        targets = ", ".join(feed.notify)
        print(f"    {feed.name}: {redact_feed_url(feed.url)} every {feed.interval:g}s → {targets}")
        if feed.name in found:
            print(f"      {found[feed.name]}")
    print(f"  destinations ({len(config.destinations)}):")
    for dest in config.destinations.values():
        print(f"    {dest.name}: {dest.describe()}")
    return EXIT_OK


SAMPLE_TALK = Talk(
    guid="watcher:test-notify",
    title="watcher test message",
    speaker="watcher",
    event=None,
    raw_title="watcher test message | watcher",
    url=None,
    video_id=None,
    video_url=None,
    published=None,
    slide_count=None,
    slides_present=0,
    duration=None,
    thumbnail=None,
    first_lines=["If you can read this, the destination works."],
)


def cmd_test_notify(args: argparse.Namespace) -> int:
    config = config_of(args)
    dest = config.destinations.get(args.destination)
    if dest is None:
        known = ", ".join(config.destinations)
        raise ConfigError(
            f"{config.path}: no destination named {args.destination!r} (destinations: {known})"
        )
    notifier = build_notifier(dest.name, dest.type, dest.settings)
    delivery = Delivery("test-notify", "test", dest.name, SAMPLE_TALK)

    async def send() -> None:
        async with new_client(config.timeout) as client:
            await notifier.send(delivery, client)

    try:
        asyncio.run(send())
    except DeliveryError as exc:
        print(f"watcher: error: {dest.name} ({dest.describe()}): {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"sent a test message to {dest.name} ({dest.describe()})")
    return EXIT_OK
