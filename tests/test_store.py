"""The store: one atomic write per feed per batch, a batch that fails writes nothing,
and what a poll writes follows that feed's state, not the whole store's."""

from __future__ import annotations

import json
import os

import pytest

from watcher.store import (
    AtomicJSONStorage,
    Store,
    StoreError,
    feed_file_name,
    feeds_folder,
    read_snapshot,
)

NOW = "2026-01-01T00:00:00Z"


def queued(n: int, feed: str = "talks") -> dict:
    return {"id": f"{feed}-d{n}", "feed": feed, "destination": "hook", "talk": {}, "created": NOW}


def feed_file(state, feed: str = "talks"):
    return feeds_folder(state) / feed_file_name(feed)


def test_a_failed_batch_leaves_no_trace(tmp_path):
    state = tmp_path / "state.json"
    store = Store(state)
    store.update_feed_state("talks", etag="one")
    with pytest.raises(RuntimeError), store.batch():
        store.mark_seen("talks", [("guid-1", {"guid:guid-1"})], NOW)
        store.enqueue(queued(1))
        raise RuntimeError("crash between seen and queued")
    assert store.pending("hook") == [] and store.seen_keys("talks") == set()
    store.update_feed_state("talks", etag="two")
    store.close()
    data = json.loads(feed_file(state).read_text())
    assert data.get("seen", {}) == {} and data.get("outbox", {}) == {}
    assert data["feed"]["1"]["etag"] == "two"


def test_a_feed_first_seen_in_a_failed_batch_is_forgotten_whole(tmp_path):
    state = tmp_path / "state.json"
    store = Store(state)
    with pytest.raises(RuntimeError), store.batch():
        store.mark_seen("new", [("guid-1", {"guid:guid-1"})], NOW)
        raise RuntimeError
    store.update_feed_state("new", etag="e")
    store.close()
    reopened = Store(state)
    assert reopened.feed_state("new")["etag"] == "e" and reopened.seen_count("new") == 0
    reopened.close()


