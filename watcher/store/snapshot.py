"""What the state says, read without the lock (for `watcher status`): the files are
written atomically, so reading them while the daemon runs is safe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.store.files import AtomicJSONStorage, StoreError, check_shape, feeds_folder
from watcher.store.migrate import V1_FIELDS, schema_version
from watcher.store.records import (
    FEED_FIELDS,
    MAIN_FIELDS,
    SCHEMA_VERSION,
    DestinationState,
    FeedState,
    OutboxEntry,
    RecentTalk,
)


@dataclass(frozen=True)
class Snapshot:
    feeds: dict[str, FeedState]
    talks_seen: dict[str, int]
    outbox: list[OutboxEntry]  # in queue order
    destinations: dict[str, DestinationState]
    recent: list[RecentTalk] = field(default_factory=list)  # oldest first


def read_snapshot(path: Path) -> Snapshot:
    main = AtomicJSONStorage(str(path), None).read() or {}
    version = schema_version(main)
    if version == 1:
        check_shape(main, path, V1_FIELDS)
        return _snapshot_v1(main)
    if version not in (None, SCHEMA_VERSION):  # a newer watcher's: its fields mean other things
        raise StoreError(
            f"{path}: state schema version {version} is not supported by this watcher"
            f" (expects {SCHEMA_VERSION})"
        )
    check_shape(main, path, MAIN_FIELDS)
    activity = {row["name"]: row for row in main.get("activity", {}).values()}
    feeds: dict[str, FeedState] = {}
    talks_seen: dict[str, int] = {}
    outbox: list[OutboxEntry] = []
    for feed_path in sorted(feeds_folder(path).glob("*.json")):
        data = AtomicJSONStorage(str(feed_path), FEED_FIELDS).read() or {}
        row = data.get("feed", {}).get("1")
        if row is None:
            continue
        name = row["name"]
        feeds[name] = FeedState.from_rows(name, row, activity.get(name, {}))
        talks_seen[name] = len(data.get("seen", {}))
        outbox += map(OutboxEntry.from_row, data.get("outbox", {}).values())
    return Snapshot(feeds, talks_seen, _in_order(outbox), _destinations(main), recent_talks(main))


def _snapshot_v1(data: dict[str, Any]) -> Snapshot:
    feeds = {
        row["name"]: FeedState.from_rows(row["name"], row, {})
        for row in data.get("feeds", {}).values()
    }
    talks_seen: dict[str, int] = {}
    for row in data.get("seen", {}).values():
        talks_seen[row["feed"]] = talks_seen.get(row["feed"], 0) + 1
    outbox = [OutboxEntry.from_row(row) for row in data.get("outbox", {}).values()]
    return Snapshot(feeds, talks_seen, _in_order(outbox), _destinations(data))


def _in_order(outbox: list[OutboxEntry]) -> list[OutboxEntry]:
    return sorted(outbox, key=lambda entry: entry.seq)


def _destinations(data: dict[str, Any]) -> dict[str, DestinationState]:
    rows = data.get("destinations", {}).values()
    return {row["name"]: DestinationState.from_row(row) for row in rows}


def recent_talks(data: dict[str, Any]) -> list[RecentTalk]:
    """The main file's recent talks, oldest first (none in a file from before them)."""
    table = data.get("recent", {})
    ids = sorted(table, key=lambda doc_id: int(doc_id) if str(doc_id).isdigit() else 0)
    return [RecentTalk.from_row(table[doc_id]) for doc_id in ids]
