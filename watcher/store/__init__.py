"""The state: one small TinyDB file per feed, and one for the whole watcher.

One job per module, following the data:

- `records`: the schema, one typed record per kind of row (`FeedState`,
  `SeenTalk`, `OutboxEntry`, `DestinationState`, `RecentTalk`), each with its
  row form.
- `files`: atomic writes that keep the previous version, the shape check, the
  one-writer lock, the sweep of a killed writer's temporary files.
- `tables`: a TinyDB file read once and written once per change.
- `repository`: `Store`, typed records in and out, each change one write of
  one feed's file (`FeedCommit` is a whole poll).
- `snapshot`: the state read without the lock, for `watcher status`.
- `migrate`: older layouts, read and migrated.

Killing the process at any moment leaves files that load. The store knows
nothing of HTTP, feeds or Slack.
"""

from watcher.store.files import (
    AtomicJSONStorage,
    StoreError,
    backup_path,
    feed_file_name,
    feeds_folder,
    sweep_temporary_files,
)
from watcher.store.records import (
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
)
from watcher.store.repository import FeedCommit, LoadedFeed, Store
from watcher.store.snapshot import Snapshot, read_snapshot

__all__ = [
    "RECENT_TALKS",
    "SCHEMA_VERSION",
    "AtomicJSONStorage",
    "DeliveryFate",
    "DestinationState",
    "Fate",
    "FeedCommit",
    "FeedState",
    "LoadedFeed",
    "NewDelivery",
    "OutboxEntry",
    "RecentTalk",
    "SeenTalk",
    "Snapshot",
    "Store",
    "StoreError",
    "backup_path",
    "feed_file_name",
    "feeds_folder",
    "read_snapshot",
    "sweep_temporary_files",
]