def test_a_batch_is_one_write_of_one_file(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    store = Store(state)
    store.update_feed_state("other", etag="x")
    writes = []
    original = AtomicJSONStorage.write

    def counting(self, data):
        writes.append(self.path.name)
        original(self, data)

    monkeypatch.setattr(AtomicJSONStorage, "write", counting)
    with store.batch():
        store.mark_seen("talks", [(f"g{n}", {f"guid:g{n}"}) for n in range(20)], NOW)
        for n in range(20):
            store.enqueue(queued(n))
        store.update_feed_state("talks", etag="e", last_poll=NOW)
    assert writes == [feed_file_name("talks")]  # the new feed's name row folded in
    store.close()
    reopened = Store(state)
    assert reopened.seen_count("talks") == 20 and len(reopened.pending("hook")) == 20
    assert reopened.feed_state("talks")["last_poll"] == NOW
    reopened.close()


def test_a_poll_that_changes_only_its_times_writes_no_feed_file(tmp_path):
    state = tmp_path / "state.json"
    store = Store(state)
    store.update_feed_state("talks", etag="e", failures=0, last_poll=NOW)
    before = feed_file(state).stat().st_mtime_ns, feed_file(state).read_bytes()
    for minute in range(10):
        store.update_feed_state(
            "talks", etag="e", failures=0, last_poll=f"2026-01-01T00:{minute:02d}:00Z"
        )
    assert (feed_file(state).stat().st_mtime_ns, feed_file(state).read_bytes()) == before
    store.close()
    assert read_snapshot(state).feeds["talks"]["last_poll"] == "2026-01-01T00:09:00Z"


def test_recording_one_talk_writes_that_feed_only_at_1000_feeds_and_100k_talks(
    tmp_path, monkeypatch
):
    """The issue's bound: with 1,000 feeds and 100,000 seen talks, a poll that records one
    new talk writes at most ~1 MB. Here it writes one feed's file, a few KB per talk."""
    state = tmp_path / "state.json"
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # setting up: 2,000 writes, durable or not
    store = Store(state)
    for feed in range(1000):
        name = f"feed-{feed}"
        with store.batch():
            store.mark_seen(
                name,
                [
                    (f"https://e.test/{name}/{n}", {f"guid:{name}/{n}", f"link:e.test/{name}/{n}"})
                    for n in range(100)
                ],
                NOW,
            )
    store.close()
    monkeypatch.undo()
    store = Store(state)
    assert sum(store.seen_count(f"feed-{feed}") for feed in range(1000)) == 100_000
    written = []
    original = AtomicJSONStorage.write

    def measuring(self, data):
        original(self, data)
        written.append(self.path.stat().st_size)

    monkeypatch.setattr(AtomicJSONStorage, "write", measuring)
    with store.batch():
        store.mark_seen("feed-500", [("new", {"guid:new"})], NOW)
        store.enqueue(queued(1, "feed-500"))
        store.update_feed_state("feed-500", etag="e2", last_poll=NOW)
    assert len(written) == 1 and written[0] < 50_000  # one feed of 100 talks: 16 KB
    store.close()


def test_a_schema_1_state_file_is_split_per_feed_losing_nothing(tmp_path):
    state = tmp_path / "state.json"
    v1 = {
        "meta": {"1": {"schema_version": 1, "next_seq": 3}},
        "feeds": {
            "1": {"name": "talks", "etag": "e", "baselined": True, "last_poll": NOW},
            "2": {"name": "other", "baselined": True},
        },
        "seen": {
            "1": {"feed": "talks", "guid": "a", "keys": ["guid:a"], "first_seen": NOW},
            "2": {"feed": "other", "guid": "b", "keys": ["guid:b"], "first_seen": NOW},
        },
        "outbox": {
            "1": {**queued(1), "seq": 1, "attempts": 0, "dead": False},
            "2": {**queued(2), "seq": 2, "attempts": 3, "dead": True},
        },
        "destinations": {"1": {"name": "hook", "last_success": NOW}},
    }
    state.write_text(json.dumps(v1))
    store = Store(state)
    assert store.seen_keys("talks") == {"guid:a"} and store.seen_keys("other") == {"guid:b"}
    assert store.feed_state("talks") == {
        "name": "talks",
        "etag": "e",
        "baselined": True,
        "last_poll": NOW,
    }
    assert [row["id"] for row in store.pending("hook")] == ["talks-d1"]
    assert store.requeue_dead("hook", NOW) == 1
    assert [row["id"] for row in store.pending("hook")] == ["talks-d1", "talks-d2"]
    store.close()
    assert json.loads(state.read_text())["meta"]["1"]["schema_version"] == 2
    assert json.loads((tmp_path / "state.json.schema1").read_text()) == v1
    assert not (tmp_path / "state.json.bak").exists(), "copied back, it would migrate again"
    snapshot = read_snapshot(state)
    assert snapshot.feeds["talks"]["talks_seen"] == 1
    assert snapshot.destinations["hook"]["last_success"] == NOW


def test_a_feed_file_that_names_no_feed_is_refused(tmp_path):
    state = tmp_path / "state.json"
    Store(state).close()
    (feeds_folder(state) / "stray.json").write_text('{"seen": {}}')
    with pytest.raises(StoreError, match=r"stray\.json: the state file is damaged"):
        Store(state)


def test_a_released_feed_is_read_again_from_its_file_whole(tmp_path):
    state = tmp_path / "state.json"
    store = Store(state)
    with store.batch():
        store.mark_seen("talks", [("a", {"guid:a"})], NOW)
        store.enqueue(queued(1))
        store.update_feed_state("talks", etag="e")
    store.release("talks")
    assert store._feeds["talks"].middleware.cache is None
    assert store.seen_keys("talks") == {"guid:a"} and store.feed_state("talks")["etag"] == "e"
    store.delivered("talks-d1")
    store.release("talks")
    assert store.pending("hook") == [] and store.seen_count("talks") == 1
    store.close()
    assert read_snapshot(state).outbox == []


def test_two_state_files_in_one_folder_share_nothing(tmp_path):
    first, second = Store(tmp_path / "watcher.json"), Store(tmp_path / "watcher.db")
    with first.batch():
        first.mark_seen("talks", [("a", {"guid:a"})], NOW)
        first.enqueue(queued(1))
    first.close()
    assert second.pending("hook") == [] and second.seen_keys("talks") == set()
    second.close()
    assert Store(tmp_path / "watcher.json").seen_keys("talks") == {"guid:a"}


def test_a_failed_write_is_one_line_naming_the_file_and_keeps_nothing(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    store = Store(state)

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StoreError) as failure, store.batch():
        store.mark_seen("talks", [("a", {"guid:a"})], NOW)
        store.enqueue(queued(1))
    message = str(failure.value)
    assert message.startswith(str(feed_file(state))) and "No space left on device" in message
    assert "\n" not in message and store.pending("hook") == [] and store.seen_count("talks") == 0
    assert not list(feeds_folder(state).glob(".*.tmp-*")), "no temporary file left behind"
    monkeypatch.undo()
    store.close()


def test_a_failed_batch_rereads_only_its_own_feeds(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    store = Store(state)
    for feed in ("a", "b", "c"):
        with store.batch():
            store.enqueue(queued(1, feed))
    reads = []
    original = AtomicJSONStorage.read
    monkeypatch.setattr(
        AtomicJSONStorage, "read", lambda self: reads.append(self.path.name) or original(self)
    )
    with pytest.raises(RuntimeError), store.batch():
        store.delivered("a-d1")
        raise RuntimeError
    assert set(reads) == {feed_file_name("a")}
    assert [row["id"] for row in store.pending("hook")] == ["a-d1", "b-d1", "c-d1"]
    monkeypatch.undo()
    store.close()
