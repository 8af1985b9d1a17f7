"""Reading fetched documents off the event loop: in a thread, or a worker process.

Reading a large feed is CPU work in Python (feedparser over the light copy, and the
talks read in full), and the GIL lets one thread do it at a time: a poll of many
large feeds used one core of two, and threads handing the GIL back and forth cost a
fifth more CPU than reading them one by one. So a document is read in a worker
process (as many as there are CPUs, up to four) while the event loop goes on
fetching, when it is large (`PROCESS_BYTES` or more) or another is being read
already (a thread would wait for the GIL); else in a thread: one small feed polled
on its own is not worth a process. On one CPU, everything is read in threads.

Both run one pure function, `read_for_poll`: the same bytes and the same talks seen
give the same `Reading`, wherever it ran. It also reads in full the talks that may be
announced (the new ones, or a first poll's newest `notify_existing`), so that no
feedparser entry has to cross between processes; the poll decides, from the talks
seen as it reads them itself, which of them it announces.

Workers come from a fork server (a fresh interpreter with the reading code
imported), ignore SIGINT and SIGTERM (the daemon stops them), end with the watcher
even when it is killed, and are let go of after `IDLE_SECONDS` without a document
to read (the fork server, which holds only the imports, stays). A worker that dies
(a hostile document, the OOM killer) loses the reads it had: each is tried once
more in a new pool, and if that is lost too, the poll fails as a transient error
(not the feed's fault), with a line that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Collection, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.select import Diff, diff
from watcher.talk import Talk

log = logging.getLogger(__name__)

PROCESS_BYTES = 256 * 1024
IDLE_SECONDS = 60.0
MAX_WORKERS = 4
TASKS_PER_POOL = 2000  # documents read by one pool; then a new one (see `_retire`)
PIPE_BYTES = 1 << 20  # Linux's cap for a process without privileges (fs.pipe-max-size)


@dataclass(frozen=True)
class Reading:
    """What a poll needs of a document: who is in it (as `FeedRead.identities`) and the
    talks it may announce, read in full."""

    identities: list[Talk]
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    degraded: bool = False
    talks: list[Talk] = field(default_factory=list)
    items: dict[str, Talk] | None = None  # see FeedRead.items: kept for the next read
    reused: int = 0  # items known from the last read, not read again
    lost: bool = False  # the reader process died with it: no fault of the document
    changes: Diff | None = None  # what is new, given the talks seen it was read with


def read_for_poll(
    data: bytes,
    seen_keys: Collection[str],
    dedup: tuple[str, ...],
    baseline: bool,
    notify_existing: int,
    known: Mapping[str, Talk] | None = None,
) -> Reading:
    """Read the document, and in full its talks a poll may announce: those not seen
    (`watcher.select.diff`), or of a first poll the newest `notify_existing`; `known`, the
    items kept from the last read (`FeedRead.items`). Pure."""
    from watcher.skim import read_feed

    read = read_feed(data, known)
    if read.error:
        return Reading([], read.error, read.warnings, read.degraded)
    changes = diff(read.identities, frozenset(seen_keys), dedup)
    new = [talk.guid for talk, _ in changes.new]
    if baseline:
        new = new[max(0, len(new) - notify_existing) :] if notify_existing else []
    talks = read.talks(new) if new else []
    return Reading(
        read.identities,
        None,
        read.warnings,
        read.degraded,
        talks,
        read.items,
        read.reused,
        changes=changes,
    )


class Readers:
    """Where documents are read: `read()` picks a thread or a worker process."""

    def __init__(
        self,
        process_bytes: int = PROCESS_BYTES,
        workers: int | None = None,
        idle_seconds: float = IDLE_SECONDS,
        tasks_per_pool: int = TASKS_PER_POOL,
    ) -> None:
        self.process_bytes = process_bytes
        self.tasks_per_pool = tasks_per_pool
        self.workers = _usable_cpus() if workers is None else workers
        self.idle_seconds = idle_seconds
        self._pool: ProcessPoolExecutor | None = None
        self._busy = 0  # documents in the worker processes
        self._reading = 0  # documents being read, in threads or processes
        self._idle: asyncio.TimerHandle | None = None
        self._deaths = 0  # pools lost in a row, with no document read in between
        self._reads = 0  # documents given to this pool
        self._warming: asyncio.Future[None] | None = None  # its first worker starting
        self._closed = False  # then documents are read in threads: no pool is started

    async def read(
        self,
        data: bytes,
        seen_keys: Collection[str],
        dedup: tuple[str, ...],
        baseline: bool,
        notify_existing: int,
        known: Mapping[str, Talk] | None = None,
    ) -> Reading:
        arguments = (data, frozenset(seen_keys), dedup, baseline, notify_existing, known)
        small = len(data) < self.process_bytes and not self._reading
        if self.workers < 2 or small or self._closed:
            self._reading += 1
            try:
                return await _in_thread(arguments)
            finally:
                self._reading -= 1
        loop = asyncio.get_running_loop()
        self._busy += 1
        self._reading += 1
        try:
            reading = await self._in_process(loop, arguments)
            if reading is None:  # lost with a worker that died: once more, in a new pool
                reading = await self._in_process(loop, arguments)
        finally:
            self._busy -= 1
            self._reading -= 1
            if not self._busy:
                self._let_go_later(loop)
        if reading is None:
            return Reading([], "the reader process died while reading it", lost=True)
        return reading

    async def _in_process(
        self, loop: asyncio.AbstractEventLoop, arguments: tuple[Any, ...]
    ) -> Reading | None:
        """The reading, by a worker; None if it was lost with one that died."""
        if self.workers < 2 or self._closed:  # given up on, or closed, meanwhile
            return await _in_thread(arguments)
        try:
            pool = self._started(loop)
            while self._warming is not None and not self._warming.done():
                await asyncio.wait([self._warming])  # how it went, the submit below says
                if self._closed:
                    return await _in_thread(arguments)
                pool = self._started(loop)  # a new one, if that one was let go of meanwhile
            future = loop.run_in_executor(pool, read_for_poll, *arguments)
        except BrokenProcessPool:
            self._lost(self._pool)
            return None
        except (OSError, RuntimeError) as exc:  # no processes here (no /dev/shm, a limit)
            log.warning("cannot start reader processes (%s): documents are read in threads", exc)
            self.workers = 0
            return await _in_thread(arguments)
        self._reads += 1
        if self._reads >= self.tasks_per_pool:
            self._retire()
        try:
            reading: Reading = await future
        except BrokenProcessPool:
            self._lost(pool)
            return None
        self._deaths = 0
        return reading

    def _lost(self, pool: ProcessPoolExecutor | None) -> None:
        """A worker died (every document the pool had in hand is lost with it): the next
        read gets a new pool; after three pools lost in a row, with no document read in
        between, documents are read in threads from then on."""
        if pool is not None and self._pool is pool:
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            self._deaths += 1
            if self._deaths >= 3 and self.workers:
                self.workers = 0
                log.error(
                    "reader processes died three times in a row: documents are read in threads"
                )
            else:
                log.error("a reader process died while reading a document: new ones are started")

    def _retire(self) -> None:
        """Let this pool go once the reads in hand are done (the next read starts a new
        one): whatever a long run leaks goes with its workers. Not `max_tasks_per_child`,
        which on Python 3.11 to 3.13 can leave a pool with no worker and reads waiting
        forever (CPython gh-115634)."""
        pool, self._pool = self._pool, None
        self._reads = 0
        if pool is not None:
            pool.shutdown(wait=False)

    def close(self) -> None:
        """Stop the worker processes (they finish the document in hand). A read after this
        is done in a thread: a pool started then would outlive its watcher's shutdown."""
        self._closed = True
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _started(self, loop: asyncio.AbstractEventLoop) -> ProcessPoolExecutor:
        """The pool, a new one with its first worker started in a thread (`_warming`): the
        fork server's first start imports the reading code, a fifth of a second that would
        hold up the event loop, and every fetch in flight, if a read started it."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(
                ["watcher.reader_fork_server", "watcher.readers", "watcher.skim"]
            )
            log.debug("reading large documents in %d worker processes", self.workers)
            self._reads = 0
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
            _widen_pipes(self._pool)
            self._warming = loop.run_in_executor(None, _warm_up, self._pool)
            self._warming.add_done_callback(_retrieved)  # a failure is the submit's to tell
        return self._pool

    def _let_go_later(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = loop.call_later(self.idle_seconds, self._let_go)

    def _let_go(self) -> None:
        self._idle = None
        if self._busy:
            return
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)


async def _in_thread(arguments: tuple[Any, ...]) -> Reading:
    reading: Reading = await asyncio.to_thread(read_for_poll, *arguments)
    return reading


def _widen_pipes(pool: ProcessPoolExecutor) -> None:
    """Give the pipes to and from the workers `PIPE_BYTES` of buffer, where the system
    lets a pipe grow (Linux). Through a pipe of 64 KB, a feed of 1.2 MB took 20 writes,
    each waiting for a worker to take the last, and each handing the GIL between the
    pool's feeder thread and the event loop: a tenth of a poll of many large feeds.
    The pipes are the executor's own (`_call_queue`, `_result_queue`); should a Python
    name them otherwise, they keep the size they have."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if set_size is None:
        return
    for name in ("_call_queue", "_result_queue"):
        writer = getattr(getattr(pool, name, None), "_writer", None)
        if writer is None:
            continue
        try:
            fcntl.fcntl(writer.fileno(), set_size, PIPE_BYTES)
        except OSError:  # over this system's cap (fs.pipe-max-size): as wide as it allows
            with contextlib.suppress(OSError, ValueError):
                fcntl.fcntl(writer.fileno(), set_size, _widest_pipe())


def _widest_pipe() -> int:
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        return 64 * 1024


def _warm_up(pool: ProcessPoolExecutor) -> None:
    pool.submit(_nothing).result()


def _nothing() -> None:
    pass


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _usable_cpus() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_WORKERS)


def _start_worker(watcher: int) -> None:
    """Ignore Ctrl-C and SIGTERM (sent to the whole group, by a terminal or systemd: the
    watcher stops its workers when it stops; a worker forked by a fork server that
    preloaded `watcher.reader_fork_server` ignores them from birth, this is for one whose
    preload failed), and end with the watcher: a worker waits
    for its next document on a pipe it holds both ends of, and would outlive a watcher
    killed with SIGKILL, keeping the fork server alive with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_end_with, args=(watcher,), daemon=True).start()


def _end_with(watcher: int) -> None:
    try:
        handle = os.pidfd_open(watcher)
    except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): look every second
        while _alive(watcher):
            time.sleep(1.0)
    else:
        select.select([handle], [], [])  # readable once the watcher has ended
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
