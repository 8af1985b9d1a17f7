"""Commands of the state and the daemon: run, poll, status, redeliver, reload, prune.

While a daemon holds the state, status, redeliver and reload go through it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx

from watcher.app import Watcher
from watcher.backfill import Selection, backfill, selection
from watcher.clock import iso, utcnow
from watcher.config import Config, FeedConfig
from watcher.errors import WatcherError
from watcher.fetch import new_client
from watcher.holder import holder
from watcher.schema import ConfigError
from watcher.status import format_status, status_from_files
from watcher.store import Store

if TYPE_CHECKING:
    pass


from watcher.commands import EXIT_FAILED, EXIT_OK, config_of

log = logging.getLogger("watcher")


def cmd_run(args: argparse.Namespace) -> int:
    config = config_of(args)
    from watcher.daemon import run  # APScheduler: only the daemon needs it

    return asyncio.run(run(config))


def cmd_poll(args: argparse.Namespace) -> int:
    config = config_of(args)
    feeds = config.feeds
    if args.feed:
        feeds = tuple(feed for feed in feeds if feed.name == args.feed)
        if not feeds:
            known = ", ".join(feed.name for feed in config.feeds)
            raise ConfigError(f"{config.path}: no feed named {args.feed!r} (feeds: {known})")
    return asyncio.run(_poll(config, feeds))


async def _poll(config: Config, feeds: Iterable[FeedConfig]) -> int:
    store = Store(config.state)
    try:
        async with new_client(config.timeout) as client:
            results = await Watcher(config, store, client, utcnow).poll_and_deliver(feeds)
    finally:
        store.close()
    failed = [r for r in results if not r.ok]
    announced = sum(r.announced for r in results)
    log.info("polled %d feeds: %d failed, %d new talks", len(results), len(failed), announced)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_redeliver(args: argparse.Namespace) -> int:
    config = config_of(args)
    if args.destination and args.destination not in config.destinations:
        known = ", ".join(config.destinations)
        raise ConfigError(
            f"{config.path}: no destination named {args.destination!r} (destinations: {known})"
        )
    running = holder(config.state)
    if running is None:
        return asyncio.run(_redeliver(config, args.destination))
    if running.address is None:
        log.error(
            "%s: the daemon (pid %d) holds the state and has no [watcher] listen to be asked;"
            " stop it, or give it one",
            config.state,
            running.pid,
        )
        return EXIT_FAILED
    answer = _ask(running.address, "POST", "/redeliver", {"destination": args.destination})
    log.info("the daemon re-queued %d dead-lettered deliveries", answer["requeued"])
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    """Validate the config here first (a bad one is reported and not sent), then signal
    the daemon and, if it serves its HTTP side, wait for it to say how the reload went."""
    config = config_of(args)
    running = holder(config.state)
    if running is None:
        log.error("%s: no daemon holds this state; nothing to reload", config.state)
        return EXIT_FAILED
    before = _ask(running.address, "GET", "/healthz")["reloads"] if running.address else None
    os.kill(running.pid, signal.SIGHUP)
    if running.address is None:
        log.info("asked the daemon (pid %d) to reload; its log says how it went", running.pid)
        return EXIT_OK
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        health = _ask(running.address, "GET", "/healthz")
        if health["reloads"] != before:
            said = health["reload"]
            failed = said.startswith("the last reload failed")
            (log.error if failed else log.info)("daemon (pid %d): %s", running.pid, said)
            return EXIT_FAILED if failed else EXIT_OK
        time.sleep(0.1)
    log.error("the daemon (pid %d) did not say it reloaded within 10s", running.pid)
    return EXIT_FAILED


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove leftover feeds' state. One with deliveries still queued is kept unless
    `--force`: those talks were never delivered."""
    config = config_of(args)
    store = Store(config.state)
    try:
        configured = {feed.name for feed in config.feeds}
        kept = []
        for feed in store.feeds():
            if feed in configured:
                continue
            queued = [e for e in store.snapshot().outbox if e.feed == feed]
            if queued and not args.force:
                kept.append(f"{feed} ({len(queued)} deliveries queued)")
                continue
            dropped = store.remove_feed(feed)
            log.info(
                "removed the state of feed %s (%d queued deliveries dropped)",
                feed,
                dropped,
            )
    finally:
        store.close()
    if kept:
        log.error(
            "kept, as their talks were never delivered (--force drops them): %s", ", ".join(kept)
        )
        return EXIT_FAILED
    return EXIT_OK


