"""The store: one atomic write per feed per change, a change that fails writes nothing,
a change inside another is refused, and what a poll writes follows that feed's state,
not the whole store's."""

from __future__ import annotations

import json
import os

import pytest

from tests.store_helpers import NOW, delivery, record
from watcher.store import (
    AtomicJSONStorage,
    FeedState,
    OutboxEntry,
    SeenTalk,
    Store,
    StoreError,
    feed_file_name,
    feeds_folder,
    read_snapshot,
)


def queued(n: int, feed: str = "talks"):
    return delivery(feed, f"d{n}")


def v1_row(n: int) -> dict:
    return {"id": f"talks-d{n}", "feed": "talks", "destination": "hook", "talk": {}, "created": NOW}


def feed_file(state, feed: str = "talks"):
    return feeds_folder(state) / feed_file_name(feed)


def full_disk(fd):
    raise OSError(28, "No space left on device")


def test_a_failed_commit_leaves_no_trace(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    store = Store(state)
    record(store, "talks", etag="one")
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StoreError):
        record(store, "talks", seen=[("guid-1", {"guid:guid-1"})], deliveries=[queued(1)])
    monkeypatch.undo()
    assert store.pending("hook") == [] and store.load("talks").seen_keys == set()
    record(store, "talks", etag="two")
    store.close()
    data = json.loads(feed_file(state).read_text())
    assert data.get("seen", {}) == {} and data.get("outbox", {}) == {}
    assert data["feed"]["1"]["etag"] == "two"


def test_a_feed_first_seen_in_a_failed_commit_is_forgotten_whole(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    store = Store(state)
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StoreError):
        record(store, "new", seen=[("guid-1", {"guid:guid-1"})])
    monkeypatch.undo()
    assert not feed_file(state, "new").exists()
    record(store, "new", etag="e")
    store.close()
    reopened = Store(state)
    loaded = reopened.load("new")
    assert loaded.state.etag == "e" and loaded.talks_seen == 0
    reopened.close()


def test_a_change_inside_a_change_is_refused(tmp_path):
    """The rule that keeps two changes from sharing a write is checked, not assumed: a
    change made while another is open (an await inside one would allow it) raises."""
    store = Store(tmp_path / "state.json")
    record(store, "a", deliveries=[queued(1, "a")])
    with pytest.raises(RuntimeError, match="inside one of 'b'"), store._changing("b"):
        store.delivered("a-d1")
    assert [entry.id for entry in store.pending("hook")] == ["a-d1"]
    store.close()
    assert [entry.id for entry in read_snapshot(tmp_path / "state.json").outbox] == ["a-d1"]


def test_a_commit_is_one_write_of_one_file(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    store = Store(state)
    record(store, "other", etag="x")
    writes = []
    original = AtomicJSONStorage.write

    def counting(self, data):
        writes.append(self.path.name)
        original(self, data)

    monkeypatch.setattr(AtomicJSONStorage, "write", counting)
    record(
        store,
        "talks",
        seen=[(f"g{n}", {f"guid:g{n}"}) for n in range(20)],
        deliveries=[queued(n) for n in range(20)],
        etag="e",
        last_poll=NOW,
    )
    assert writes == [feed_file_name("talks")]  # the new feed's name row folded in
    store.close()
    reopened = Store(state)
    loaded = reopened.load("talks")
    assert loaded.talks_seen == 20 and len(reopened.pending("hook")) == 20
    assert loaded.state.last_poll == NOW
    reopened.close()


def test_a_poll_that_changes_only_its_times_writes_no_feed_file(tmp_path):
    state = tmp_path / "state.json"
    store = Store(state)
    record(store, "talks", etag="e", failures=0, last_poll=NOW)
    before = feed_file(state).stat().st_mtime_ns, feed_file(state).read_bytes()
    for minute in range(10):
        record(store, "talks", etag="e", failures=0, last_poll=f"2026-01-01T00:{minute:02d}:00Z")
    assert (feed_file(state).stat().st_mtime_ns, feed_file(state).read_bytes()) == before
    store.close()
    assert read_snapshot(state).feeds["talks"].last_poll == "2026-01-01T00:09:00Z"


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
        talks = [
            (f"https://e.test/{name}/{n}", {f"guid:{name}/{n}", f"link:e.test/{name}/{n}"})
            for n in range(100)
        ]
        record(store, name, seen=talks)
    store.close()
    monkeypatch.undo()
    store = Store(state)
    assert sum(store.load(f"feed-{feed}").talks_seen for feed in range(1000)) == 100_000
    written = []
    original = AtomicJSONStorage.write

    def measuring(self, data):
        original(self, data)
        written.append(self.path.stat().st_size)

    monkeypatch.setattr(AtomicJSONStorage, "write", measuring)
    record(
        store,
        "feed-500",
        seen=[("new", {"guid:new"})],
        deliveries=[queued(1, "feed-500")],
        etag="e2",
        last_poll=NOW,
    )
    assert len(written) == 1 and written[0] < 50_000  # one feed of 100 talks: 16 KB
    store.close()


def test_records_keep_fields_they_do_not_know_and_read_old_rows():
    """A row from a newer watcher of the same schema, or from before a field existed,
    reads and writes back losing nothing."""
    row = {"name": "talks", "etag": "e", "failures": None, "shiny_new_field": [1, 2]}
    state = FeedState.from_rows("talks", row, {"last_poll": NOW})
    assert state.failures == 0 and state.last_poll == NOW and not state.baselined
    assert state.file_row()["shiny_new_field"] == [1, 2] and "last_poll" not in state.file_row()
    seen = SeenTalk.from_row({"guid": "g", "keys": ["guid:g"], "first_seen": NOW})
    assert seen.to_row() == {
        "guid": "g",
        "keys": ["guid:g"],
        "first_seen": NOW,
        "absent_since": None,
    }
    entry = OutboxEntry.from_row(
        {
            "id": "x",
            "seq": 1,
            "feed": "f",
            "destination": "d",
            "created": NOW,
            "attempts": 0,
            "talk": {"guid": "g", "title": "T", "raw_title": "T", "slides_present": 0},
        }
    )
    assert entry.talk.title == "T" and entry.to_row()["talk"]["guid"] == "g"
    assert OutboxEntry.from_row(entry.to_row()) == entry


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
            "1": {**v1_row(1), "seq": 1, "attempts": 0, "dead": False},
            "2": {**v1_row(2), "seq": 2, "attempts": 3, "dead": True},
        },
        "destinations": {"1": {"name": "hook", "last_success": NOW}},
    }
    state.write_text(json.dumps(v1))
    store = Store(state)
    assert store.load("talks").seen_keys == {"guid:a"}
    assert store.load("other").seen_keys == {"guid:b"}
    assert store.feed_state("talks") == FeedState("talks", etag="e", baselined=True, last_poll=NOW)
    assert [entry.id for entry in store.pending("hook")] == ["talks-d1"]
    assert store.requeue_dead("hook", NOW) == 1
    assert [entry.id for entry in store.pending("hook")] == ["talks-d1", "talks-d2"]
    store.close()
    assert json.loads(state.read_text())["meta"]["1"]["schema_version"] == 2
    assert json.loads((tmp_path / "state.json.schema1").read_text()) == v1
    assert not (tmp_path / "state.json.bak").exists(), "copied back, it would migrate again"
    snapshot = read_snapshot(state)
    assert snapshot.talks_seen["talks"] == 1
    assert snapshot.destinations["hook"].last_success == NOW


