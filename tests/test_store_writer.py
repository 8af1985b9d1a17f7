"""A poll's write (and a delivery's) is done in the store's writer thread while the event
loop goes on, and acted on only once it is written; versions of one file never replace
newer ones, and a version made from a write that failed is never written."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest

from tests.store_helpers import NOW, delivery, record
from watcher.store import AtomicJSONStorage, FeedCommit, SeenTalk, Store, StoreError


def poll_commit(store: Store, feed: str, guid: str) -> FeedCommit:
    """What a poll that found talk `guid` commits: it is seen, and queued for the hook."""
    state = dataclasses.replace(store.feed_state(feed), etag=guid)
    return FeedCommit(
        state,
        at=NOW,
        seen=[SeenTalk(guid, (f"guid:{guid}",), NOW)],
        deliveries=[delivery(feed, guid)],
    )


def blocked_writer(store: Store) -> threading.Event:
    """Hold the store's writer thread until the event is set."""
    go_on = threading.Event()
    store._writer().submit(go_on.wait)
    return go_on


def on_disk(path) -> tuple[set[str], list[str]]:
    """The keys seen and the deliveries queued of feed `talks`, as a new store reads them."""
    store = Store(path)
    try:
        return set(store.seen_keys("talks")), [e.id for e in store.pending("hook")]
    finally:
        store.close()


def test_the_event_loop_goes_on_while_a_poll_is_written(tmp_path):
    store = Store(tmp_path / "state.json")
    record(store, "talks", etag="first")
    go_on = blocked_writer(store)

    async def scenario() -> list[str]:
        happened: list[str] = []

        async def writing() -> None:
            await store.record(poll_commit(store, "talks", "t1"))
            happened.append("written")

        async def meanwhile() -> None:
            happened.append("the loop went on")
            assert store.pending("hook") == [], "queued before it was written"
            go_on.set()

        await asyncio.gather(writing(), meanwhile())
        return happened

    assert asyncio.run(scenario()) == ["the loop went on", "written"]
    assert [e.id for e in store.pending("hook")] == ["talks-t1"]
    store.close()
    assert on_disk(tmp_path / "state.json") == ({"guid:t1"}, ["talks-t1"])


def test_a_version_written_meanwhile_is_not_replaced_by_an_older_one(tmp_path):
    """A poll's write waits in the writer thread; a delivery of the same feed is written
    at once (its version holds the poll's change too); the poll's, older, is not written
    over it, and the data in memory is kept while a write of it is pending."""
    store = Store(tmp_path / "state.json")
    record(store, "talks", deliveries=[delivery("talks", "t0")])
    go_on = blocked_writer(store)

    async def scenario() -> None:
        writing = asyncio.create_task(store.record(poll_commit(store, "talks", "t1")))
        await asyncio.sleep(0)  # the poll's change is made and its write handed over
        store.release("talks")  # let go of between polls: not while it is being written
        assert store.seen_keys("talks") == {"guid:t1"}
        store.delivered("talks-t0")
        go_on.set()
        await writing

    asyncio.run(scenario())
    assert [e.id for e in store.pending("hook")] == ["talks-t1"]
    store.close()
    assert on_disk(tmp_path / "state.json") == ({"guid:t1"}, ["talks-t1"])


def test_a_failed_write_keeps_nothing_and_what_was_made_from_it_is_not_written(
    tmp_path, monkeypatch
):
    """Two polls' writes wait in the writer thread; the first fails (a full disk): it
    raises, nothing of it is queued, and the second, made from data that held the first's
    change, fails too instead of writing it. The next poll starts from the file."""
    store = Store(tmp_path / "state.json")
    record(store, "talks", etag="first")
    original = AtomicJSONStorage._write
    failing = {"on": True}

    def full_disk(self, text):
        if failing["on"] and ".feeds" in str(self.path.parent):
            failing["on"] = False  # this write only: the disk has room again after it
            raise OSError(28, "No space left on device")
        original(self, text)

    monkeypatch.setattr(AtomicJSONStorage, "_write", full_disk)
    go_on = blocked_writer(store)

    async def two_polls() -> list[BaseException | int]:
        first = asyncio.create_task(store.record(poll_commit(store, "talks", "t1")))
        await asyncio.sleep(0)
        second = asyncio.create_task(store.record(poll_commit(store, "talks", "t2")))
        await asyncio.sleep(0)
        go_on.set()
        return await asyncio.gather(first, second, return_exceptions=True)

    first, second = asyncio.run(two_polls())
    assert isinstance(first, StoreError) and "No space left on device" in str(first)
    assert isinstance(second, StoreError) and "an earlier write of it failed" in str(second)
    assert store.pending("hook") == [] and store.feed_state("talks").etag == "first"
    assert store.seen_keys("talks") == frozenset()
    asyncio.run(store.record(poll_commit(store, "talks", "t3")))
    store.close()
    assert on_disk(tmp_path / "state.json") == ({"guid:t3"}, ["talks-t3"])


