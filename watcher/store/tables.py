"""A TinyDB file read once and written once per change: its data is kept in memory
between the two, and a change of several tables is written as one atomic write,
or, if anything raises before that write is done, not at all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from concurrent.futures import wait as futures_wait
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.middlewares import Middleware
from tinydb.table import Table

from watcher.store.files import AtomicJSONStorage, Fields, encoded


class HoldingMiddleware(Middleware):
    """Keeps the data in memory; writes through at once, or, while holding, once at the end
    (or hands the write to a writer thread: `TableFile.change(writer)`)."""

    storage: AtomicJSONStorage

    def __init__(self) -> None:
        super().__init__(AtomicJSONStorage)
        self.cache: dict[str, Any] | None = None
        self.dirty = False
        self.holding = False
        self.pending: list[Future[None]] = []  # versions being written in a writer thread

    def read(self) -> dict[str, Any] | None:
        if self.cache is None:
            # After a failed write (`forget`): the versions still being written go first,
            # so that what is read holds each one that was written.
            futures_wait(self.pending)
            self.pending = []
            self.cache = self.storage.read()
        return self.cache

    def write(self, data: dict[str, Any]) -> None:
        self.cache = data
        self.dirty = True
        if not self.holding:
            self.flush()

    def flush(self, writer: Executor | None = None) -> Future[None] | None:
        """Write the data if changed: here, or handed to `writer` (returns the write)."""
        if not (self.dirty and self.cache is not None):
            return None
        if writer is None:
            self.storage.write(self.cache)
            self.dirty = False
            return None
        write = writer.submit(self.storage.persist, encoded(self.cache), *self.storage.stamp())
        self.pending = [*(w for w in self.pending if not w.done()), write]
        self.dirty = False
        return write

    def writing(self) -> bool:
        """Whether a version of the data is still being written (then it is not let go:
        the file is older than what is in memory)."""
        self.pending = [write for write in self.pending if not write.done()]
        return bool(self.pending)

    def close(self) -> None:
        self.flush()
        self.storage.close()


class TableFile:
    """One TinyDB file and its tables."""

    def __init__(self, path: Path, required: Fields) -> None:
        self.path = path
        self.middleware = HoldingMiddleware()
        self.db = TinyDB(str(path), storage=self.middleware, required=required)
        # cache_size=0: a query cache per table per feed is memory that grows with the feeds
        self.tables: dict[str, Table] = {
            name: self.db.table(name, cache_size=0) for name in required
        }

    def __getitem__(self, table: str) -> Table:
        return self.tables[table]

    def only_row(self, table: str) -> dict[str, Any] | None:
        """The row of a table of one row (its first)."""
        row = self.tables[table].get(doc_id=1)
        return dict(row) if isinstance(row, dict) else None

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The table's rows, as copies, in the order they were inserted; read from the data
        in memory, not through TinyDB's `all()`, which copied each row twice."""
        data = self.middleware.read() or {}
        return [dict(row) for row in data.get(table, {}).values()]

    def replace(self, table: str, rows: list[dict[str, Any]]) -> None:
        self.tables[table].truncate()
        if rows:
            self.tables[table].insert_multiple(rows)

    @contextlib.contextmanager
    def change(self, writer: Executor | None = None) -> Iterator[list[Future[None]]]:
        """The changes made inside are written together when it ends; if it raises (the
        write included), none of them is kept, in memory either. With a `writer`, the
        write is handed to it when the block ends, and put in the list the block gets:
        the caller waits for it, and calls `forget()` if it fails."""
        if self.middleware.holding:
            raise RuntimeError(f"{self.path}: a change inside a change of the same file")
        self.middleware.holding = True
        handed: list[Future[None]] = []
        try:
            yield handed
            self.middleware.holding = False
            write = self.middleware.flush(writer)
            if write is not None:
                handed.append(write)
        except BaseException:
            self.forget()
            raise
        finally:
            self.middleware.holding = False

    def forget(self) -> None:
        """Let go of the data in memory, written or not: the next read is the file's (once
        the versions being written are). Versions are numbered in a new epoch from now on:
        one made in the old epoch after a write of it failed is not written."""
        self.middleware.cache = None
        self.middleware.dirty = False
        self.middleware.storage.forget()
        for table in self.tables.values():
            table.clear_cache()

    def release(self) -> None:
        if not self.middleware.dirty and not self.middleware.writing():
            self.middleware.cache = None

    def close(self) -> None:
        self.db.close()
