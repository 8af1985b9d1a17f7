"""The state: one small TinyDB file per feed, and one for the whole watcher.

A feed's file (`<state>.feeds/<feed>-<hash>.json`) holds that feed's state, the
talks it has seen and its queued deliveries, so recording a poll rewrites only
that feed's file, and a talk is marked seen in the same write that queues its
deliveries. The main file (`<state>`) holds the schema version, the state of
each destination and when each feed was last polled; a poll that finds nothing
new changes no feed file, and those times are written in one go (`flush()`).

Every write is atomic (temporary file, fsync, rename), so killing the process at
any moment leaves files that load. `batch()` makes a group of changes land
together, or, if it raises, not at all. The store knows nothing of HTTP, feeds
or Slack.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.middlewares import Middleware
from tinydb.storages import Storage

from watcher.errors import WatcherError

SCHEMA_VERSION = 2
MAIN_FIELDS = {
    "meta": ("schema_version",),
    "destinations": ("name",),
    "activity": ("name",),
}
FEED_FIELDS = {
    "feed": ("name",),
    "seen": ("guid", "keys"),
    "outbox": ("id", "seq", "feed", "destination", "talk", "created", "attempts"),
}
V1_FIELDS = {
    "meta": ("schema_version", "next_seq"),
    "feeds": ("name",),
    "seen": ("feed", "guid", "keys"),
    "outbox": FEED_FIELDS["outbox"],
    "destinations": ("name",),
}
# Written each poll, needed by nobody to decide anything: kept in the main file, written
# with flush() rather than by every poll.
ACTIVITY_FIELDS = ("last_poll", "last_success")


def temp_prefix(path: Path) -> str:
    """Temporary files of one state file: another state file in the folder has its own."""
    return f".{path.name}.tmp-"


def feeds_folder(path: Path) -> Path:
    """`state/watcher.json` → `state/watcher.json.feeds/`: another state file in the same
    folder (`watcher.db`, say) has its own."""
    return path.with_name(f"{path.name}.feeds")


def feed_file_name(feed: str) -> str:
    """A file name for any feed name: readable, and unique by a hash of the name."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", feed).strip("-")[:48] or "feed"
    return f"{readable}-{hashlib.sha256(feed.encode()).hexdigest()[:10]}.json"


class StoreError(WatcherError):
    """The state file cannot be used; the message says which file and what to do."""