def test_a_delivery_is_written_in_the_writer_thread_too(tmp_path):
    store = Store(tmp_path / "state.json")
    record(store, "talks", deliveries=[delivery("talks", "t0")])
    go_on = blocked_writer(store)

    async def scenario() -> None:
        writing = asyncio.create_task(store.delivered_async("talks-t0"))
        await asyncio.sleep(0)
        assert [e.id for e in store.pending("hook")] == ["talks-t0"], "gone before written"
        go_on.set()
        await writing

    asyncio.run(scenario())
    assert store.pending("hook") == []
    store.close()
    assert on_disk(tmp_path / "state.json") == (set(), [])


def test_closing_the_store_waits_for_the_writes_in_hand(tmp_path):
    store = Store(tmp_path / "state.json")
    record(store, "talks", etag="first")
    go_on = blocked_writer(store)

    async def hand_over() -> None:
        task = asyncio.create_task(store.record(poll_commit(store, "talks", "t1")))
        await asyncio.sleep(0)
        task.cancel()  # a poll stopped by a shutdown: its write is still made
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(hand_over())
    threading.Timer(0.05, go_on.set).start()
    store.close()
    assert on_disk(tmp_path / "state.json") == ({"guid:t1"}, ["talks-t1"])


def test_an_alert_queued_while_a_poll_is_written_keeps_the_polls_state(tmp_path):
    """An alert for a feed (its state unchanged) queued while that feed's poll is being
    written: the file keeps the poll's state, not the older one in memory meanwhile."""
    store = Store(tmp_path / "state.json")
    record(store, "talks", etag="first")
    go_on = blocked_writer(store)

    async def scenario() -> None:
        writing = asyncio.create_task(store.record(poll_commit(store, "talks", "t1")))
        await asyncio.sleep(0)
        store.queue("talks", [delivery("talks", "alert", "alerts")])
        go_on.set()
        await writing

    asyncio.run(scenario())
    store.close()
    reopened = Store(tmp_path / "state.json")
    assert reopened.feed_state("talks").etag == "t1"
    assert [e.id for e in reopened.pending("alerts")] == ["talks-alert"]
    reopened.close()


def test_the_next_delivery_is_sent_while_the_last_ones_write_waits(tmp_path, httpserver):
    """A delivery sent is written off its queue in the writer thread while the next one is
    sent: waiting for each write before the next send held a destination to one delivery
    per write while a poll's writes filled the writer's queue. No more than
    MARKS_IN_FLIGHT are being written at once (those, and the one being sent, are all
    that can arrive twice after a crash); the pass ends once all are written, and all
    are off the queue, on disk too."""
    from tests.conftest import Recorder
    from tests.store_helpers import queue
    from watcher.clock import utcnow
    from watcher.config import DeliveryPolicy
    from watcher.deliver import MARKS_IN_FLIGHT, Deliverer
    from watcher.fetch import new_client
    from watcher.notifiers.webhook import WebhookNotifier

    hook = Recorder(httpserver, "/hook")
    store = Store(tmp_path / "state.json")
    guids = [f"t{n}" for n in range(MARKS_IN_FLIGHT + 2)]
    queue(store, *(("talks", guid) for guid in guids))
    go_on = blocked_writer(store)
    most = MARKS_IN_FLIGHT + 1  # sent with every write waiting: the last waits for the first

    async def scenario() -> tuple[int, bool]:
        async with new_client(5) as client:
            notifier = WebhookNotifier("hook", {"url": hook.url, "timeout": 5.0, "secret": None})
            deliverer = Deliverer(
                store, {"hook": notifier}, {"hook": DeliveryPolicy()}, client, utcnow
            )
            draining = asyncio.create_task(deliverer.drain())

            def held() -> bool:  # sent `most`, and waiting for the first one's write
                marking = getattr(deliverer, "_marking", {})
                waiting = len(marking.get("hook", [])) == MARKS_IN_FLIGHT
                return len(hook.received) == most and waiting

            try:
                async with asyncio.timeout(5):
                    while len(hook.received) <= most and not held() and not draining.done():
                        await asyncio.sleep(0.01)
            except TimeoutError:
                pass  # fewer were sent: said below
            finally:
                sent_while_blocked = len(hook.received)
                ended_before_written = draining.done()
                go_on.set()
            result = await draining
            assert result.sent == len(guids)
            return sent_while_blocked, ended_before_written

    sent_while_blocked, ended_before_written = asyncio.run(scenario())
    assert sent_while_blocked >= 2, "the second waited for the first one's write"
    assert sent_while_blocked == most, f"{sent_while_blocked} sent, {most - 1} being written"
    assert not ended_before_written, "the pass ended before its writes were done"
    assert [t["talk"]["guid"] for t in hook.received] == guids
    assert store.pending("hook") == []
    store.close()
    assert on_disk(tmp_path / "state.json") == (set(), [])
