"""State files written by the watcher before its records were typed (schema 2, made by
the store of commit a6e6e0b, in tests/fixtures/state-v2) load unchanged: every field
reads back, nothing is rewritten by opening them, and a poll's commit keeps the rest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.store_helpers import delivery, record
from watcher.store import Store, read_snapshot

FIXTURE = Path(__file__).parent / "fixtures" / "state-v2"


@pytest.fixture
def state(tmp_path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "state")
    return tmp_path / "state" / "watcher.json"


def files(state: Path) -> dict[str, str]:
    folder = state.parent
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*.json"))}


def test_every_field_of_an_old_state_reads_back(state):
    store = Store(state, lock=False)
    talks = store.load("talks")
    assert talks.seen_keys == {"guid:talk-1", "link:example.test/1", "guid:talk-0"}
    assert (talks.state.etag, talks.state.last_modified) == (
        '"v1"',
        "Mon, 01 Jun 2026 10:00:00 GMT",
    )
    assert talks.state.baselined and talks.state.last_poll == "2026-06-01T11:00:00Z"
    failing = store.feed_state("failing")
    assert (failing.failures, failing.retry_at) == (4, "2026-06-01T13:00:00Z")
    assert failing.last_success == "2026-06-01T09:00:00Z"
    [hook] = store.pending("hook")
    assert (hook.attempts, hook.first_failed_at, hook.next_attempt) == (
        1,
        "2026-06-01T11:01:00Z",
        "2026-06-01T11:02:00Z",
    )
    assert hook.talk.speaker == "Frank McSherry" and hook.talk.first_lines == ["Hello."]
    assert store.pending("mail") == [], "dead-lettered"
    assert store.destination("hook").last_error == "HTTP 503"
    store.close()
    snapshot = read_snapshot(state)
    [dead] = [entry for entry in snapshot.outbox if entry.dead]
    assert (dead.id, dead.last_error, dead.dead_at) == (
        "d-mail",
        "HTTP 400 Bad Request",
        "2026-06-01T12:00:00Z",
    )
    assert snapshot.talks_seen == {"talks": 2, "failing": 1}


def test_opening_an_old_state_rewrites_nothing(state):
    before = files(state)
    Store(state, lock=False).close()
    assert files(state) == before


def test_a_commit_to_an_old_state_keeps_what_it_does_not_change(state):
    store = Store(state, lock=False)
    record(store, "talks", seen=[("talk-2", {"guid:talk-2"})], deliveries=[delivery("talks", "t2")])
    store.close()
    data = json.loads(next(state.parent.glob("watcher.json.feeds/talks-*.json")).read_text())
    outbox = {row["id"]: row for row in data["outbox"].values()}
    assert outbox["d-mail"]["dead"] and outbox["d-hook"]["attempts"] == 1
    assert outbox["talks-t2"]["seq"] > max(outbox["d-hook"]["seq"], outbox["d-mail"]["seq"])
    assert {row["guid"] for row in data["seen"].values()} == {"talk-0", "talk-1", "talk-2"}
    assert data["feed"]["1"]["etag"] == '"v1"'
