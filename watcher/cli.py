"""The `watcher` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from watcher import __version__, logs
from watcher.app import Watcher
from watcher.clock import iso, utcnow
from watcher.config import Config, FeedConfig, config_path, load_config
from watcher.errors import WatcherError
from watcher.fetch import Fetched, FetchError, new_client
from watcher.filters import routes
from watcher.holder import holder
from watcher.logs import FORMATS
from watcher.notifiers import build_notifier
from watcher.notifiers.base import Delivery, DeliveryError
from watcher.notifiers.console import render as render_console
from watcher.resolve import Discovery, check_feeds, fetch_through_page
from watcher.schema import ConfigError, redact_feed_url
from watcher.status import format_status, status_from_files
from watcher.store import Store, StoreError
from watcher.talk import Talk

log = logging.getLogger("watcher")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a tool that SIGPIPE ended (`cat | head`)
INSPECT_MAX_BYTES = 50_000_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watcher",
        description="Watch feeds of conference talks and announce new talks.",
    )
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        help="log lines as text (the default) or one JSON object per line;"
        " overrides [watcher] log_format",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--config",
            metavar="PATH",
            help="config file (default: $WATCHER_CONFIG, else config/watcher.toml)",
        )
        # Also after the command (`watcher run -v`); SUPPRESS keeps a `-v` given before it.
        sub.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug details"
        )
        sub.add_argument(
            "--log-format", choices=FORMATS, default=argparse.SUPPRESS, help="text or json"
        )
        return sub

    with_config(
        commands.add_parser(
            "run", help="poll every feed now and then on schedule, until Ctrl-C or SIGTERM"
        )
    )
    poll = with_config(
        commands.add_parser(
            "poll", help="poll every feed (or one) once, deliver, and exit: 1 if any feed failed"
        )
    )
    poll.add_argument("--feed", metavar="NAME", help="poll only this feed")
    inspect = commands.add_parser(
        "inspect", help="show the talks read from a feed URL or file; touches no state"
    )
    inspect.add_argument("source", metavar="SOURCE", help="a feed URL or a local file")
    inspect.add_argument("--json", action="store_true", help="print a JSON array of talks")
    inspect.add_argument(
        "--explain",
        action="store_true",
        help="SOURCE is a feed of the config: say, per talk and destination, which filter"
        " rule sends or drops it",
    )
    inspect.add_argument("--config", metavar="PATH", help="the config, for --explain")
    check = with_config(
        commands.add_parser(
            "check-config", help="validate the config and print a summary; exit 2 if invalid"
        )
    )
    check.add_argument(
        "--fetch",
        action="store_true",
        help="also fetch each feed (or read its file) and say whether it is a feed, or a page"
        " and the feed it advertises; what cannot be read is reported, not an error",
    )
    redeliver = with_config(
        commands.add_parser(
            "redeliver",
            help="send dead-lettered deliveries again (of one destination, or all), then exit",
        )
    )
    redeliver.add_argument("destination", nargs="?", metavar="DEST", help="a destination name")
    test_notify = with_config(
        commands.add_parser(
            "test-notify",
            help="send a sample talk to one destination now, to check it works; touches no state",
        )
    )
    test_notify.add_argument("destination", metavar="DEST", help="a destination name")
    status = with_config(
        commands.add_parser(
            "status", help="per feed and destination: last poll, errors, queued deliveries"
        )
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    with_config(
        commands.add_parser(
            "reload", help="make the running daemon re-read its config (as SIGHUP does)"
        )
    )
    prune = with_config(
        commands.add_parser(
            "prune", help="remove the state of feeds no longer in the config (not while it runs)"
        )
    )
    prune.add_argument(
        "--force", action="store_true", help="also when they still have deliveries queued"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.verbose, args.log_format or "text")
    for noisy in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Its skipped and missed runs: the daemon reports them itself, once (daemon._log_missed).
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    logging.getLogger("apscheduler.executors").setLevel(logging.ERROR)
    handler = COMMANDS[args.command]
    try:
        code = handler(args)
        sys.stdout.flush()  # here, where a closed pipe can be caught, not at exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except (ConfigError, StoreError) as exc:
        _error(exc)
        return EXIT_USAGE
    except WatcherError as exc:  # the root: one line, never a traceback
        _error(exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


def _error(exc: WatcherError) -> None:
    """The one line a command ends with on an error: a log line too when logs are JSON."""
    if logs.current_format() == "json":
        log.error("%s", exc)
    else:
        print(f"watcher: error: {exc}", file=sys.stderr)


def _stdout_closed() -> int:
    """Whoever read standard output has gone (`watcher inspect FEED --json | head`): stop
    quietly, as Unix tools do. Standard output is pointed at /dev/null first, or Python
    would complain again when it flushes it at exit (the Python docs' "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _config(args: argparse.Namespace) -> Config:
    config = load_config(config_path(args.config))
    if args.log_format is None:  # `--log-format` wins over the config
        logs.set_format(config.log_format)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    from watcher.daemon import run  # APScheduler: only the daemon needs it

    return asyncio.run(run(config))


def cmd_poll(args: argparse.Namespace) -> int:
    config = _config(args)
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
            watcher = Watcher(config, store, client, utcnow)
            results = await watcher.poll_all(feeds)
            await watcher.drain()
    finally:
        store.close()
    failed = [r for r in results if not r.ok]
    announced = sum(r.announced for r in results)
    log.info("polled %d feeds: %d failed, %d new talks", len(results), len(failed), announced)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    explained: FeedConfig | None = None
    config: Config | None = None
    if args.explain:
        config = _config(args)
        explained = next((feed for feed in config.feeds if feed.name == args.source), None)
        if explained is None:
            known = ", ".join(feed.name for feed in config.feeds)
            raise ConfigError(f"{config.path}: no feed named {args.source!r} (feeds: {known})")
    url = explained.url if explained else args.source

    async def read() -> tuple[Fetched, Discovery | None]:
        async with new_client(30.0) as client:
            return await fetch_through_page(client, url, max_bytes=INSPECT_MAX_BYTES, deadline=60.0)

    try:
        fetched, discovery = asyncio.run(read())
    except FetchError as exc:
        print(f"watcher: error: {args.source}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    body = fetched.body
    if discovery:  # in full: the user asked for this page, and may want its feed's address
        print(
            f"watcher: {args.source} is a page; reading the feed it advertises: "
            f"{discovery.feed_url}{discovery.note}",
            file=sys.stderr,
        )
    from watcher.feed import parse_feed

    parsed = parse_feed(body)
    if parsed.error:
        print(f"watcher: error: {args.source}: {parsed.error}", file=sys.stderr)
        return EXIT_FAILED
    for warning in parsed.warnings:
        print(f"watcher: warning: {args.source}: {warning}", file=sys.stderr)
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
            print(render_console(Delivery("", parsed.title or "feed", "", talk)))
    return EXIT_OK


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
    config = _config(args)
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


def cmd_redeliver(args: argparse.Namespace) -> int:
    config = _config(args)
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
    config = _config(args)
    running = holder(config.state)
    if running is None:
        log.error("%s: no daemon holds this state; nothing to reload", config.state)
        return EXIT_FAILED
    before = _ask(running.address, "GET", "/healthz")["reload"] if running.address else None
    os.kill(running.pid, signal.SIGHUP)
    if running.address is None:
        log.info("asked the daemon (pid %d) to reload; its log says how it went", running.pid)
        return EXIT_OK
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        after = _ask(running.address, "GET", "/healthz")["reload"]
        if after != before:
            failed = after.startswith("the last reload failed")
            (log.error if failed else log.info)("daemon (pid %d): %s", running.pid, after)
            return EXIT_FAILED if failed else EXIT_OK
        time.sleep(0.1)
    log.error("the daemon (pid %d) did not say it reloaded within 10s", running.pid)
    return EXIT_FAILED


def cmd_prune(args: argparse.Namespace) -> int:
    """Remove leftover feeds' state. One with deliveries still queued is kept unless
    `--force`: those talks were never delivered."""
    config = _config(args)
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
    config = _config(args)
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


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
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


COMMANDS = {
    "run": cmd_run,
    "poll": cmd_poll,
    "inspect": cmd_inspect,
    "check-config": cmd_check_config,
    "status": cmd_status,
    "redeliver": cmd_redeliver,
    "reload": cmd_reload,
    "prune": cmd_prune,
    "test-notify": cmd_test_notify,
}