class AtomicJSONStorage(Storage):
    """TinyDB storage that replaces the file atomically on every write.

    A missing file is a new store; an empty or unreadable one is an error, never
    silently an empty store (that would lose the outbox and re-baseline feeds).
    """

    def __init__(self, path: str, required: dict[str, tuple[str, ...]] | None = None) -> None:
        self.path = Path(path)
        self.required = required

    def read(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"{self.path}: cannot read the state file: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = "empty" if not text.strip() else "not valid JSON"
            backup = backup_path(self.path)
            recover = (
                f"The previous version is kept as {backup}: copy it over the state file to"
                " recover, or move both away to start afresh."
                if backup.exists()
                else "No previous version is kept: move it away to start afresh."
            )
            raise StoreError(
                f"{self.path}: the state file is {problem} ({exc.msg} at line {exc.lineno});"
                f" refusing to start, which would re-announce or lose talks. {recover}"
            ) from None
        check_shape(data, self.path, self.required)
        return data

    def write(self, data: dict[str, Any]) -> None:
        try:
            self._write(data)
        except OSError as exc:  # a full disk, a read-only folder: one line, which file
            raise StoreError(f"{self.path}: cannot write the state file: {exc}") from None

    def _write(self, data: dict[str, Any]) -> None:
        directory = self.path.parent
        fd, temp = tempfile.mkstemp(prefix=temp_prefix(self.path), dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                # dumps, not dump: dump streams through the pure-Python encoder, 3x slower
                handle.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
                handle.flush()
                os.fsync(handle.fileno())
            _keep_previous(self.path)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        pass


def check_shape(data: Any, path: Path, required: Mapping[str, tuple[str, ...]] | None) -> None:
    """Refuse a state file that is JSON but not ours (edited by hand, or damaged)."""
    where = f"{path}: the state file is damaged or not a watcher state file"
    if not isinstance(data, dict):
        raise StoreError(f"{where} (it does not hold a JSON object)")
    for name, table in data.items():
        if not isinstance(table, dict) or not all(isinstance(r, dict) for r in table.values()):
            raise StoreError(f"{where} (its {name!r} table is not a table of records)")
        for row in table.values():
            missing = [f for f in (required or {}).get(name, ()) if f not in row]
            if missing:
                raise StoreError(f"{where} (a record of {name!r} has no {missing[0]!r})")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def _keep_previous(path: Path) -> None:
    """Keep the version about to be replaced as `<file>.bak`: a hard link, no copy."""
    staged = path.with_name(f"{temp_prefix(path)}bak-{os.getpid()}")
    try:
        os.link(path, staged)
    except FileNotFoundError:
        return
    except OSError:  # a file system without hard links
        shutil.copyfile(path, staged)
    os.replace(staged, backup_path(path))


class _Batch:
    depth = 0


class BatchingMiddleware(Middleware):
    """Keeps the data in memory; writes through at once, or once at the end of a batch."""

    def __init__(self, batch: _Batch, storage_cls: type[Storage] = AtomicJSONStorage) -> None:
        super().__init__(storage_cls)
        self.batch = batch
        self.cache: dict[str, Any] | None = None
        self.dirty = False

    def read(self) -> dict[str, Any] | None:
        if self.cache is None:
            self.cache = self.storage.read()
        return self.cache

    def write(self, data: dict[str, Any]) -> None:
        self.cache = data
        self.dirty = True
        if self.batch.depth == 0:
            self.flush()

    def discard(self) -> None:
        """Forget unwritten changes: the next read comes from the file again."""
        self.cache = None
        self.dirty = False

    def flush(self) -> None:
        if self.dirty and self.cache is not None:
            self.storage.write(self.cache)
            self.dirty = False

    def close(self) -> None:
        self.flush()
        self.storage.close()


class _File:
    """One TinyDB file and its tables."""

    def __init__(self, path: Path, batch: _Batch, required: Mapping[str, tuple[str, ...]]) -> None:
        self.path = path
        self.middleware = BatchingMiddleware(batch, AtomicJSONStorage)
        self.db = TinyDB(str(path), storage=self.middleware, required=required)
        # cache_size=0: a query cache per table per feed is memory that grows with the feeds
        self.tables = {name: self.db.table(name, cache_size=0) for name in required}

    def __getitem__(self, table: str):
        return self.tables[table]

    def discard(self) -> None:
        self.middleware.discard()
        for table in self.tables.values():
            table.clear_cache()

    def close(self) -> None:
        self.db.close()


def sweep_temporary_files(path: Path) -> int:
    """Remove the temporary files a killed writer of this state left; return how many."""
    removed = 0
    leftovers = list(path.parent.glob(f"{glob.escape(temp_prefix(path))}*"))
    folder = feeds_folder(path)
    if folder.is_dir():
        leftovers += folder.glob(".*.tmp-*")
    for leftover in leftovers:
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed


class Store:
    def __init__(self, path: Path, *, lock: bool = True) -> None:
        self.path = path
        self.folder = feeds_folder(path)
        self._lock_handle = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.folder}: cannot create the state folder: {exc}") from None
        if lock:
            self._lock_handle = _acquire_lock(path)
            sweep_temporary_files(path)
        _migrate_v1(path, self.folder)
        self._batch = _Batch()
        self.main = _File(path, self._batch, MAIN_FIELDS)
        self._check_schema()
        self._activity = {row["name"]: dict(row) for row in self.main["activity"].all()}
        self._activity_in_batch: dict[str, dict[str, Any]] = {}
        self._destinations = {row["name"]: dict(row) for row in self.main["destinations"].all()}
        self._lazy_dirty = False
        self._touched: set[str] = set()
        self._feeds: dict[str, _File] = {}
        self._outbox: dict[str, dict[str, Any]] = {}
        for feed_path in sorted(self.folder.glob("*.json")):
            file = _File(feed_path, self._batch, FEED_FIELDS)
            row = file["feed"].get(doc_id=1)
            if row is None:
                raise StoreError(f"{feed_path}: the state file is damaged (it names no feed)")
            self._feeds[row["name"]] = file
            self._index_outbox([row["name"]])  # and let go of it: one feed in memory at a time
        self._next_seq = max((row["seq"] for row in self._outbox.values()), default=0) + 1

    def _check_schema(self) -> None:
        meta = self.main["meta"]
        row = meta.get(doc_id=1)
        if row is None:
            if len(self.main.db.tables()) > 0:
                raise StoreError(f"{self.path}: not a watcher state file (no schema version)")
            meta.insert({"schema_version": SCHEMA_VERSION})
        elif row.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: state schema version {row.get('schema_version')} is not"
                f" supported by this watcher (expects {SCHEMA_VERSION})"
            )

    def _index_outbox(self, feeds: Iterable[str]) -> None:
        """Keep the queued deliveries of these feeds in memory, for the delivery loops (no
        file is read for them), and let go of the rest of their data."""
        for feed in feeds:
            rows = self._feeds[feed]["outbox"].all()
            self._outbox.update((row["id"], dict(row)) for row in rows)
            self.release(feed)

    def close(self) -> None:
        self.flush()
        for file in (*self._feeds.values(), self.main):
            file.close()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def flush(self) -> None:
        """Write what is kept in memory between flushes: when each feed was last polled,
        and how each destination fared (neither decides anything)."""
        if not self._lazy_dirty:
            return
        with self.batch():
            for name, rows in (("activity", self._activity), ("destinations", self._destinations)):
                table = self.main[name]
                table.truncate()
                table.insert_multiple(rows.values())
        self._lazy_dirty = False

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Everything changed inside lands when it ends (one write per file changed), or,
        if it raises (writing included), nothing of it is kept, in memory either."""
        self._batch.depth += 1
        try:
            yield
            if self._batch.depth == 1:
                for file in self._touched_files():
                    file.middleware.flush()
        except BaseException:
            if self._batch.depth == 1:
                self._roll_back()
            raise
        finally:
            self._batch.depth -= 1
            if self._batch.depth == 0:
                self._end_batch()

    def _touched_files(self) -> list[_File]:
        """The files a batch may have changed: only its feeds' go through `_feed()`."""
        return [self._feeds[feed] for feed in self._touched if feed in self._feeds] + [self.main]

    def _roll_back(self) -> None:
        for file in self._touched_files():
            if file.middleware.dirty:
                file.discard()
        for feed in self._touched:
            created = self._feeds.get(feed)
            if created is not None and not created.path.exists():  # created in this batch
                del self._feeds[feed]
        self._activity_in_batch.clear()
        for delivery_id, row in list(self._outbox.items()):
            if row["feed"] in self._touched:
                del self._outbox[delivery_id]
        self._index_outbox([feed for feed in self._touched if feed in self._feeds])

    def _end_batch(self) -> None:
        for feed, fields in self._activity_in_batch.items():
            self._activity.setdefault(feed, {"name": feed}).update(fields)
            self._lazy_dirty = True
        self._activity_in_batch.clear()
        for feed in self._touched:
            self.release(feed)
        self._touched.clear()

    def release(self, feed: str) -> None:
        """Let go of a feed's data between its polls (it is read again from its file when
        needed): memory follows the feeds being polled, not all the feeds there are."""
        file = self._feeds.get(feed)
        if file is not None and not file.middleware.dirty:
            file.middleware.cache = None

    def _feed(self, feed: str) -> _File:
        if self._batch.depth:
            self._touched.add(feed)
        file = self._feeds.get(feed)
        if file is None:
            file = _File(self.folder / feed_file_name(feed), self._batch, FEED_FIELDS)
            with self.batch():
                file["feed"].insert({"name": feed})
            self._feeds[feed] = file
        return file

    # feed state

    def feed_state(self, feed: str) -> dict[str, Any]:
        file = self._feeds.get(feed)
        row = file["feed"].get(doc_id=1) if file else None
        return {
            **(row or {}),
            **self._activity.get(feed, {}),
            **self._activity_in_batch.get(feed, {}),
        }

    def update_feed_state(self, feed: str, **fields: Any) -> None:
        """Change a feed's state; its file is written only when more than when it was last
        polled changes."""
        activity = {key: fields.pop(key) for key in ACTIVITY_FIELDS if key in fields}
        if activity:
            self._activity_in_batch.setdefault(feed, {}).update(activity)
            if not self._batch.depth:
                self._end_batch()
        table = self._feed(feed)["feed"]
        current = table.get(doc_id=1) or {}
        if any(current.get(key) != value for key, value in fields.items()):
            table.update(fields, doc_ids=[1])

    # seen talks

    def seen_keys(self, feed: str) -> set[str]:
        keys: set[str] = set()
        file = self._feeds.get(feed)
        for row in file["seen"].all() if file else ():
            keys.update(row["keys"])
        return keys

    def seen_count(self, feed: str) -> int:
        file = self._feeds.get(feed)
        return len(file["seen"]) if file else 0

    def mark_seen(self, feed: str, talks: Iterable[tuple[str, Iterable[str]]], now: str) -> None:
        """Record talks (GUID and keys) as seen; none of them may be recorded already."""
        rows = [
            {"guid": guid, "keys": sorted(keys), "first_seen": now, "absent_since": None}
            for guid, keys in talks
        ]
        if rows:
            self._feed(feed)["seen"].insert_multiple(rows)

    def add_seen_keys(self, feed: str, additions: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Let seen talks be known by more keys: each addition names a key the talk is known
        by now, and the keys to add."""
        wanted: dict[str, set[str]] = {}
        for known, keys in additions:
            wanted.setdefault(known, set()).update(keys)
        if not wanted:
            return
        table = self._feed(feed)["seen"]
        for row in table.all():
            extra = set().union(*(wanted[key] for key in row["keys"] if key in wanted))
            if extra - set(row["keys"]):
                table.update({"keys": sorted(set(row["keys"]) | extra)}, doc_ids=[row.doc_id])

    def refresh_presence(
        self, feed: str, present_keys: set[str], now: str, prune_absent_before: str
    ) -> int:
        """Note which seen talks the feed still lists; forget those absent since before
        `prune_absent_before` (a talk still in the feed is never forgotten). Returns how
        many were forgotten."""
        seen = Query()
        table = self._feed(feed)["seen"]
        present = seen.keys.any(present_keys)
        gone = [row.doc_id for row in table.search(~present & (seen.absent_since == None))]  # noqa: E711
        back = [row.doc_id for row in table.search(present & (seen.absent_since != None))]  # noqa: E711
        if gone:
            table.update({"absent_since": now}, doc_ids=gone)
        if back:
            table.update({"absent_since": None}, doc_ids=back)
        expired = seen.absent_since.test(lambda v: v is not None and v < prune_absent_before)
        expired_ids = [row.doc_id for row in table.search(expired)]
        if expired_ids:
            table.remove(doc_ids=expired_ids)
        return len(expired_ids)

    # outbox

    def enqueue(self, entry: dict[str, Any]) -> None:
        """Queue one delivery; an entry with the same id already queued is kept as is."""
        if entry["id"] in self._outbox:
            return
        row = {
            **entry,
            "seq": self._next_seq,
            "attempts": 0,
            "next_attempt": None,
            "last_error": None,
            "dead": False,
        }
        self._feed(entry["feed"])["outbox"].insert(row)
        self._outbox[row["id"]] = row
        self._next_seq += 1

    def pending(self, destination: str) -> list[dict[str, Any]]:
        rows = [
            dict(row)
            for row in self._outbox.values()
            if row["destination"] == destination and not row.get("dead")
        ]
        return sorted(rows, key=lambda row: row["seq"])

    def pending_row(self, delivery_id: str) -> dict[str, Any] | None:
        row = self._outbox.get(delivery_id)
        return dict(row) if row is not None else None

    def delivered(self, delivery_id: str) -> None:
        row = self._outbox.pop(delivery_id, None)
        if row is not None:
            self._feed(row["feed"])["outbox"].remove(Query().id == delivery_id)

    def delivery_failed(self, delivery_id: str, **fields: Any) -> None:
        row = self._outbox.get(delivery_id)
        if row is not None:
            row.update(fields)
            self._feed(row["feed"])["outbox"].update(fields, Query().id == delivery_id)

    def requeue_dead(self, destination: str | None, now: str) -> int:
        """Put dead-lettered deliveries (of one destination, or all) back in the queue,
        as if new, keeping their place in the order."""
        fresh = {
            "dead": False,
            "attempts": 0,
            "next_attempt": None,
            "first_failed_at": None,
            "created": now,
        }
        dead = [
            row["id"]
            for row in self._outbox.values()
            if row.get("dead") and destination in (None, row["destination"])
        ]
        with self.batch():
            for delivery_id in dead:
                self.delivery_failed(delivery_id, **fresh)
        return len(dead)

    def update_destination_state(self, destination: str, **fields: Any) -> None:
        """Note how a destination fares; written with `flush()`, like the poll times."""
        self._destinations.setdefault(destination, {"name": destination}).update(fields)
        self._lazy_dirty = True


@dataclass(frozen=True)
class Snapshot:
    """What the state says, read without the lock (for `watcher status`)."""

    feeds: dict[str, dict[str, Any]]  # feed name → its state, with "talks_seen"
    outbox: list[dict[str, Any]]
    destinations: dict[str, dict[str, Any]]


def read_snapshot(path: Path) -> Snapshot:
    main = AtomicJSONStorage(str(path), None).read() or {}
    version = main.get("meta", {}).get("1", {}).get("schema_version")
    if version == 1:
        check_shape(main, path, V1_FIELDS)
        return _snapshot_v1(main)
    if version not in (None, SCHEMA_VERSION):  # a newer watcher's: its fields mean other things
        raise StoreError(
            f"{path}: state schema version {version} is not supported by this watcher"
            f" (expects {SCHEMA_VERSION})"
        )
    check_shape(main, path, MAIN_FIELDS)
    activity = {row.get("name"): row for row in main.get("activity", {}).values()}
    feeds: dict[str, dict[str, Any]] = {}
    outbox: list[dict[str, Any]] = []
    for feed_path in sorted(feeds_folder(path).glob("*.json")):
        data = AtomicJSONStorage(str(feed_path), FEED_FIELDS).read() or {}
        state = data.get("feed", {}).get("1")
        if state is None:
            continue
        name = state["name"]
        feeds[name] = {
            **state,
            **activity.get(name, {}),
            "talks_seen": len(data.get("seen", {})),
        }
        outbox += data.get("outbox", {}).values()
    outbox.sort(key=lambda row: row.get("seq", 0))
    destinations = {row.get("name"): row for row in main.get("destinations", {}).values()}
    return Snapshot(feeds, outbox, destinations)


def _snapshot_v1(data: dict[str, Any]) -> Snapshot:
    feeds = {row.get("name"): dict(row) for row in data.get("feeds", {}).values()}
    for row in data.get("seen", {}).values():
        state = feeds.setdefault(row.get("feed"), {})
        state["talks_seen"] = state.get("talks_seen", 0) + 1
    outbox = sorted(data.get("outbox", {}).values(), key=lambda row: row.get("seq", 0))
    destinations = {row.get("name"): row for row in data.get("destinations", {}).values()}
    return Snapshot(feeds, outbox, destinations)


def _migrate_v1(path: Path, folder: Path) -> None:
    """Split a schema-1 state file (everything in one file) into one file per feed.

    Each feed's file is written before the main file is rewritten, so a migration
    killed half-way is simply done again from the untouched main file. The schema-1
    file is kept as `<state>.schema1`, not as `<state>.bak`: copied back over the state,
    it would be migrated again over newer feed files."""
    data = AtomicJSONStorage(str(path), None).read() or {}
    meta = data.get("meta", {}).get("1", {}) if isinstance(data, dict) else {}
    if meta.get("schema_version") != 1:
        return
    check_shape(data, path, V1_FIELDS)
    per_feed: dict[str, dict[str, dict[str, Any]]] = {}

    def tables(feed: str) -> dict[str, dict[str, Any]]:
        return per_feed.setdefault(feed, {"feed": {"1": {"name": feed}}, "seen": {}, "outbox": {}})

    activity: dict[str, dict[str, Any]] = {}
    for row in data.get("feeds", {}).values():
        name = row["name"]
        state = {key: value for key, value in row.items() if key not in ACTIVITY_FIELDS}
        tables(name)["feed"]["1"] = state
        activity[str(len(activity) + 1)] = {
            "name": name,
            **{key: row[key] for key in ACTIVITY_FIELDS if key in row},
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


def _acquire_lock(path: Path):
    """One writer per state: an exclusive lock on `<state>.lock`, naming its holder."""
    lock_path = path.with_name(path.name + ".lock")
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the store's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StoreError(
            f"{path}: the state file is in use by another watcher (pid {holder});"
            f" stop it first, or give this one another state file"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