def test_a_feed_file_that_names_no_feed_is_refused(tmp_path):
    state = tmp_path / "state.json"
    Store(state).close()
    (feeds_folder(state) / "stray.json").write_text('{"seen": {}}')
    with pytest.raises(StoreError, match=r"stray\.json: the state file is damaged"):
        Store(state)


def test_a_released_feed_is_read_again_from_its_file_whole(tmp_path):
    state = tmp_path / "state.json"
    store = Store(state)
    record(store, "talks", seen=[("a", {"guid:a"})], deliveries=[queued(1)], etag="e")
    assert store._feeds["talks"].middleware.cache is None, "let go of once written"
    loaded = store.load("talks")
    assert loaded.seen_keys == {"guid:a"} and loaded.state.etag == "e"
    store.delivered("talks-d1")
    assert store._feeds["talks"].middleware.cache is None
    assert store.pending("hook") == [] and store.load("talks").talks_seen == 1
    store.close()
    assert read_snapshot(state).outbox == []


def test_two_state_files_in_one_folder_share_nothing(tmp_path):
    first, second = Store(tmp_path / "watcher.json"), Store(tmp_path / "watcher.db")
    record(first, "talks", seen=[("a", {"guid:a"})], deliveries=[queued(1)])
    first.close()
    assert second.pending("hook") == [] and second.load("talks").seen_keys == set()
    second.close()
    assert Store(tmp_path / "watcher.json").load("talks").seen_keys == {"guid:a"}


def test_a_failed_write_is_one_line_naming_the_file_and_keeps_nothing(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    store = Store(state)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StoreError) as failure:
        record(store, "talks", seen=[("a", {"guid:a"})], deliveries=[queued(1)])
    message = str(failure.value)
    assert message.startswith(str(feed_file(state))) and "No space left on device" in message
    assert "\n" not in message and store.pending("hook") == []
    assert store.load("talks").talks_seen == 0
    assert not list(feeds_folder(state).glob(".*.tmp-*")), "no temporary file left behind"
    monkeypatch.undo()
    store.close()


def test_a_failed_change_reads_only_its_own_feed(tmp_path, monkeypatch):
    state = tmp_path / "state.json"
    store = Store(state)
    for feed in ("a", "b", "c"):
        record(store, feed, deliveries=[queued(1, feed)])
    reads = []
    original = AtomicJSONStorage.read
    monkeypatch.setattr(
        AtomicJSONStorage, "read", lambda self: reads.append(self.path.name) or original(self)
    )
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StoreError):
        store.delivered("a-d1")
    assert set(reads) == {feed_file_name("a")}
    assert [entry.id for entry in store.pending("hook")] == ["a-d1", "b-d1", "c-d1"]
    monkeypatch.undo()
    store.close()