def _ask(address: str, method: str, path: str, body: Any = None) -> Any:
    """A request to the daemon's HTTP side; its failure is one line (WatcherError)."""
    try:
        token = os.environ.get("WATCHER_ADMIN_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(trust_env=False, timeout=10.0, headers=headers) as client:
            answer = client.request(method, f"{address}{path}", json=body)
            if answer.status_code >= 400 and path != "/healthz":
                raise WatcherError(f"{address}{path}: HTTP {answer.status_code}: {answer.text}")
            return answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise WatcherError(f"{address}{path}: the daemon did not answer: {exc}") from None


async def _redeliver(config: Config, destination: str | None) -> int:
    store = Store(config.state)
    try:
        count = store.requeue_dead(destination, iso(utcnow()))
        log.info("re-queued %d dead-lettered deliveries", count)
        async with new_client(config.timeout) as client:
            result = await Watcher(config, store, client, utcnow).drain()
    finally:
        store.close()
    log.info(
        "delivered %d; %d failed and stay queued or dead-lettered",
        result.sent,
        result.failed + result.dead,
    )
    return EXIT_OK if not (result.failed or result.dead) else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    config = config_of(args)
    report = _read_status(config)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_status(report))
    return EXIT_OK


def _read_status(config: Config) -> dict[str, Any]:
    """Ask the daemon holding the state, if it serves its HTTP side; else read the files."""
    running = holder(config.state)
    if running is None:
        return status_from_files(config, utcnow())
    if running.address is None:
        note = f"the daemon (pid {running.pid}) has no [watcher] listen to be asked"
        return status_from_files(config, utcnow(), note)
    try:
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            answer = client.get(f"{running.address}/status.json")
            answer.raise_for_status()
            report: dict[str, Any] = answer.json()
            return report
    except (httpx.HTTPError, ValueError) as exc:
        note = f"the daemon (pid {running.pid}) did not answer at {running.address}: {exc}"
        log.warning("%s; reading the state files", note)
        return status_from_files(config, utcnow(), note)


def cmd_backfill(args: argparse.Namespace) -> int:
    """Through the running daemon if one holds the state, else here, then deliver."""
    config = config_of(args)
    feed = next((feed for feed in config.feeds if feed.name == args.feed), None)
    if feed is None:
        known = ", ".join(feed.name for feed in config.feeds)
        raise ConfigError(f"{config.path}: no feed named {args.feed!r} (feeds: {known})")
    request = {
        "feed": feed.name,
        "last": args.last,
        "since": args.since,
        "destinations": [args.dest] if args.dest else [],
        "force": args.force,
    }
    chosen = selection(request, feed)  # a bad one is said here, before any daemon is asked
    running = holder(config.state)
    if running is not None:
        if running.address is None:
            log.error(
                "%s: the daemon (pid %d) holds the state and has no [watcher] listen to be"
                " asked; stop it, or give it one",
                config.state,
                running.pid,
            )
            return EXIT_FAILED
        answer = _ask(running.address, "POST", "/backfill", request)
        log.info("the daemon queued %d deliveries", answer["queued"])
        return EXIT_OK
    return asyncio.run(_backfill(config, feed, chosen))


async def _backfill(config: Config, feed: FeedConfig, chosen: Selection) -> int:
    store = Store(config.state)
    try:
        async with new_client(config.timeout) as client:
            queued = await backfill(store, client, config, feed, chosen)
            log.info("queued %d deliveries", len(queued))
            result = await Watcher(config, store, client, utcnow).drain()
    finally:
        store.close()
    log.info("delivered %d; %d failed and stay queued", result.sent, result.failed + result.dead)
    return EXIT_FAILED if result.failed or result.dead else EXIT_OK
