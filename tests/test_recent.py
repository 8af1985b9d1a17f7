"""The recent talks: what the status page lists after the outbox forgets a delivery.
Kept by the store in the main file's `recent` table (the last 50 talks queued, each
with what became of its deliveries), written with `flush()`, read back by a new store
and by `read_snapshot`; a state file from before them loads unchanged."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.conftest import (
    FeedHost,
    Recorder,
    add_talk,
    one_feed,
    watcher_command,
    webhook_table,
    write_config,
)
from tests.store_helpers import delivery, queue, record
from tests.test_service import address_of
from watcher.events import DeliveryEvent, DeliveryOutcome
from watcher.notifiers.base import Alert
from watcher.store import RECENT_TALKS, DeliveryFate, Fate, NewDelivery, Store, read_snapshot

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STAMP = "2026-06-01T12:00:00.000000Z"
FIXTURE = Path(__file__).parent / "fixtures" / "state-v2"


def event(guid: str, destination: str, outcome: DeliveryOutcome, error: str | None = None):
    return DeliveryEvent(destination, "talks", guid, outcome, AT, error)


def test_queued_talks_and_their_fates_are_written_by_flush_and_read_back(tmp_path):
    state = tmp_path / "state.json"
    store = Store(state, lock=False)
    record(
        store,
        "talks",
        deliveries=[delivery("talks", "a", "hook"), delivery("talks", "a", "mail", id="m-a")],
    )
    queue(store, ("talks", "b"))
    store.note_delivery(event("a", "hook", DeliveryOutcome.SENT))
    store.note_delivery(event("a", "mail", DeliveryOutcome.DEAD, "HTTP 400 Bad Request"))
    store.note_delivery(event("b", "hook", DeliveryOutcome.RETRIED, "HTTP 503"))
    store.note_delivery(event("never-queued", "hook", DeliveryOutcome.SENT))
    expected = {
        ("talks", "a"): {
            "hook": DeliveryFate(Fate.DELIVERED, STAMP),
            "mail": DeliveryFate(Fate.DEAD, STAMP, "HTTP 400 Bad Request"),
        },
        ("talks", "b"): {"hook": DeliveryFate(Fate.RETRYING, STAMP, "HTTP 503")},
    }
    live = store.snapshot().recent
    assert {talk.key: dict(talk.destinations) for talk in live} == expected
    assert [talk.talk.title for talk in live] == ["a", "b"], "oldest first"
    assert "recent" not in json.loads(state.read_text()), "written lazily, with flush()"
    store.close()

    again = Store(state, lock=False)
    assert again.snapshot().recent == live
    again.close()
    from_files = read_snapshot(state).recent
    assert from_files == live
    assert from_files[0].queued_at == "2026-01-01T00:00:00Z"


def test_redelivering_a_dead_letter_makes_it_queued_again(tmp_path):
    store = Store(tmp_path / "state.json", lock=False)
    queue(store, ("talks", "a"))
    [entry] = store.pending("hook")
    store.note_delivery(event("a", "hook", DeliveryOutcome.DEAD, "HTTP 410"))
    store.update_deliveries([dataclasses.replace(entry, dead=True, attempts=1)])
    assert store.requeue_dead("hook", STAMP) == 1
    [recent] = store.snapshot().recent
    assert recent.destinations == {"hook": DeliveryFate(Fate.QUEUED)}
    store.close()


def test_an_alert_is_no_recent_talk(tmp_path):
    store = Store(tmp_path / "state.json", lock=False)
    alert = Alert("feed_failing", "talks", "feed talks: failing for 1h: HTTP 503", STAMP)
    record(
        store,
        "talks",
        deliveries=[
            NewDelivery("a-1", "talks", "hook", alert.as_talk(), STAMP, alert),
            delivery("talks", "t1"),
        ],
    )
    assert [talk.talk.guid for talk in store.snapshot().recent] == ["t1"]
    store.close()


def test_only_the_last_talks_are_kept(tmp_path):
    state = tmp_path / "state.json"
    store = Store(state, lock=False)
    queue(store, *[("talks", f"t{n}") for n in range(RECENT_TALKS + 7)])
    store.close()
    kept = read_snapshot(state).recent
    assert len(kept) == RECENT_TALKS
    assert [talk.talk.guid for talk in kept] == [f"t{n}" for n in range(7, RECENT_TALKS + 7)]


def test_a_state_file_from_before_them_loads_unchanged_and_gains_them(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "state")
    state = tmp_path / "state" / "watcher.json"
    before = state.read_text()
    assert "recent" not in json.loads(before)
    store = Store(state, lock=False)
    assert store.snapshot().recent == []
    store.close()
    assert state.read_text() == before
    assert read_snapshot(state).recent == []

    store = Store(state, lock=False)
    record(store, "talks", deliveries=[delivery("talks", "t9")])
    store.close()
    data = json.loads(state.read_text())
    assert [row["talk"]["guid"] for row in data["recent"].values()] == ["t9"]
    for doc_id, row in json.loads(before)["destinations"].items():
        assert data["destinations"][doc_id].items() >= row.items(), "the rest kept"


def test_last_new_talk_is_set_by_a_poll_that_queues_new_talks_not_by_the_first(
    tmp_path, feed_host, webhook
):
    body = one_feed(feed_host.url, webhook_table("hook", webhook.url), feed="notify_existing = 1")
    write_config(tmp_path, body)

    def status() -> dict:
        result = watcher_command("status", "--config", "watcher.toml", "--json", cwd=tmp_path)
        return json.loads(result.stdout)

    assert watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path).returncode == 0
    [feed] = status()["feeds"]
    assert len(webhook.received) == 1, "the newest talk, announced by the first poll"
    assert feed["last_new_talk"] is None and feed["quiet_for_seconds"] is None, "the baseline"
    feed_host.set_body(
        add_talk(
            feed_host.body, "NEWTALK0001", "Fresh | Ada | NewConf", "Tue, 09 Jun 2026 10:00:00 GMT"
        )
    )
    assert watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path).returncode == 0
    assert len(webhook.received) == 2
    report = status()
    [feed] = report["feeds"]
    assert feed["last_new_talk"] and feed["last_new_talk"] <= report["generated"]
    assert 0 <= feed["quiet_for_seconds"] < 60
    recent, first = report["recent_talks"]
    assert first["title"] == webhook.received[0]["talk"]["title"], "newest first"
    assert (recent["title"], recent["speaker"], recent["event"]) == ("Fresh", "Ada", "NewConf")
    [fate] = recent["deliveries"]
    assert fate["destination"] == "hook" and fate["state"] == "delivered" and fate["at"]
    assert watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path).returncode == 0
    [again] = status()["feeds"]
    assert again["last_new_talk"] == feed["last_new_talk"], "a poll with nothing new keeps it"


def test_a_restart_keeps_the_recent_talks_and_when_they_were_delivered(
    tmp_path, httpserver, daemons
):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    write_config(
        tmp_path,
        one_feed(
            feed.url,
            webhook_table("hook", hook.url),
            watcher='listen = "127.0.0.1:0"\ninterval = "1h"',
            feed="notify_existing = 2",
        ),
    )

    def recent(daemon) -> list[dict]:
        address = address_of(tmp_path, daemon)
        return httpx.get(f"{address}/status.json", timeout=5).json()["recent_talks"]

    first = daemons(tmp_path, "--config", "watcher.toml")
    first.wait_for(lambda: len(hook.received) == 2, "2 deliveries")
    first.wait_for(
        lambda: [d["state"] for t in recent(first) for d in t["deliveries"]] == ["delivered"] * 2,
        "both delivered in the status",
    )
    before = recent(first)
    sent = [message["talk"]["title"] for message in hook.received]  # oldest first
    assert [talk["title"] for talk in before] == sent[::-1], "newest first"
    assert first.stop() == 0
    (tmp_path / "state.json.lock").unlink(missing_ok=True)  # its address: the next one's

    second = daemons(tmp_path, "--config", "watcher.toml")
    second.wait_for(lambda: len(feed.requests) == 2, "the second daemon's poll")
    after = recent(second)
    assert after == before, "the same talks, delivered at the same times"
    assert len(hook.received) == 2, "nothing sent again"
    assert second.stop() == 0
