"""The `watcher` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from watcher import __version__, logs
from watcher.commands import EXIT_FAILED, EXIT_USAGE
from watcher.commands.reading import cmd_check_config, cmd_inspect, cmd_preview, cmd_test_notify
from watcher.commands.running import (
    cmd_backfill,
    cmd_poll,
    cmd_prune,
    cmd_redeliver,
    cmd_reload,
    cmd_run,
    cmd_status,
)
from watcher.errors import WatcherError
from watcher.logs import FORMATS
from watcher.schema import ConfigError
from watcher.store import StoreError

if TYPE_CHECKING:
    pass

log = logging.getLogger("watcher")

EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a tool that SIGPIPE ended (`cat | head`)


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
    preview = with_config(
        commands.add_parser(
            "preview",
            help="show what each destination of a feed would get for its newest talks, and"
            " which filter rule sends or drops each; touches no state",
        )
    )
    preview.add_argument("feed", metavar="FEED", help="a feed of the config")
    preview.add_argument("--dest", metavar="NAME", help="only this destination")
    preview.add_argument("--last", type=int, default=1, metavar="N", help="the N newest (1)")
    backfill = with_config(
        commands.add_parser(
            "backfill",
            help="queue talks already seen (the newest N, or since a date) for delivery",
        )
    )
    backfill.add_argument("feed", metavar="FEED", help="a feed of the config")
    which = backfill.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, metavar="N", help="the N newest talks")
    which.add_argument("--since", metavar="DATE", help="the talks published since DATE")
    backfill.add_argument("--dest", metavar="NAME", help="only this destination")
    backfill.add_argument(
        "--force", action="store_true", help="also to destinations that accepted them before"
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


COMMANDS = {
    "run": cmd_run,
    "poll": cmd_poll,
    "inspect": cmd_inspect,
    "check-config": cmd_check_config,
    "status": cmd_status,
    "redeliver": cmd_redeliver,
    "reload": cmd_reload,
    "prune": cmd_prune,
    "backfill": cmd_backfill,
    "preview": cmd_preview,
    "test-notify": cmd_test_notify,
}
