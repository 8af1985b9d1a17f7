"""The store: one atomic write per batch, and a batch that fails writes nothing."""

from __future__ import annotations

import json

import pytest

from watcher.store import Store


def test_a_failed_batch_leaves_no_trace(tmp_path):
    store = Store(tmp_path / "state.json")
    store.update_feed_state("talks", etag="one")
    with pytest.raises(RuntimeError), store.batch():
        store.mark_seen("talks", "guid-1", {"guid:guid-1"}, "2026-01-01T00:00:00Z")
        raise RuntimeError("crash between seen and queued")
    store.update_feed_state("talks", etag="two")
    store.close()
    data = json.loads((tmp_path / "state.json").read_text())
    assert data.get("seen", {}) == {}
    assert [row["etag"] for row in data["feeds"].values()] == ["two"]


def test_a_batch_is_one_write(tmp_path, monkeypatch):
    store = Store(tmp_path / "state.json")
    writes = []
    storage = store._middleware.storage
    original = storage.write
    monkeypatch.setattr(storage, "write", lambda data: writes.append(1) or original(data))
    with store.batch():
        for n in range(20):
            store.mark_seen("talks", f"g{n}", {f"guid:g{n}"}, "2026-01-01T00:00:00Z")
            store.enqueue(
                {
                    "id": f"d{n}",
                    "feed": "talks",
                    "destination": "hook",
                    "talk": {},
                    "created": "2026-01-01T00:00:00Z",
                }
            )
    assert len(writes) == 1
    store.close()
    reopened = Store(tmp_path / "state.json")
    assert reopened.seen_count("talks") == 20 and len(reopened.pending("hook")) == 20
    reopened.close()
