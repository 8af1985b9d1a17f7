"""Digests: a destination's talks wait and go out together, as one message, at the
digest's times: through a real daemon, and with a clock moved past a digest missed
while no watcher ran; the digest's id is stable across a retry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug import Request, Response

from tests.conftest import (
    FeedHost,
    Recorder,
    add_talk,
    watcher_command,
    webhook_table,
    write_config,
)
from tests.store_helpers import queue, talk
from watcher.config import DeliveryPolicy
from watcher.deliver import Deliverer
from watcher.digest import digest_schedule
from watcher.fetch import new_client
from watcher.notifiers.base import Digest, DigestItem
from watcher.notifiers.slack import render_digest as slack_digest
from watcher.notifiers.webhook import WebhookNotifier
from watcher.store import Store

NEW = ("DiGeStTaLk1", "Digested | Someone | Conf", "Sat, 13 Jun 2026 00:00:00 +0000")


def test_the_daemon_sends_one_digest_per_time(tmp_path, httpserver, daemons):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    write_config(
        tmp_path,
        '[watcher]\nstate = "state.json"\n\n[[feeds]]\nname = "talks"\n'
        f'url = "{feed.url}"\ninterval = "0.5s"\nnotify_existing = 3\n\n'
        + webhook_table("hook", hook.url, 'digest = "2s"'),
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: len(hook.received) == 1, "the first digest")
    [first] = hook.received
    assert first["type"] == "talk.digest" and len(first["talks"]) == 3
    assert hook.headers[0]["Webhook-Id"] == first["id"]
    feed.set_body(add_talk(feed.body, *NEW))
    daemon.wait_for(lambda: len(hook.received) == 2, "the next digest")
    assert [item["talk"]["title"] for item in hook.received[1]["talks"]] == ["Digested"]
    assert daemon.stop() == 0
    assert len(hook.received) == 2, "nothing was sent on its own"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_digest_missed_while_down_goes_out_whole_and_keeps_its_id(tmp_path, httpserver):
    bodies: list[dict] = []
    answers = [503]

    def handle(request: Request) -> Response:
        bodies.append(json.loads(request.get_data()))
        return Response("no" if answers else "ok", status=answers.pop(0) if answers else 200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handle)
    store = Store(tmp_path / "state.json")
    queued_at = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    queue(store, ("a", "t1"), ("b", "t2"), created=queued_at.isoformat().replace("+00:00", "Z"))
    clock = Clock(queued_at + timedelta(minutes=30))
    policy = DeliveryPolicy(digest=digest_schedule("0 9 * * MON", "Europe/London", "d"))
    url = httpserver.url_for("/hook")

    def drain() -> None:
        async def run() -> None:
            async with new_client(5) as client:
                notifier = WebhookNotifier("hook", {"url": url, "timeout": 5.0, "secret": None})
                await Deliverer(store, {"hook": notifier}, {"hook": policy}, client, clock).drain()

        asyncio.run(run())

    drain()
    assert bodies == [], "before Monday 9:00 London: not due"
    clock.now = datetime(2026, 6, 8, 12, 0, tzinfo=UTC)  # the digest was due while no one ran
    drain()
    assert len(bodies) == 1 and all(entry.attempts == 1 for entry in store.pending("hook"))
    clock.now += timedelta(hours=2)
    drain()
    refused, accepted = bodies
    assert accepted["type"] == "talk.digest" and accepted["id"] == refused["id"], "stable id"
    assert [item["id"] for item in accepted["talks"]] == ["a-t1", "b-t2"], "whole, in order"
    assert store.pending("hook") == []
    store.close()


def test_a_digests_id_is_the_same_for_the_same_talks():
    from watcher.digest import digest_id

    assert (
        digest_id("hook", ["b", "a"]) == digest_id("hook", ["a", "b"]) != digest_id("hook", ["a"])
    )


def test_a_slack_digest_groups_by_event_and_splits_at_50_blocks():
    items = tuple(DigestItem(f"d{n}", "f", talk(f"g{n}", f"Talk {n}")) for n in range(60))
    messages = slack_digest(Digest("id", "team", items))
    assert len(messages) == 2 and all(len(m["blocks"]) <= 50 for m in messages)
    assert messages[0]["blocks"][0]["text"]["text"] == "60 new talks"
    assert sum(len(m["blocks"]) - 1 for m in messages) == 60


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        ('digest = "0 25 * * *"', "destinations[0].digest: bad crontab expression '0 25 * * *'"),
        (
            'digest = "1h"\ntimezone = "Mars/Olympus"',
            "destinations[0].timezone: unknown time zone 'Mars/Olympus'",
        ),
        ('timezone = "UTC"', "destinations[0].timezone: only a digest has a time zone"),
        ('digest = "10x"', "destinations[0].digest: bad duration '10x'"),
    ],
)
def test_a_bad_digest_is_a_config_error_naming_the_key(tmp_path, keys, error):
    write_config(
        tmp_path,
        '[[feeds]]\nname = "t"\nurl = "f.xml"\n'
        + webhook_table("hook", "http://127.0.0.1:9/", keys),
    )
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2 and error in result.stderr, result.stderr
