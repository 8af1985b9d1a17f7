"""Polls and deliveries report what happened to their observers: the seam that metrics,
a status page and alerts subscribe to. Counted against a real feed host and receiver."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.conftest import FeedHost, Recorder, add_talk, write_config
from watcher.app import Watcher
from watcher.clock import utcnow
from watcher.config import load_config
from watcher.events import DeliveryEvent, Observers, PollEvent
from watcher.fetch import new_client
from watcher.store import Store

NEW = ("EvEnTtAlK01", "Observed | Someone | Conf", "Sat, 13 Jun 2026 00:00:00 +0000")


def test_every_poll_and_delivery_attempt_is_one_event(tmp_path, httpserver):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    missing = httpserver.url_for("/missing.xml")
    httpserver.expect_request("/missing.xml").respond_with_data("no", status=404)
    path = write_config(
        tmp_path,
        f'[watcher]\nstate = "{tmp_path / "state.json"}"\n\n[[feeds]]\nname = "talks"\n'
        f'url = "{feed.url}"\n'
        f'\n[[feeds]]\nname = "missing"\nurl = "{missing}"\n'
        f'\n[[destinations]]\nname = "hook"\ntype = "webhook"\nurl = "{hook.url}"\n',
    )
    config = load_config(path)
    events: list = []
    observers = Observers()
    observers.subscribe(events.append)
    observers.subscribe(lambda event: 1 / 0)  # a broken observer breaks nothing
    clock = {"now": utcnow()}

    async def cycle() -> None:
        store = Store(config.state)
        try:
            async with new_client(5) as client:
                watcher = Watcher(config, store, client, lambda: clock["now"], observers)
                await watcher.poll_all(config.feeds)
                await watcher.drain()
        finally:
            store.close()

    asyncio.run(cycle())  # the baseline, and a 404
    asyncio.run(cycle())  # a 304
    feed.set_body(add_talk(feed.body, *NEW))
    hook.statuses = [500]
    asyncio.run(cycle())  # one new talk, refused once
    clock["now"] += timedelta(hours=2)
    asyncio.run(cycle())  # a 304, and the talk delivered

    polls = [(e.feed, e.outcome, e.new_talks) for e in events if isinstance(e, PollEvent)]
    assert sorted(polls) == sorted(
        [
            ("talks", "changed", 0),
            ("missing", "failed", 0),
            ("talks", "not_modified", 0),
            ("missing", "failed", 0),
            ("talks", "changed", 1),
            ("missing", "failed", 0),
            ("talks", "not_modified", 0),
            ("missing", "failed", 0),
        ]
    )
    failed = [e for e in events if isinstance(e, PollEvent) and e.outcome == "failed"]
    assert all(e.error and e.error.startswith("HTTP 404") for e in failed)
    assert all(e.seconds >= 0 for e in events if isinstance(e, PollEvent))
    deliveries = [
        (e.destination, e.guid, e.outcome) for e in events if isinstance(e, DeliveryEvent)
    ]
    guid = hook.received[0]["talk"]["guid"]
    assert deliveries == [("hook", guid, "retried"), ("hook", guid, "sent")]
    retried = next(e for e in events if isinstance(e, DeliveryEvent) and e.outcome == "retried")
    assert retried.error and retried.error.startswith("HTTP 500")
