"""Documents read in worker processes (watcher/readers.py): the same reading as in a
thread, a dead worker fails only what it had in hand, and an idle watcher keeps none."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import (
    add_talk,
    console_table,
    one_feed,
    seed_bytes,
    watcher_command,
    webhook_table,
    write_config,
)
from tests.test_skim import replicated_seed
from watcher.readers import Readers, Reading, read_for_poll
from watcher.skim import read_feed

BIG = replicated_seed(3)  # about 390 KB: over PROCESS_BYTES, as large feeds are
DEDUP = ("guid", "url", "video")


def seen_but_the_first(data: bytes, skipped: int = 1) -> frozenset[str]:
    """The keys a poll would have seen before: every talk's but the first `skipped`."""
    from watcher.select import identity_keys

    talks = read_feed(data).identities[skipped:]
    return frozenset(key for talk in talks for key in identity_keys(talk, DEDUP))


def worker_pids(readers: Readers) -> list[int]:
    pool = readers._pool
    assert pool is not None
    return list(pool._processes)  # the executor's own map of its workers


def test_a_process_reads_what_a_thread_reads():
    seen = seen_but_the_first(BIG, skipped=2)

    async def both() -> tuple[Reading, Reading]:
        readers = Readers(process_bytes=0, workers=2)
        try:
            in_process = await readers.read(BIG, seen, DEDUP, False, 0)
            assert readers._pool is not None, "the document was not read in a process"
        finally:
            readers.close()
        in_thread = await Readers(workers=0).read(BIG, seen, DEDUP, False, 0)
        return in_process, in_thread

    in_process, in_thread = asyncio.run(both())
    assert in_process == in_thread == read_for_poll(BIG, seen, DEDUP, False, 0)
    assert len(in_process.talks) == 2 and in_process.talks[0].slide_count
    assert [t.guid for t in in_process.talks] == [t.guid for t in in_process.identities[:2]]


def test_a_first_poll_reads_in_full_only_the_newest_it_may_announce():
    feed = add_talk(seed_bytes(), "NEWxTALKxx1", "Newer | Ada", "Wed, 10 Jun 2026 10:00:00 GMT")
    feed = add_talk(feed, "NEWxTALKxx2", "Newest | Ben", "Thu, 11 Jun 2026 10:00:00 GMT")
    reading = read_for_poll(feed, frozenset(), DEDUP, True, 2)
    assert len(reading.identities) == 5
    assert sorted(t.video_id for t in reading.talks) == ["NEWxTALKxx1", "NEWxTALKxx2"]
    assert all(t.slide_count for t in reading.talks)
    assert read_for_poll(feed, frozenset(), DEDUP, True, 0).talks == []


def test_a_read_lost_with_a_dead_worker_is_read_again_in_a_new_pool(caplog):
    async def scenario() -> tuple[Reading, Reading]:
        readers = Readers(process_bytes=0, workers=2)
        try:
            first = await readers.read(BIG, frozenset(), DEDUP, True, 0)
            for pid in worker_pids(readers):
                os.kill(pid, signal.SIGKILL)
            again = await readers.read(BIG, frozenset(), DEDUP, True, 0)
            return first, again
        finally:
            readers.close()

    first, again = asyncio.run(scenario())
    assert first.error is None and first.identities
    assert again == first
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["a reader process died while reading a document: new ones are started"]


def die(*_: object) -> None:
    """What the workers run in place of read_for_poll below: a worker that dies."""
    os._exit(3)


def test_a_read_lost_twice_is_a_lost_reading_not_a_bad_document(monkeypatch):
    import watcher.readers

    monkeypatch.setattr(watcher.readers, "read_for_poll", die)

    async def scenario() -> Reading:
        readers = Readers(process_bytes=0, workers=2)
        try:
            return await readers.read(BIG, frozenset(), DEDUP, True, 0)
        finally:
            readers.close()

    reading = asyncio.run(scenario())
    assert reading.lost is True
    assert reading.error == "the reader process died while reading it"


def test_a_poll_whose_reading_was_lost_fails_as_a_transient_error(tmp_path, feed_host):
    from watcher.clock import utcnow
    from watcher.config import load_config
    from watcher.fetch import new_client
    from watcher.poll import poll_feed
    from watcher.store import Store

    class LosingReaders(Readers):
        async def read(self, *args: object, **kwargs: object) -> Reading:
            return Reading([], "the reader process died while reading it", lost=True)

    config_file = write_config(
        tmp_path,
        one_feed(
            feed_host.url, console_table(), feed='interval = "1h"', state=str(tmp_path / "s.json")
        ),
    )
    first = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    feed_host.set_body(add_talk(seed_bytes(), "NEWxTALKxx1", "New | Ada", "Thu, 11 Jun 2026"))
    config = load_config(config_file)

    async def poll() -> None:
        store = Store(config.state)
        try:
            async with new_client(5) as client:
                result = await poll_feed(
                    config.feeds[0], config, store, client, utcnow(), True, LosingReaders()
                )
            state = store.feed_state("talks")
        finally:
            store.close()
        assert result.error == "unreadable: the reader process died while reading it"
        assert state.failures == 1 and state.retry_at is None  # not backed off as "not a feed"

    asyncio.run(poll())


