"""`watcher status`: what the state says, per feed and per destination.

It only reads the files (written atomically by the daemon), so it works while
the daemon runs and never takes the daemon's lock. When each feed was last
polled is written by the daemon once a minute.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from watcher.clock import iso
from watcher.config import Config
from watcher.schema import redact_feed_url
from watcher.store import read_snapshot


def collect_status(config: Config, now: datetime) -> dict[str, Any]:
    snapshot = read_snapshot(config.state)
    feed_rows = snapshot.feeds
    outbox = snapshot.outbox
    dest_rows = snapshot.destinations
    feeds = []
    for feed in config.feeds:
        row = feed_rows.get(feed.name, {})
        feeds.append(
            {
                "name": feed.name,
                "last_poll": row.get("last_poll"),
                "next_poll": _next_poll(row, feed.interval),
                "gone": bool(row.get("gone")) and row.get("gone_url") == feed.url,
                "last_success": row.get("last_success"),
                "last_error": row.get("last_error"),
                "degraded": bool(row.get("degraded")),
                "consecutive_failures": row.get("failures", 0),
                "talks_seen": row.get("talks_seen", 0),
                "discovered_url": _discovered(row, feed.url),
            }
        )
    destinations = []
    for name, dest in config.destinations.items():
        rows = [r for r in outbox if r.get("destination") == name]
        live = [r for r in rows if not r.get("dead")]
        retrying = [r for r in live if r.get("attempts")]
        row = dest_rows.get(name, {})
        destinations.append(
            {
                "name": name,
                "target": dest.describe(),
                "queued": len(live),
                "retrying": len(retrying),
                "next_attempt": min(
                    (r["next_attempt"] for r in retrying if r.get("next_attempt")), default=None
                ),
                "dead_lettered": len(rows) - len(live),
                "dead_letters": [
                    {
                        "id": r.get("id"),
                        "feed": r.get("feed"),
                        "title": (r.get("talk") or {}).get("title"),
                        "attempts": r.get("attempts"),
                        "error": r.get("last_error"),
                        "since": r.get("dead_at"),
                    }
                    for r in rows
                    if r.get("dead")
                ],
                "last_success": row.get("last_success"),
                "last_error": row.get("last_error"),
            }
        )
    return {
        "state": str(config.state),
        "generated": now.isoformat(),
        "feeds": feeds,
        "destinations": destinations,
    }


def _discovered(row: dict[str, Any], url: str) -> str | None:
    """The feed found on the page the feed's url names, if it is a page (redacted)."""
    if row.get("page_url") != url or not row.get("discovered_url"):
        return None
    return redact_feed_url(row["discovered_url"])


def _next_poll(row: dict[str, Any], interval: float) -> str | None:
    """When the daemon polls next, about (its schedule adds a little jitter)."""
    if not row.get("last_poll"):
        return None
    if row.get("retry_at"):
        return row["retry_at"]
    last = datetime.fromisoformat(row["last_poll"])
    return iso(last + timedelta(seconds=interval))


def format_status(report: dict[str, Any]) -> str:
    lines = [f"state: {report['state']}", "", "feeds:"]
    for feed in report["feeds"]:
        lines.append(
            f"  {feed['name']}: {feed['talks_seen']} talks seen; last poll "
            f"{feed['last_poll'] or 'never'}; last success {feed['last_success'] or 'never'}; "
            f"next poll {feed['next_poll'] or 'at start'}"
        )
        if feed["discovered_url"]:
            lines.append(
                f"    its url is a page; polling the feed it advertises: {feed['discovered_url']}"
            )
        if feed["degraded"]:
            lines.append(
                f"    {feed['last_error']} (failures in a row, not reset by it: "
                f"{feed['consecutive_failures']})"
            )
        elif feed["last_error"]:
            lines.append(
                f"    last error ({feed['consecutive_failures']} in a row): {feed['last_error']}"
            )
    lines += ["", "destinations:"]
    for dest in report["destinations"]:
        lines.append(
            f"  {dest['name']} ({dest['target']}): {dest['queued']} queued, "
            f"{dest['retrying']} retrying, {dest['dead_lettered']} dead-lettered; "
            f"last success {dest['last_success'] or 'never'}"
        )
        if dest["next_attempt"]:
            lines.append(f"    next attempt {dest['next_attempt']}")
        if dest["last_error"]:
            lines.append(f"    last error: {dest['last_error']}")
        for dead in dest["dead_letters"]:
            lines.append(
                f"    dead-lettered: {dead['title']!r} from {dead['feed']}: {dead['error']}"
                f" (watcher redeliver {dest['name']})"
            )
    return "\n".join(lines) + "\n"
