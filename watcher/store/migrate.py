"""Older layouts of the state, read and migrated, losing nothing.

Schema 1 kept everything in one file; schema 2 (now) keeps one file per feed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from watcher.store.files import AtomicJSONStorage, backup_path, check_shape, feed_file_name
from watcher.store.records import SCHEMA_VERSION, FeedState, OutboxEntry

V1_FIELDS = {
    "meta": ("schema_version", "next_seq"),
    "feeds": ("name",),
    "seen": ("feed", "guid", "keys"),
    "outbox": OutboxEntry.REQUIRED,
    "destinations": ("name",),
}


def schema_version(data: Any) -> Any:
    meta = data.get("meta", {}).get("1", {}) if isinstance(data, dict) else {}
    return meta.get("schema_version") if isinstance(meta, dict) else None


def migrate_v1(path: Path, folder: Path) -> None:
    """Split a schema-1 state file (everything in one file) into one file per feed.

    Each feed's file is written before the main file is rewritten, so a migration
    killed half-way is simply done again from the untouched main file. The schema-1
    file is kept as `<state>.schema1`, not as `<state>.bak`: copied back over the state,
    it would be migrated again over newer feed files."""
    data = AtomicJSONStorage(str(path), None).read() or {}
    if schema_version(data) != 1:
        return
    check_shape(data, path, V1_FIELDS)
    per_feed: dict[str, dict[str, dict[str, Any]]] = {}

    def tables(feed: str) -> dict[str, dict[str, Any]]:
        return per_feed.setdefault(feed, {"feed": {"1": {"name": feed}}, "seen": {}, "outbox": {}})

    activity: dict[str, dict[str, Any]] = {}
    for row in data.get("feeds", {}).values():
        name = row["name"]
        state = {key: value for key, value in row.items() if key not in FeedState.ACTIVITY}
        tables(name)["feed"]["1"] = state
        activity[str(len(activity) + 1)] = {
            "name": name,
            **{key: row[key] for key in FeedState.ACTIVITY if key in row},
        }
    for table in ("seen", "outbox"):
        for row in data.get(table, {}).values():
            rows = tables(row["feed"])[table]
            if table == "seen":
                row = {key: value for key, value in row.items() if key != "feed"}
            rows[str(len(rows) + 1)] = row
    shutil.copyfile(path, path.with_name(f"{path.name}.schema1"))
    for name, feed_tables in per_feed.items():
        AtomicJSONStorage(str(folder / feed_file_name(name))).write(feed_tables)
    AtomicJSONStorage(str(path)).write(
        {
            "meta": {"1": {"schema_version": SCHEMA_VERSION}},
            "destinations": data.get("destinations", {}),
            "activity": activity,
        }
    )
    backup_path(path).unlink(missing_ok=True)