def test_an_idle_watcher_lets_its_reader_processes_go():
    async def scenario() -> list[int]:
        readers = Readers(process_bytes=0, workers=2, idle_seconds=0.05)
        await readers.read(BIG, frozenset(), DEDUP, True, 0)
        pids = worker_pids(readers)
        for _ in range(200):
            if readers._pool is None:
                break
            await asyncio.sleep(0.05)
        assert readers._pool is None, "the pool was kept after the idle time"
        return pids

    for pid in asyncio.run(scenario()):
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, 0)  # already reaped: the worker is gone


def test_a_read_after_close_starts_no_processes():
    seen = seen_but_the_first(BIG)

    async def scenario() -> Reading:
        readers = Readers(process_bytes=0, workers=2)
        await readers.read(BIG, seen, DEDUP, False, 0)
        readers.close()
        reading = await readers.read(BIG, seen, DEDUP, False, 0)
        assert readers._pool is None, "a pool was started after close()"
        return reading

    assert asyncio.run(scenario()) == read_for_poll(BIG, seen, DEDUP, False, 0)


def test_a_read_waiting_for_a_pool_closed_meanwhile_starts_no_other():
    seen = seen_but_the_first(BIG)

    async def scenario() -> Reading:
        readers = Readers(process_bytes=0, workers=2)
        read = asyncio.create_task(readers.read(BIG, seen, DEDUP, False, 0))
        while readers._warming is None:  # the read has started the pool's first worker
            await asyncio.sleep(0)
        readers.close()
        reading = await read
        assert readers._pool is None, "a pool was started after close()"
        return reading

    assert asyncio.run(scenario()) == read_for_poll(BIG, seen, DEDUP, False, 0)


def test_where_processes_cannot_start_documents_are_read_in_threads(monkeypatch, caplog):
    import multiprocessing

    def refuse(method: str) -> None:
        raise OSError("no /dev/shm here")

    monkeypatch.setattr(multiprocessing, "get_context", refuse)

    async def scenario() -> tuple[Reading, Reading]:
        readers = Readers(process_bytes=0, workers=2)
        return (
            await readers.read(BIG, frozenset(), DEDUP, True, 0),
            await readers.read(BIG, frozenset(), DEDUP, True, 0),
        )

    first, second = asyncio.run(scenario())
    assert first == second == read_for_poll(BIG, frozenset(), DEDUP, True, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "cannot start reader processes (no /dev/shm here): documents are read in threads"
    ]


