"""`watcher status`: what the state says, per feed and per destination.

The running daemon serves it live (`/status.json`, from memory). Without one, or
without its HTTP side, it is read from the files (written atomically, so this
never takes the daemon's lock); there, when each feed was last polled and how
each destination fared are as the daemon last wrote them (once a minute), and
the report says when that was (`as_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.clock import iso
from watcher.config import Config
from watcher.schema import redact_feed_url
from watcher.store import DestinationState, Fate, FeedState, Snapshot, read_snapshot


def status_from_files(config: Config, now: datetime, daemon: str | None = None) -> dict[str, Any]:
    """The status as the files say; `daemon` says what runs (or why it was not asked)."""
    snapshot = read_snapshot(config.state)
    try:
        written = datetime.fromtimestamp(config.state.stat().st_mtime, UTC)
    except FileNotFoundError:
        written = None
    report = collect_status(config, snapshot, now, source="files")
    report["as_of"] = iso(written) if written else None
    report["daemon"] = daemon or "not running"
    return report


def collect_status(
    config: Config,
    snapshot: Snapshot,
    now: datetime,
    *,
    source: str = "daemon",
    scheduled: Mapping[str, datetime | None] | None = None,
) -> dict[str, Any]:
    """The report: per feed and per destination. `scheduled`: when the daemon's schedule
    runs each feed next (else it is reckoned from the last poll)."""
    feeds = []
    for feed in config.feeds:
        state = snapshot.feeds.get(feed.name) or FeedState(feed.name)
        feeds.append(
            {
                "name": feed.name,
                "last_poll": state.last_poll,
                "next_poll": _next_poll(state, feed.interval, (scheduled or {}).get(feed.name)),
                "gone": state.gone and state.gone_url == feed.url,
                "last_success": state.last_success,
                "last_error": state.last_error,
                "degraded": state.degraded,
                "consecutive_failures": state.failures,
                "talks_seen": snapshot.talks_seen.get(feed.name, 0),
                "discovered_url": _discovered(state, feed.url),
                "last_new_talk": state.last_new_talk,
                "quiet_for_seconds": _since(state.last_new_talk, now),
            }
        )
    destinations = [
        _destination(name, dest.describe(), snapshot, removed=False)
        for name, dest in config.destinations.items()
    ]
    kept = {entry.destination for entry in snapshot.outbox} - set(config.destinations)
    destinations += [_destination(name, "", snapshot, removed=True) for name in sorted(kept)]
    configured = {feed.name for feed in config.feeds}
    leftover = [
        {"name": name, "talks_seen": snapshot.talks_seen.get(name, 0)}
        for name in sorted(set(snapshot.feeds) - configured)
    ]
    return {
        "state": str(config.state),
        "generated": now.isoformat(),
        "source": source,
        "as_of": now.isoformat(),
        "feeds": feeds,
        "destinations": destinations,
        "leftover_feeds": leftover,  # state kept of feeds no longer in the config
        "recent_talks": recent_talks(snapshot),
    }


def _destination(name: str, target: str, snapshot: Snapshot, removed: bool) -> dict[str, Any]:
    """A destination's queue and results; `removed`: no longer in the config, its queue
    kept until it comes back."""
    entries = [e for e in snapshot.outbox if e.destination == name]
    live = [e for e in entries if not e.dead]
    retrying = [e for e in live if e.attempts]
    fared = snapshot.destinations.get(name) or DestinationState(name)
    return {
        "name": name,
        "target": target or "removed from the config; its queue is kept",
        "removed": removed,
        "queued": len(live),
        "retrying": len(retrying),
        "next_attempt": min((e.next_attempt for e in retrying if e.next_attempt), default=None),
        "dead_lettered": len(entries) - len(live),
        "dead_letters": [
            {
                "id": e.id,
                "feed": e.feed,
                "title": e.talk.title,
                "attempts": e.attempts,
                "error": e.last_error,
                "since": e.dead_at,
            }
            for e in entries
            if e.dead
        ],
        "last_success": fared.last_success,
        "last_error": fared.last_error,
    }


def recent_talks(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The last talks queued, newest first, and what became of each delivery: the outbox
    says which are still queued, retrying or dead-lettered (it is written at once); the
    recent talks (written once a minute) say when the others were delivered."""
    outbox = {(e.feed, e.talk.guid, e.destination): e for e in snapshot.outbox}
    talks = []
    for recent in reversed(snapshot.recent):
        talk = recent.talk
        deliveries = []
        for name, fate in recent.destinations.items():
            entry = outbox.get((recent.feed, talk.guid, name))
            state, at, error = fate.state, fate.at, fate.error
            if entry is not None:
                state = Fate.RETRYING if entry.attempts else Fate.QUEUED
                state = Fate.DEAD if entry.dead else state
                at = entry.dead_at if entry.dead else entry.next_attempt
                error = entry.last_error
            elif state is not Fate.DELIVERED:  # gone from the queue: it was accepted
                state, at, error = Fate.DELIVERED, None, None
            deliveries.append({"destination": name, "state": str(state), "at": at, "error": error})
        talks.append(
            {
                "feed": recent.feed,
                "guid": talk.guid,
                "title": talk.title,
                "speaker": talk.speaker,
                "event": talk.event,
                "slide_count": talk.slide_count,
                "duration": talk.duration,
                "duration_is_partial": talk.duration_is_partial,
                "published": talk.published,
                "url": talk.url,
                "video_url": talk.video_url,
                "thumbnail": talk.thumbnail,
                "queued_at": recent.queued_at,
                "deliveries": deliveries,
            }
        )
    return talks


def _since(stamp: str | None, now: datetime) -> int | None:
    """Whole seconds from `stamp` to `now`, or None without a stamp."""
    if not stamp:
        return None
    return max(int((now - datetime.fromisoformat(stamp)).total_seconds()), 0)


def _discovered(state: FeedState, url: str) -> str | None:
    """The feed found on the page the feed's url names, if it is a page (redacted)."""
    if state.page_url != url or not state.discovered_url:
        return None
    return redact_feed_url(state.discovered_url)


def _next_poll(state: FeedState, interval: float, scheduled: datetime | None) -> str | None:
    """When the daemon polls next: its schedule's next run (the first at or after the end
    of a back-off); without the daemon, about, from the last poll."""
    if scheduled is not None:
        if state.retry_at and (retry_at := datetime.fromisoformat(state.retry_at)) > scheduled:
            runs = -(-(retry_at - scheduled).total_seconds() // interval)
            scheduled += timedelta(seconds=runs * interval)
        return iso(scheduled)
    if not state.last_poll:
        return None
    if state.retry_at:
        return state.retry_at
    last = datetime.fromisoformat(state.last_poll)
    return iso(last + timedelta(seconds=interval))


def format_status(report: dict[str, Any]) -> str:
    lines = [f"state: {report['state']}"]
    if report.get("source") == "daemon":
        lines.append(f"live from the running daemon at {report['generated']}")
    else:
        lines.append(
            f"read from the state files ({report.get('daemon') or 'no daemon'}); last polls and"
            f" delivery results as written at {report.get('as_of') or 'never'}"
        )
    lines += ["", "feeds:"]
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
    if report.get("leftover_feeds"):
        names = ", ".join(feed["name"] for feed in report["leftover_feeds"])
        lines.append(f"  state kept of feeds no longer in the config: {names}")
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
