"""The state file: feed state, seen talks and the delivery outbox, in one TinyDB file.

Every write is atomic (temporary file, fsync, rename), so killing the process
at any moment leaves a file that loads. `batch()` groups the changes of one
poll into a single write: a talk is marked seen in the same write that queues
its deliveries. The store knows nothing of HTTP, feeds or Slack.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.middlewares import Middleware
from tinydb.storages import Storage

SCHEMA_VERSION = 1
REQUIRED_FIELDS = {
    "meta": ("schema_version", "next_seq"),
    "feeds": ("name",),
    "seen": ("feed", "guid", "keys"),
    "outbox": ("id", "seq", "feed", "destination", "talk", "created", "attempts"),
    "destinations": ("name",),
}


def temp_prefix(path: Path) -> str:
    """Temporary files of one state file: another state file in the folder has its own."""
    return f".{path.name}.tmp-"


class StoreError(Exception):
    """The state file cannot be used; the message says which file and what to do."""


class AtomicJSONStorage(Storage):
    """TinyDB storage that replaces the file atomically on every write.

    A missing file is a new store; an empty or unreadable one is an error, never
    silently an empty store (that would lose the outbox and re-baseline feeds).
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

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
            raise StoreError(
                f"{self.path}: the state file is {problem}"
                f" ({exc.msg} at line {exc.lineno}); refusing to start, which would re-announce"
                f" or lose talks. The previous version is kept as {backup_path(self.path)}:"
                f" copy it over the state file to recover, or move both away to start afresh."
            ) from None
        check_shape(data, self.path)
        return data

    def write(self, data: dict[str, Any]) -> None:
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


def check_shape(data: Any, path: Path) -> None:
    """Refuse a state file that is JSON but not ours (edited by hand, or damaged)."""
    where = f"{path}: the state file is damaged or not a watcher state file"
    if not isinstance(data, dict):
        raise StoreError(f"{where} (it does not hold a JSON object)")
    for name, table in data.items():
        if not isinstance(table, dict) or not all(isinstance(r, dict) for r in table.values()):
            raise StoreError(f"{where} (its {name!r} table is not a table of records)")
        for row in table.values():
            missing = [f for f in REQUIRED_FIELDS.get(name, ()) if f not in row]
            if missing:
                raise StoreError(f"{where} (a record of {name!r} has no {missing[0]!r})")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def _keep_previous(path: Path) -> None:
    """Keep the version about to be replaced as `<state>.bak`: a hard link, no copy."""
    staged = path.with_name(f"{temp_prefix(path)}bak-{os.getpid()}")
    try:
        os.link(path, staged)
    except FileNotFoundError:
        return
    except OSError:  # a file system without hard links
        shutil.copyfile(path, staged)
    os.replace(staged, backup_path(path))


class BatchingMiddleware(Middleware):
    """Keeps the data in memory; writes through at once, or once at the end of a batch."""

    def __init__(self, storage_cls: type[Storage] = AtomicJSONStorage) -> None:
        super().__init__(storage_cls)
        self.cache: dict[str, Any] | None = None
        self.depth = 0
        self.dirty = False

    def read(self) -> dict[str, Any] | None:
        if self.cache is None:
            self.cache = self.storage.read()
        return self.cache

    def write(self, data: dict[str, Any]) -> None:
        self.cache = data
        self.dirty = True
        if self.depth == 0:
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


