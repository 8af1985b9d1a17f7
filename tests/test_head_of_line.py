"""One failing delivery never holds up the rest, and a destination that is down is backed
off as a whole: a real receiver on 127.0.0.1, a real Deliverer over a real store, and a
clock the test moves."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests import store_helpers
from tests.conftest import free_port
from watcher.clock import iso, utcnow
from watcher.config import DeliveryPolicy
from watcher.deliver import Deliverer
from watcher.fetch import new_client
from watcher.notifiers.webhook import WebhookNotifier
from watcher.retry import PROBE_BASE, PROBE_CAP
from watcher.store import OutboxEntry, Store


class Receiver:
    """A webhook that answers `status(guid)` and records every talk it accepts."""

    def __init__(self, server: HTTPServer) -> None:
        self.accepted: list[str] = []
        self.refused: list[str] = []
        self.status = lambda guid: 200
        self.retry_after: str | None = None
        server.expect_request("/hook", method="POST").respond_with_handler(self._handle)
        self.url = server.url_for("/hook")

    def _handle(self, request: Request) -> Response:
        guid = json.loads(request.get_data())["talk"]["guid"]
        status = self.status(guid)
        if status != 200:
            self.refused.append(guid)
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return Response("nope", status=status, headers=headers)
        self.accepted.append(guid)
        return Response("ok")


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def queue(store: Store, *talks: tuple[str, str]) -> None:
    """Queue talks (feed, guid) for the hook, in this order (publication order)."""
    store_helpers.queue(store, *talks, created=iso(utcnow()))


def drain(store: Store, receiver: Receiver, clock: Clock, deliverer_box: list) -> None:
    """One drain pass, with one Deliverer kept across passes (it remembers outages)."""

    async def run() -> None:
        async with new_client(5) as client:
            notifier = WebhookNotifier(
                "hook", {"url": receiver.url, "timeout": 5.0, "secret": None}
            )
            if not deliverer_box:
                policy = {"hook": DeliveryPolicy()}
                deliverer_box.append(Deliverer(store, {"hook": notifier}, policy, client, clock))
            deliverer = deliverer_box[0]
            deliverer.client = client
            await deliverer.drain()

    asyncio.run(run())


def queued(store: Store) -> dict[str, OutboxEntry]:
    return {entry.id: entry for entry in store.pending("hook")}


def test_a_poison_message_steps_aside_and_is_delivered_once_healed(tmp_path, httpserver):
    receiver, clock, box = Receiver(httpserver), Clock(), []
    store = Store(tmp_path / "state.json")
    queue(store, ("A", "poison"), ("A", "later-in-A"), ("B", "in-B"))
    receiver.status = lambda guid: 500 if guid == "poison" else 200

    drain(store, receiver, clock, box)
    assert receiver.accepted == ["later-in-A", "in-B"], "the good talks go at once"
    assert list(queued(store)) == ["A-poison"]

    for _ in range(3):  # still poisoned: retried on its own schedule, alone
        clock.advance(2 * 3600)
        drain(store, receiver, clock, box)
    assert receiver.refused == ["poison"] * 4

    receiver.status = lambda guid: 200
    clock.advance(2 * 3600)
    drain(store, receiver, clock, box)
    assert receiver.accepted == ["later-in-A", "in-B", "poison"]
    assert queued(store) == {}
    store.close()


def test_a_destination_that_is_down_is_backed_off_whole_and_flows_in_order_after(
    tmp_path, httpserver
):
    receiver, clock, box = Receiver(httpserver), Clock(), []
    store = Store(tmp_path / "state.json")
    queue(store, ("A", "t1"), ("A", "t2"), ("B", "t3"), ("A", "t4"))
    receiver.status = lambda guid: 503

    drain(store, receiver, clock, box)
    assert receiver.refused == ["t1", "t2"], "two failures in a row: down; no hammering"
    rows = queued(store)
    probe = datetime.fromisoformat(rows["A-t1"].next_attempt)
    assert rows["A-t2"].next_attempt == rows["A-t1"].next_attempt
    assert (probe - clock.now).total_seconds() <= PROBE_CAP * 1.2
    drain(store, receiver, clock, box)
    assert receiver.refused == ["t1", "t2"], "backed off as a whole until the probe"

    for _ in range(20):  # a long outage: probes stay at most PROBE_CAP apart
        clock.advance(60)
        drain(store, receiver, clock, box)
    delay = datetime.fromisoformat(queued(store)["A-t1"].next_attempt) - clock.now
    assert delay.total_seconds() <= PROBE_CAP * 1.2

    receiver.status = lambda guid: 200
    clock.advance(PROBE_CAP * 1.2)
    drain(store, receiver, clock, box)
    assert receiver.accepted == ["t1", "t2", "t3", "t4"], "in order, at the first probe"
    store.close()


def test_retry_after_sets_the_probe_without_inflating_later_back_off(tmp_path, httpserver):
    """A dozen quick retries under `Retry-After: 1` must not make one plain 503 later push
    the next try out by most of an hour."""
    receiver, clock, box = Receiver(httpserver), Clock(), []
    store = Store(tmp_path / "state.json")
    queue(store, ("A", "t1"))
    receiver.status, receiver.retry_after = (lambda guid: 429), "120"
    drain(store, receiver, clock, box)
    wait = datetime.fromisoformat(queued(store)["A-t1"].next_attempt) - clock.now
    assert 119 <= wait.total_seconds() <= 121, "the server's Retry-After is honoured"

    receiver.retry_after = "1"
    for _ in range(12):
        clock.advance(121)
        drain(store, receiver, clock, box)
    receiver.status, receiver.retry_after = (lambda guid: 503), None
    clock.advance(121)
    drain(store, receiver, clock, box)
    row = queued(store)["A-t1"]
    assert row.attempts == 14
    wait = datetime.fromisoformat(row.next_attempt) - clock.now
    assert wait.total_seconds() <= PROBE_CAP * 1.2, f"next try {wait} away"
    store.close()


def test_a_destination_that_does_not_answer_is_down_at_its_first_failure(tmp_path):
    """Connection refused: no second delivery is tried, and the probe is seconds away."""
    receiver, clock, box = Receiver.__new__(Receiver), Clock(), []
    receiver.url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    store = Store(tmp_path / "state.json")
    queue(store, ("A", "t1"), ("A", "t2"))
    drain(store, receiver, clock, box)
    rows = queued(store)
    assert [rows["A-t1"].attempts, rows["A-t2"].attempts] == [1, 0]
    wait = datetime.fromisoformat(rows["A-t1"].next_attempt) - clock.now
    assert wait.total_seconds() <= PROBE_BASE * 1.2
    store.close()


def test_failures_in_a_row_across_passes_say_the_destination_is_down(tmp_path, httpserver):
    """Talks queued one at a time (a poll each, a pass each) that all fail: the second
    failure in a row backs the destination off, as two in one pass do; the third talk
    waits for the probe instead of hitting it again."""
    receiver, clock, box = Receiver(httpserver), Clock(), []
    store = Store(tmp_path / "state.json")
    receiver.status = lambda guid: 500
    queue(store, ("A", "t1"))
    drain(store, receiver, clock, box)
    assert receiver.refused == ["t1"]
    queue(store, ("B", "t2"))
    drain(store, receiver, clock, box)
    queue(store, ("C", "t3"))
    drain(store, receiver, clock, box)
    assert receiver.refused == ["t1", "t2"]
    rows = queued(store)
    assert rows["A-t1"].next_attempt == rows["B-t2"].next_attempt, "both wait for the probe"
    store.close()


def test_a_talk_dead_lettered_since_it_failed_counts_no_more_as_a_failure_in_a_row(
    tmp_path, httpserver
):
    """t1 fails, then is given up on (failing for a day); t2 failing once afterwards is
    one failure, not the second in a row: the destination is not backed off, t3 is tried."""
    receiver, clock, box = Receiver(httpserver), Clock(), []
    store = Store(tmp_path / "state.json")
    receiver.status = lambda guid: 500
    queue(store, ("A", "t1"))
    drain(store, receiver, clock, box)
    clock.advance(25 * 3600)  # its retry is due, and it has failed for a day: given up
    drain(store, receiver, clock, box)
    assert store.queued("A-t1").dead
    queue(store, ("B", "t2"))
    drain(store, receiver, clock, box)
    queue(store, ("C", "t3"))
    drain(store, receiver, clock, box)
    assert receiver.refused == ["t1", "t1", "t2", "t3"]
    store.close()