def test_a_poll_of_a_large_feed_announces_its_new_talk_once(tmp_path, feed_host, webhook):
    feed_host.set_body(BIG)
    config = one_feed(feed_host.url, webhook_table("hook", webhook.url), feed='notify = ["hook"]')
    write_config(tmp_path, config)
    first = watcher_command("--verbose", "poll", "--config", "watcher.toml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "reading large documents in" in first.stderr
    assert webhook.received == []
    feed_host.set_body(add_talk(BIG, "NEWxTALKxx1", "Brand new | Ada | PyCon", "Mon, 01 Jun 2026"))
    second = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert [r["talk"]["video_id"] for r in webhook.received] == ["NEWxTALKxx1"]
    assert webhook.received[0]["talk"]["slide_count"]


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_reader_processes_end_with_a_daemon_killed_with_sigkill(tmp_path, feed_host, daemons):
    feed_host.set_body(BIG)
    config = one_feed(feed_host.url, console_table(), watcher='interval = "1h"')
    write_config(tmp_path, config)
    daemon = daemons(tmp_path, "--verbose", "--config", "watcher.toml")
    daemon.wait_for(lambda: "first poll" in daemon.stderr, "the first poll")
    readers = descendants(daemon.process.pid)
    assert readers, "no reader processes were started"
    daemon.process.kill()
    daemon.process.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(map(running, readers)):
        time.sleep(0.05)
    assert not [pid for pid in readers if running(pid)], "reader processes outlived the daemon"


def fork_server_and_readers(processes: set[int]) -> set[int]:
    """The fork server (the one of them with children) and the readers, its children."""
    servers = {pid for pid in processes if descendants(pid)}
    return servers | {pid for server in servers for pid in descendants(server)}


def ignores_sigterm(pid: int) -> bool:
    """From the process's mask of ignored signals, in /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def worker_started(daemon_pid: int) -> bool:
    """Whether a reader process runs: a child of the fork server, the daemon's child."""
    return any(descendants(child) for child in descendants(daemon_pid))


def test_sigterm_to_the_whole_group_lets_the_read_in_hand_finish(tmp_path, feed_host, daemons):
    """As systemd stops a service, or a terminal on Ctrl-C: every process of the group gets
    the signal. A reader process ignores it and finishes the document in hand (here, 180
    talks read in full); the watcher stops as on a SIGTERM of its own, and ends them."""
    feed_host.set_body(replicated_seed(60))
    config = one_feed(
        feed_host.url, console_table(), watcher='interval = "1h"', feed="notify_existing = 180"
    )
    write_config(tmp_path, config)
    daemon = daemons(tmp_path, "--verbose", "--config", "watcher.toml", new_session=True)
    daemon.wait_for(lambda: worker_started(daemon.process.pid), "a reader process", timeout=30)
    assert "first poll" not in daemon.stderr, "the read was over before the signal"
    group = descendants(daemon.process.pid)
    forked = fork_server_and_readers(group)
    assert forked and all(map(ignores_sigterm, forked)), "a reader can be killed while starting"
    os.killpg(daemon.process.pid, signal.SIGTERM)
    assert daemon.process.wait(timeout=60) == 0, daemon.stderr
    assert "180 talks recorded as seen, 180 announced" in daemon.stderr, daemon.stderr
    assert "ERROR" not in daemon.stderr and "Traceback" not in daemon.stderr, daemon.stderr
    assert daemon.stderr.rstrip().endswith("INFO stopped"), daemon.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(map(running, group)):
        time.sleep(0.05)
    assert not [pid for pid in group if running(pid)], "processes of the group outlived it"


def test_documents_read_while_another_is_read_go_to_processes():
    small = seed_bytes()

    async def scenario() -> tuple[list[Reading], bool]:
        readers = Readers(process_bytes=len(small) * 10, workers=2)
        try:
            alone = await readers.read(small, frozenset(), DEDUP, True, 0)
            assert readers._pool is None, "one small document alone went to a process"
            together = await asyncio.gather(
                *(readers.read(small, frozenset(), DEDUP, True, 0) for _ in range(4))
            )
            return [alone, *together], readers._pool is not None
        finally:
            readers.close()

    readings, pooled = asyncio.run(scenario())
    assert pooled, "documents read at once were all read in threads"
    assert all(reading == readings[0] for reading in readings)


def test_reads_go_on_after_pools_are_retired():
    """A pool is let go after `tasks_per_pool` documents (whatever a long run leaks goes
    with it), and reads go on in the next: none waits forever (CPython gh-115634 made
    `max_tasks_per_child` leave reads waiting once every worker had retired)."""

    async def scenario() -> list[Reading]:
        readers = Readers(process_bytes=0, workers=2, tasks_per_pool=3)
        seed = seed_bytes()
        try:
            burst = await asyncio.gather(
                *(readers.read(seed, frozenset(), DEDUP, True, 0) for _ in range(8))
            )
            one_by_one = [
                await asyncio.wait_for(readers.read(seed, frozenset(), DEDUP, True, 0), 30)
                for _ in range(10)
            ]
            return [*burst, *one_by_one]
        finally:
            readers.close()

    readings = asyncio.run(scenario())
    assert len(readings) == 18 and all(r == readings[0] for r in readings)
    assert readings[0].identities


def test_a_new_pool_starts_its_first_worker_off_the_event_loop(monkeypatch):
    """Starting the fork server the first time imports the reading code (a fifth of a
    second): done on the event loop's thread, it held up every fetch in flight."""
    import threading
    from concurrent.futures import ProcessPoolExecutor

    submitted_from: list[threading.Thread] = []
    submit = ProcessPoolExecutor.submit

    def recording(self, *args, **kwargs):
        submitted_from.append(threading.current_thread())
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", recording)

    async def read() -> tuple[Reading, threading.Thread]:
        readers = Readers(process_bytes=0, workers=2)
        try:
            return await readers.read(BIG, frozenset(), DEDUP, True, 0), threading.current_thread()
        finally:
            readers.close()

    reading, loop_thread = asyncio.run(read())
    assert reading.identities and not reading.lost
    assert len(submitted_from) == 2, "a warm-up, then the document"
    assert submitted_from[0] is not loop_thread


@pytest.mark.skipif(not Path("/proc/sys/fs/pipe-max-size").exists(), reason="Linux only")
def test_documents_go_to_the_workers_through_wide_pipes():
    """A large feed through a 64 KB pipe took 20 writes, each a wait on the worker and a
    hand-over of the GIL (a tenth of a poll of many large feeds): the pool's pipes are
    widened to PIPE_BYTES, and the documents still arrive whole."""
    import fcntl

    from watcher.readers import PIPE_BYTES

    async def read() -> tuple[Reading, list[int]]:
        readers = Readers(process_bytes=0, workers=2)
        try:
            reading = await readers.read(BIG, frozenset(), DEDUP, True, 0)
            pool = readers._pool
            assert pool is not None
            pipes = [pool._call_queue._writer, pool._result_queue._writer]  # type: ignore[attr-defined]
            return reading, [fcntl.fcntl(p.fileno(), fcntl.F_GETPIPE_SZ) for p in pipes]
        finally:
            readers.close()

    reading, sizes = asyncio.run(read())
    assert reading == read_for_poll(BIG, frozenset(), DEDUP, True, 0)
    allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    widest = PIPE_BYTES if os.geteuid() == 0 else min(PIPE_BYTES, allowed)
    assert sizes == [widest, widest]