def sweep_temporary_files(path: Path) -> int:
    """Remove the temporary files a killed writer of this state file left; return how many."""
    removed = 0
    for leftover in path.parent.glob(f"{glob.escape(temp_prefix(path))}*"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed


class Store:
    def __init__(self, path: Path, *, lock: bool = True) -> None:
        self.path = path
        self._lock_handle = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path.parent}: cannot create the state folder: {exc}") from None
        if lock:
            self._lock_handle = _acquire_lock(path)
            sweep_temporary_files(path)
        self._middleware = BatchingMiddleware(AtomicJSONStorage)
        self.db = TinyDB(str(path), storage=self._middleware)
        self._check_schema()
        self.feeds = self.db.table("feeds")
        self.seen = self.db.table("seen")
        self.outbox = self.db.table("outbox")
        self.destinations = self.db.table("destinations")

    def _check_schema(self) -> None:
        meta = self.db.table("meta")
        row = meta.get(doc_id=1)
        if row is None:
            if len(self.db.tables()) > 0:
                raise StoreError(f"{self.path}: not a watcher state file (no schema version)")
            meta.insert({"schema_version": SCHEMA_VERSION, "next_seq": 1})
        elif row.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: state schema version {row.get('schema_version')} is not"
                f" supported by this watcher (expects {SCHEMA_VERSION})"
            )

    def close(self) -> None:
        self.db.close()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Everything changed inside lands in one atomic write, or, if it raises, none."""
        middleware = self._middleware
        middleware.depth += 1
        try:
            yield
        except BaseException:
            if middleware.depth == 1:
                middleware.discard()
                for table in (self.feeds, self.seen, self.outbox, self.destinations):
                    table.clear_cache()
            raise
        finally:
            middleware.depth -= 1
        if middleware.depth == 0:
            middleware.flush()

    # feed state

    def feed_state(self, feed: str) -> dict[str, Any]:
        row = self.feeds.get(Query().name == feed)
        return dict(row) if row else {}

    def update_feed_state(self, feed: str, **fields: Any) -> None:
        self.feeds.upsert({"name": feed, **fields}, Query().name == feed)

    # seen talks

    def seen_keys(self, feed: str) -> set[str]:
        keys: set[str] = set()
        for row in self.seen.search(Query().feed == feed):
            keys.update(row["keys"])
        return keys

    def seen_count(self, feed: str) -> int:
        return self.seen.count(Query().feed == feed)

    def mark_seen(self, feed: str, guid: str, keys: Iterable[str], now: str) -> None:
        self.seen.upsert(
            {
                "feed": feed,
                "guid": guid,
                "keys": sorted(keys),
                "first_seen": now,
                "absent_since": None,
            },
            (Query().feed == feed) & (Query().guid == guid),
        )

    def refresh_presence(
        self, feed: str, present_keys: set[str], now: str, prune_absent_before: str
    ) -> int:
        """Note which seen talks the feed still lists; forget those absent since before
        `prune_absent_before` (a talk still in the feed is never forgotten). Returns how
        many were forgotten."""
        seen = Query()
        mine = seen.feed == feed
        present = seen.keys.any(present_keys)
        self.seen.update({"absent_since": None}, mine & present & (seen.absent_since != None))  # noqa: E711
        self.seen.update({"absent_since": now}, mine & ~present & (seen.absent_since == None))  # noqa: E711
        expired = mine & seen.absent_since.test(lambda v: v is not None and v < prune_absent_before)
        return len(self.seen.remove(expired))

    # outbox

    def enqueue(self, entry: dict[str, Any]) -> None:
        """Queue one delivery; an entry with the same id already queued is kept as is."""
        if self.outbox.contains(Query().id == entry["id"]):
            return
        meta = self.db.table("meta")
        seq = meta.get(doc_id=1)["next_seq"]
        meta.update({"next_seq": seq + 1}, doc_ids=[1])
        self.outbox.insert(
            {
                **entry,
                "seq": seq,
                "attempts": 0,
                "next_attempt": None,
                "last_error": None,
                "dead": False,
            }
        )

    def pending(self, destination: str) -> list[dict[str, Any]]:
        rows = self.outbox.search((Query().destination == destination) & (Query().dead == False))  # noqa: E712
        return sorted((dict(row) for row in rows), key=lambda row: row["seq"])

    def delivered(self, delivery_id: str) -> None:
        self.outbox.remove(Query().id == delivery_id)

    def delivery_failed(self, delivery_id: str, **fields: Any) -> None:
        self.outbox.update(fields, Query().id == delivery_id)

    def requeue_dead(self, destination: str | None, now: str) -> int:
        """Put dead-lettered deliveries (of one destination, or all) back in the queue,
        as if new, keeping their place in the order."""
        dead = Query().dead == True  # noqa: E712
        if destination is not None:
            dead &= Query().destination == destination
        fresh = {
            "dead": False,
            "attempts": 0,
            "next_attempt": None,
            "first_failed_at": None,
            "created": now,
        }
        return len(self.outbox.update(fresh, dead))

    def update_destination_state(self, destination: str, **fields: Any) -> None:
        self.destinations.upsert({"name": destination, **fields}, Query().name == destination)


def _acquire_lock(path: Path):
    """One writer per state file: an exclusive lock on `<state>.lock`, naming its holder."""
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
