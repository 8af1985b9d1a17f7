"""The repository: typed records in, typed records out, each change one write.

A feed's file (`<state>.feeds/<feed>-<hash>.json`) holds that feed's state, the
talks it has seen and its queued deliveries, so recording a poll rewrites only
that feed's file, and a talk is marked seen in the same write that queues its
deliveries. The main file (`<state>`) holds the schema version, the state of
each destination and when each feed was last polled; a poll that finds nothing
new changes no feed file, and those times are written in one go (`flush()`).

Each change is one method that opens a change of one feed's file (`_changing`),
synchronous, with no `await` inside; it is written before the method returns, or,
for the two changes made for every feed that changed (`record`, a poll, and
`delivered_async`), by the store's writer thread, which the method awaits before
it acts on the change (queues the deliveries, takes the state, drops the delivery):
the event loop goes on during the fsyncs. Two feeds' changes never share a write,
a version of a file is never written over a newer one, and a change whose write
fails leaves nothing behind, in memory either (nor is a version made from it
written). A change opened inside another raises at once: the rule is checked,
not assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tinydb import Query

from watcher.clock import iso
from watcher.events import DeliveryEvent, DeliveryOutcome
from watcher.store.files import (
    StoreError,
    acquire_lock,
    backup_path,
    feed_file_name,
    feeds_folder,
    note_holder,
    sweep_temporary_files,
)
from watcher.store.migrate import migrate_v1
from watcher.store.records import (
    FEED_FIELDS,
    MAIN_FIELDS,
    RECENT_TALKS,
    SCHEMA_VERSION,
    DeliveryFate,
    DestinationState,
    Fate,
    FeedState,
    NewDelivery,
    OutboxEntry,
    RecentTalk,
    SeenTalk,
    known_item,
    known_item_row,
)
from watcher.store.seen import delivered_to, updated_seen
from watcher.store.snapshot import Snapshot
from watcher.store.tables import TableFile
from watcher.talk import Talk


@dataclass(frozen=True)
class LoadedFeed:
    """What a poll reads of the state, once, before it fetches."""

    state: FeedState
    seen_keys: frozenset[str]
    talks_seen: int


@dataclass(frozen=True)
class FeedCommit:
    """What a poll records, in one write: the feed's new state; the talks now seen; keys
    to add to talks seen before (known by the first, to be known by the others); and,
    when the feed was read, the keys it lists (`present`), to note which seen talks it
    no longer lists and forget those gone since before `prune_before`."""

    state: FeedState
    at: str
    seen: Sequence[SeenTalk] = ()
    rekeyed: Sequence[tuple[str, set[str]]] = ()
    present: frozenset[str] | None = None
    prune_before: str | None = None
    deliveries: Sequence[NewDelivery] = field(default_factory=tuple)
    # the identities of the document's items by their keys (`FeedRead.items`), for the
    # next read; None: the ones kept stay
    items: Mapping[str, Talk] | None = None


class Store:
    def __init__(self, path: Path, *, lock: bool = True) -> None:
        self.path = path
        self.folder = feeds_folder(path)
        self._lock_handle: IO[str] | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.folder}: cannot create the state folder: {exc}") from None
        if lock:
            self._lock_handle = acquire_lock(path)
            sweep_temporary_files(path)
        migrate_v1(path, self.folder)
        self.main = TableFile(path, MAIN_FIELDS)
        self._check_schema()
        self._activity = {row["name"]: row for row in self.main.rows("activity")}
        self._destinations = {
            row["name"]: DestinationState.from_row(row) for row in self.main.rows("destinations")
        }
        recent = map(RecentTalk.from_row, self.main.rows("recent"))
        self._recent = {talk.key: talk for talk in recent}
        self._lazy_dirty = False
        self._changing_feed: str | None = None
        self._writer_thread: ThreadPoolExecutor | None = None
        self._feeds: dict[str, TableFile] = {}
        self._outbox: dict[str, OutboxEntry] = {}
        self._states: dict[str, FeedState] = {}
        self._talks_seen: dict[str, int] = {}
        for feed_path in sorted(self.folder.glob("*.json")):
            file = TableFile(feed_path, FEED_FIELDS)
            row = file.only_row("feed")
            if row is None:
                raise StoreError(f"{feed_path}: the state file is damaged (it names no feed)")
            name = row["name"]
            self._feeds[name] = file
            self._states[name] = FeedState.from_rows(name, row, self._activity.get(name, {}))
            self._talks_seen[name] = len(file["seen"])
            self._index(file)
        self._next_seq = max((entry.seq for entry in self._outbox.values()), default=0) + 1

    def _check_schema(self) -> None:
        meta = self.main["meta"]
        row = self.main.only_row("meta")
        if row is None:
            if len(self.main.db.tables()) > 0:
                raise StoreError(f"{self.path}: not a watcher state file (no schema version)")
            meta.insert({"schema_version": SCHEMA_VERSION})
        elif row.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: state schema version {row.get('schema_version')} is not"
                f" supported by this watcher (expects {SCHEMA_VERSION})"
            )

    def _index(self, file: TableFile) -> None:
        """Keep a feed's queued deliveries in memory, for the delivery loops (no file is
        read for them), and let go of the rest of its data: one feed in memory at a time
        (its state and how many talks it has seen are kept, for `snapshot()`)."""
        entries = map(OutboxEntry.from_row, file.rows("outbox"))
        self._outbox.update((entry.id, entry) for entry in entries)
        file.release()

    def announce(self, address: str) -> None:
        """Say in the lock file where this watcher serves its HTTP side."""
        if self._lock_handle is not None:
            note_holder(self._lock_handle, address)

    def close(self) -> None:
        if self._writer_thread is not None:  # the writes handed to it are done first
            self._writer_thread.shutdown(wait=True)
            self._writer_thread = None
        self.flush()
        for file in (*self._feeds.values(), self.main):
            file.close()
        if self._lock_handle is not None:
            self._lock_handle.seek(0)
            self._lock_handle.truncate()  # no pid left behind to be mistaken for a holder
            self._lock_handle.close()
            self._lock_handle = None

    def flush(self) -> None:
        """Write what is kept in memory between flushes: when each feed was last polled,
        how each destination fared, and the recent talks (none of them decides anything)."""
        if not self._lazy_dirty:
            return
        with self.main.change():
            self.main.replace("activity", list(self._activity.values()))
            self.main.replace("destinations", [d.to_row() for d in self._destinations.values()])
            self.main.replace("recent", [talk.to_row() for talk in self._recent.values()])
        self._lazy_dirty = False

    def release(self, feed: str) -> None:
        """Let go of a feed's data between its polls (it is read again from its file when
        needed): memory follows the feeds being polled, not all the feeds there are."""
        file = self._feeds.get(feed)
        if file is not None:
            file.release()

    @contextlib.contextmanager
    def _changing(self, feed: str, handed: list[Future[None]] | None = None) -> Iterator[TableFile]:
        """A change of one feed's file, written when the block ends; one at a time. With
        `handed`, the write is handed to the writer thread and put in that list: the
        caller awaits it (`_written`) before it acts on the change."""
        if self._changing_feed is not None:
            raise RuntimeError(
                f"a change of feed {feed!r} inside one of {self._changing_feed!r}: each change"
                " is written on its own"
            )
        file = self._feeds.get(feed) or TableFile(self.folder / feed_file_name(feed), FEED_FIELDS)
        self._changing_feed = feed
        try:
            with file.change(self._writer() if handed is not None else None) as writes:
                yield file
            if handed is not None:
                handed.extend(writes)
            self._feeds.setdefault(feed, file)
        finally:
            self._changing_feed = None
            file.release()

    def _writer(self) -> ThreadPoolExecutor:
        """The thread that writes feed files for `record` and `delivered_async`, in the
        order they were changed."""
        if self._writer_thread is None:
            self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="state-writer")
        return self._writer_thread

    async def _written(self, feed: str, handed: list[Future[None]]) -> None:
        """Wait for the writes handed to the writer thread; if one fails, the feed's data in
        memory is let go of (the next read is its file's), and the error raised."""
        file = self._feeds.get(feed)
        for write in handed:
            try:
                await asyncio.shield(asyncio.wrap_future(write))
            except asyncio.CancelledError:
                # Stopped waiting (a shutdown): the write goes on. Should it fail, the
                # versions made from it fail too, and the change after them forgets it.
                raise
            except BaseException:
                if file is not None:
                    file.forget()
                raise
        if file is not None:
            file.release()  # done with between polls: memory follows the feeds being polled

    # feeds

    def load(self, feed: str) -> LoadedFeed:
        seen = self.seen_talks(feed)
        keys = frozenset(key for talk in seen for key in talk.keys)
        return LoadedFeed(self.feed_state(feed), keys, len(seen))

    def known_items(self, feed: str) -> dict[str, Talk]:
        """The identities of the items the feed's document held when last read, by their
        keys (see `watcher.skim`): an item read again with the same key is not read."""
        file = self._feeds.get(feed)
        return dict(map(known_item, file.rows("items"))) if file else {}

    def seen_keys(self, feed: str) -> frozenset[str]:
        """The keys of the talks the feed has seen (read from its file; not made records:
        each poll of a changed feed asks for them)."""
        file = self._feeds.get(feed)
        return (
            frozenset(key for row in file.rows("seen") for key in row["keys"])
            if file
            else frozenset()
        )

    def seen_talks(self, feed: str) -> list[SeenTalk]:
        file = self._feeds.get(feed)
        return [SeenTalk.from_row(row) for row in file.rows("seen")] if file else []

    def feed_state(self, feed: str) -> FeedState:
        return self._states.get(feed) or FeedState(feed)

    def snapshot(self) -> Snapshot:
        """What the state says now, from memory: what the daemon serves as its status."""
        outbox = sorted(self._outbox.values(), key=lambda entry: entry.seq)
        return Snapshot(
            dict(self._states),
            dict(self._talks_seen),
            outbox,
            dict(self._destinations),
            list(self._recent.values()),
        )

    def commit(self, commit: FeedCommit) -> int:
        """Record a poll of a feed: one write of its file, or none if nothing in it changed
        (a poll that only says when it ran changes the main file, at the next flush).
        Returns how many seen talks were forgotten."""
        if self._only_activity(commit):
            return self._noted(commit)
        with self._changing(commit.state.name) as file:
            change = self._apply(file, commit)
        return self._committed(commit, *change)

    async def record(self, commit: FeedCommit) -> int:
        """`commit`, the feed's file written in the writer thread while the event loop goes
        on (its fsyncs took a few milliseconds of the loop, for every feed that changed).
        What it changes is acted on only once it is written, as with `commit`."""
        if self._only_activity(commit):
            return self._noted(commit)
        handed: list[Future[None]] = []
        with self._changing(commit.state.name, handed) as file:
            change = self._apply(file, commit)
        await self._written(commit.state.name, handed)
        return self._committed(commit, *change)

    def _noted(self, commit: FeedCommit) -> int:
        feed = commit.state.name
        self._states[feed] = commit.state
        self._activity[feed] = commit.state.activity_row()
        self._lazy_dirty = True
        return 0

    def _apply(self, file: TableFile, commit: FeedCommit) -> tuple[list[OutboxEntry], int, int]:
        """The commit's change of the feed's file, in memory: (the deliveries queued, how
        many talks it has seen, how many seen talks were forgotten)."""
        feed = commit.state.name
        row = file.only_row("feed")
        if row is None or not FeedState.from_rows(feed, row, {}).same_file_row(commit.state):
            file.replace("feed", [commit.state.file_row()])
        seen = [SeenTalk.from_row(row) for row in file.rows("seen")]
        kept, forgotten = updated_seen(seen, commit)
        if kept != seen:
            file.replace("seen", [talk.to_row() for talk in kept])
        talks_seen = len(kept)
        if commit.items is not None:
            rows = [known_item_row(key, talk) for key, talk in commit.items.items()]
            if rows != file.rows("items"):
                file.replace("items", rows)
        new = list({d.id: d for d in commit.deliveries if d.id not in self._outbox}.values())
        return self._queue_in(file, new), talks_seen, forgotten

    def _queue_in(self, file: TableFile, new: list[NewDelivery]) -> list[OutboxEntry]:
        queued = [OutboxEntry.queued(d, self._next_seq + n) for n, d in enumerate(new)]
        self._next_seq += len(queued)  # taken now: another change may come before the write
        if queued:
            file["outbox"].insert_multiple([entry.to_row() for entry in queued])
        return queued

    def _committed(
        self, commit: FeedCommit, queued: list[OutboxEntry], talks_seen: int, forgotten: int
    ) -> int:
        """The commit, written: its deliveries are queued in memory (for the delivery
        loops), and its state is the feed's."""
        feed = commit.state.name
        self._outbox.update((entry.id, entry) for entry in queued)
        self._remember(queued)
        self._states[feed] = commit.state
        self._talks_seen[feed] = talks_seen
        self._activity[feed] = commit.state.activity_row()
        self._lazy_dirty = True
        return forgotten

    def _only_activity(self, commit: FeedCommit) -> bool:
        """Whether the commit changes nothing in the feed's file (a 304 that queues no
        alert): its file is then neither read nor written."""
        known = self._states.get(commit.state.name)
        return (
            known is not None
            and commit.state.name in self._feeds
            and not (commit.seen or commit.rekeyed or commit.deliveries or commit.items)
            and commit.present is None
            and known.same_file_row(commit.state)
        )

    def feeds(self) -> list[str]:
        """The feeds the state holds, configured or not."""
        return sorted(self._feeds)

    def remove_feed(self, feed: str) -> int:
        """Forget a feed: its file, its seen talks and its queued deliveries (returns how
        many were queued: the caller decides whether losing them is wanted)."""
        file = self._feeds.pop(feed, None)
        if file is None:
            return 0
        file.close()
        dropped = [entry.id for entry in self._outbox.values() if entry.feed == feed]
        for delivery_id in dropped:
            del self._outbox[delivery_id]
        self._states.pop(feed, None)
        self._talks_seen.pop(feed, None)
        if self._activity.pop(feed, None) is not None:
            self._lazy_dirty = True
        file.path.unlink(missing_ok=True)
        backup_path(file.path).unlink(missing_ok=True)
        return len(dropped)

    def queue(self, feed: str, deliveries: Sequence[NewDelivery]) -> list[NewDelivery]:
        """Queue deliveries in a feed's outbox, its state unchanged (an alert, say); returns
        those queued (one already queued, or dead-lettered, is left as it is)."""
        new = list({d.id: d for d in deliveries if d.id not in self._outbox}.values())
        if not new:
            return new
        state = self.feed_state(feed)
        with self._changing(feed) as file:
            if file.only_row("feed") is None:  # not polled yet: its file must name it
                file.replace("feed", [state.file_row()])
            # Nothing but the outbox: the state in memory may be older than the file's,
            # a poll of this feed being written meanwhile (`record`).
            queued = self._queue_in(file, new)
            talks_seen = len(file["seen"])
        self._outbox.update((entry.id, entry) for entry in queued)
        self._remember(queued)
        if feed not in self._states:
            self._states[feed] = state
            self._talks_seen[feed] = talks_seen
            self._activity[feed] = state.activity_row()
            self._lazy_dirty = True
        return new

    # deliveries

    def pending(self, destination: str) -> list[OutboxEntry]:
        """The destination's queue, in queue order (dead letters left out)."""
        entries = [e for e in self._outbox.values() if e.destination == destination and not e.dead]
        return sorted(entries, key=lambda entry: entry.seq)

    def queued(self, delivery_id: str) -> OutboxEntry | None:
        return self._outbox.get(delivery_id)

    def delivered(self, delivery_id: str) -> None:
        entry = self._outbox.get(delivery_id)
        if entry is None:
            return
        with self._changing(entry.feed) as file:
            _mark_delivered(file, entry)
        del self._outbox[delivery_id]

    async def delivered_async(self, delivery_id: str) -> None:
        """`delivered`, the feed's file written in the writer thread (see `record`)."""
        entry = self._outbox.get(delivery_id)
        if entry is None:
            return
        handed: list[Future[None]] = []
        with self._changing(entry.feed, handed) as file:
            _mark_delivered(file, entry)
        await self._written(entry.feed, handed)
        self._outbox.pop(delivery_id, None)

    def forget_queued(self, delivery_id: str) -> None:
        """Let go of a queued delivery in memory only: one that was sent but whose removal
        could not be written (it is in the file until a later write of that feed)."""
        self._outbox.pop(delivery_id, None)

    def update_deliveries(self, entries: Iterable[OutboxEntry]) -> None:
        """Write queued deliveries as changed (their ids kept): one write per feed."""
        by_feed: dict[str, list[OutboxEntry]] = {}
        for entry in entries:
            if entry.id in self._outbox:
                by_feed.setdefault(entry.feed, []).append(entry)
        for feed, changed in by_feed.items():
            with self._changing(feed) as file:
                for entry in changed:
                    file["outbox"].update(entry.to_row(), Query().id == entry.id)
            self._outbox.update((entry.id, entry) for entry in changed)

    def requeue_dead(self, destination: str | None, now: str) -> int:
        """Put dead-lettered deliveries (of one destination, or all) back in the queue,
        as if new, keeping their place in the order."""
        dead = [
            entry
            for entry in self._outbox.values()
            if entry.dead and destination in (None, entry.destination)
        ]
        self.update_deliveries(
            dataclasses.replace(
                entry, dead=False, attempts=0, next_attempt=None, first_failed_at=None, created=now
            )
            for entry in dead
        )
        for entry in dead:
            self._mark(entry.feed, entry.talk.guid, entry.destination, DeliveryFate(Fate.QUEUED))
        return len(dead)

    # recent talks

    def _remember(self, queued: Iterable[OutboxEntry]) -> None:
        """Keep the talks just queued among the recent ones (the last RECENT_TALKS); an
        alert is no talk, and is left out."""
        for entry in queued:
            if entry.alert is not None:
                continue
            key = (entry.feed, entry.talk.guid)
            talk = self._recent.pop(key, None) or RecentTalk(entry.feed, entry.talk, entry.created)
            fates = {**talk.destinations, entry.destination: DeliveryFate(Fate.QUEUED)}
            self._recent[key] = dataclasses.replace(talk, destinations=fates)
            self._lazy_dirty = True
        for key in list(self._recent)[: max(len(self._recent) - RECENT_TALKS, 0)]:
            del self._recent[key]

    def note_delivery(self, event: DeliveryEvent) -> None:
        """Note what came of an attempt to deliver a recent talk; written with `flush()`."""
        at = iso(event.at)
        fate = {
            DeliveryOutcome.SENT: DeliveryFate(Fate.DELIVERED, at),
            DeliveryOutcome.RETRIED: DeliveryFate(Fate.RETRYING, at, event.error),
            DeliveryOutcome.DEAD: DeliveryFate(Fate.DEAD, at, event.error),
        }[event.outcome]
        self._mark(event.feed, event.guid, event.destination, fate)

    def _mark(self, feed: str, guid: str, destination: str, fate: DeliveryFate) -> None:
        talk = self._recent.get((feed, guid))
        if talk is None:  # queued before the talks were kept, or long ago
            return
        fates = {**talk.destinations, destination: fate}
        self._recent[(feed, guid)] = dataclasses.replace(talk, destinations=fates)
        self._lazy_dirty = True

    # destinations

    def destination(self, name: str) -> DestinationState:
        return self._destinations.get(name) or DestinationState(name)

    def save_destination(self, state: DestinationState) -> None:
        """Note how a destination fares; written with `flush()`, like the poll times."""
        self._destinations[state.name] = state
        self._lazy_dirty = True


def _mark_delivered(file: TableFile, entry: OutboxEntry) -> None:
    file["outbox"].remove(Query().id == entry.id)
    if entry.alert is None:  # noted on the talk, in the same write
        talk = Query()
        file["seen"].update(delivered_to(entry.destination), talk.guid == entry.talk.guid)
