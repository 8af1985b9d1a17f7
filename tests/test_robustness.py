"""Edges where a talk could be lost or doubled, or the process could fall over."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from werkzeug import Response

from tests.conftest import (
    FeedHost,
    Inbox,
    Recorder,
    add_talk,
    destination_status,
    feed_status,
    free_port,
    watcher_command,
    write_config,
)
from tests.conftest import one_feed as config
from tests.conftest import webhook_table as hook
from tests.store_helpers import delivery, queue, record
from watcher.app import Watcher
from watcher.clock import iso, utcnow
from watcher.config import DeliveryPolicy, load_config
from watcher.deliver import Deliverer
from watcher.fetch import new_client
from watcher.notifiers.webhook import WebhookNotifier
from watcher.store import AtomicJSONStorage, Store

NEW = ("RoBuSt00001", "Robust | Someone | Conf", "Sat, 13 Jun 2026 00:00:00 +0000")


def poll(tmp_path, *args):
    return watcher_command("poll", "--config", "watcher.toml", *args, cwd=tmp_path)


def test_a_redirecting_webhook_is_never_taken_for_a_delivery(tmp_path, feed_host, httpserver):
    landing = Recorder(httpserver, "/landing")
    httpserver.expect_request("/moved", method="POST").respond_with_data(
        "", status=302, headers={"Location": httpserver.url_for("/landing")}
    )
    httpserver.expect_request("/landing", method="GET").respond_with_data("welcome")
    write_config(
        tmp_path,
        config(
            feed_host.url, hook("hook", httpserver.url_for("/moved")), feed="notify_existing = 1"
        ),
    )
    result = poll(tmp_path)
    assert result.returncode == 0
    state = destination_status(tmp_path, "hook")
    assert state["dead_lettered"] == 1
    assert "HTTP 302 redirect" in state["last_error"] and landing.received == []
    assert [entry[0].path for entry in httpserver.log] == ["/feed.xml", "/moved"]


def test_notify_existing_larger_than_the_feed_announces_all(tmp_path, feed_host, webhook):
    write_config(
        tmp_path, config(feed_host.url, hook("hook", webhook.url), feed="notify_existing = 5")
    )
    poll(tmp_path)
    assert len(webhook.received) == 3


def test_a_backlog_older_than_give_up_after_survives_one_failure(tmp_path, webhook):
    """A delivery queued long ago (the endpoint was down all weekend) gets its full
    give-up period from its first failure."""
    store = Store(tmp_path / "state.json")
    old = iso(utcnow() - timedelta(hours=25))
    deliveries = [delivery("talks", f"g{n}", id=f"x{n}", created=old) for n in range(3)]
    record(store, "talks", deliveries=deliveries)
    webhook.statuses = [503]

    async def drain():
        async with new_client(5) as client:
            notifier = WebhookNotifier("hook", {"url": webhook.url, "timeout": 5.0, "secret": None})
            deliverer = Deliverer(
                store, {"hook": notifier}, {"hook": DeliveryPolicy()}, client, utcnow
            )
            return await deliverer.drain()

    result = asyncio.run(drain())
    # x0 failed once and steps aside (the endpoint took x1 and x2): it is kept, not dead.
    assert (result.sent, result.failed, result.dead) == (2, 1, 0)
    rows = store.pending("hook")
    assert [(r.id, r.attempts, r.dead) for r in rows] == [("x0", 1, False)]
    store.close()


def test_an_unexpected_notifier_error_keeps_the_delivery_queued(tmp_path):
    store = Store(tmp_path / "state.json")
    queue(store, ("talks", "g"), destination="broken", created=iso(utcnow()))

    class Broken:
        async def send(self, delivery, client):
            raise KeyError("a bug in a notifier")

    async def drain():
        async with new_client(5) as client:
            return await Deliverer(
                store, {"broken": Broken()}, {"broken": DeliveryPolicy()}, client, utcnow
            ).drain()

    result = asyncio.run(drain())
    assert result.failed == 1 and result.errors == [
        "broken: unexpected KeyError: 'a bug in a notifier'"
    ]
    assert store.pending("broken")[0].attempts == 1
    store.close()


class RudeQuit(SMTP):
    async def smtp_QUIT(self, arg):
        await self.push("421 going away")
        self.transport.close()


class RudeController(Controller):
    def factory(self):
        return RudeQuit(self.handler)


def test_mail_accepted_before_a_rude_quit_counts_as_delivered(tmp_path, feed_host):
    inbox = Inbox()
    port = free_port()
    controller = RudeController(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        write_config(
            tmp_path,
            config(
                feed_host.url,
                f"""
[[destinations]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = {port}
from = "w@example.com"
to = ["t@example.com"]
""",
                feed="notify_existing = 1",
            ),
        )
        result = poll(tmp_path)
        assert result.returncode == 0, result.stderr
        assert len(inbox.messages) == 1
        assert destination_status(tmp_path, "mail")["queued"] == 0
    finally:
        controller.stop()


def test_the_state_of_a_poll_is_one_write_holding_seen_and_queued(
    tmp_path, feed_host, webhook, monkeypatch
):
    path = write_config(tmp_path, config(feed_host.url, hook("hook", webhook.url)))
    cfg = load_config(path)
    cfg = dataclasses.replace(cfg, state=tmp_path / "state.json")
    writes: list[dict] = []
    original = AtomicJSONStorage.persist  # every write comes here, in the writer thread or not
    monkeypatch.setattr(
        AtomicJSONStorage,
        "persist",
        lambda self, text, *version: (
            writes.append(json.loads(text)) or original(self, text, *version)
        ),
    )

    async def poll_once():
        store = Store(cfg.state)
        try:
            async with new_client(5) as client:
                await Watcher(cfg, store, client, utcnow).poll(cfg.feeds[0])
        finally:
            store.close()

    asyncio.run(poll_once())
    feed_host.set_body(add_talk(feed_host.body, *NEW))
    writes.clear()
    asyncio.run(poll_once())
    guid = f"https://blog.randomdomain.co.za/youtube/{NEW[0].lower()}/"
    for data in writes:
        seen = {row["guid"] for row in data.get("seen", {}).values()}
        queued = {row["talk"]["guid"] for row in data.get("outbox", {}).values()}
        assert (guid in seen) == (guid in queued), "seen and queued land together"
    assert any(guid in {r["guid"] for r in d.get("seen", {}).values()} for d in writes)


def test_an_unchanged_body_without_validators_is_not_parsed_again(tmp_path, httpserver, webhook):
    body = FeedHost(httpserver).body
    httpserver.clear()
    httpserver.expect_request("/plain.xml").respond_with_data(
        body, content_type="application/rss+xml"
    )
    write_config(tmp_path, config(httpserver.url_for("/plain.xml"), hook("hook", webhook.url)))
    poll(tmp_path)
    result = watcher_command("-v", "poll", "--config", "watcher.toml", cwd=tmp_path)
    assert "feed talks: unchanged" in result.stderr


def test_a_feed_that_breaks_the_fetcher_fails_alone(tmp_path, httpserver, webhook):
    good = FeedHost(httpserver, "/good.xml")
    httpserver.expect_request("/bad.xml").respond_with_data(
        b"this is not gzip", headers={"Content-Encoding": "gzip"}
    )
    write_config(
        tmp_path,
        config(good.url, hook("hook", webhook.url)).replace(
            "[[destinations]]",
            f'[[feeds]]\nname = "bad"\nurl = "{httpserver.url_for("/bad.xml")}"'
            "\n\n[[destinations]]",
            1,
        ),
    )
    result = poll(tmp_path)
    assert result.returncode == 1
    assert "feed talks: first poll" in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "feed bad:" in line]
    assert len(errors) == 1 and " ERROR feed bad: bad gzip body: " in errors[0], errors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('url = "http://127.0.0.1:9/feed"', 'url = "http://[::1/feed"'), "feeds[0].url: not a"),
        (('type = "webhook"', 'type = ["console"]'), "destinations[0].type: unknown destination"),
    ],
)
def test_odd_config_values_are_config_errors(tmp_path, change, message):
    write_config(
        tmp_path,
        config("http://127.0.0.1:9/feed", hook("hook", "http://127.0.0.1:9/h")).replace(*change),
    )
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "content",
    [
        '{"meta": []}',
        '{"meta": {"1": {"schema_version": 1, "next_seq": 1}}, "seen": {"1": {}}}',
        '{"meta": {"1": {"schema_version": 1, "next_seq": 1}}, "feeds": []}',
        "[1, 2]",
    ],
)
def test_a_state_file_of_the_wrong_shape_is_refused(tmp_path, content):
    write_config(tmp_path, config("http://127.0.0.1:9/feed", hook("hook", "http://127.0.0.1:9/h")))
    (tmp_path / "state.json").write_text(content)
    for command in ("poll", "status"):
        result = watcher_command(command, "--config", "watcher.toml", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "state.json: the state file is damaged or not a watcher state file" in result.stderr


def test_check_config_hides_feed_credentials(tmp_path):
    write_config(
        tmp_path,
        config(
            "https://bot:s3cr3t@feeds.example/f.xml?key=t0ken", hook("hook", "http://127.0.0.1:9/h")
        ),
    )
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0
    assert "s3cr3t" not in result.stdout and "t0ken" not in result.stdout
    assert "https://bot:***@feeds.example/f.xml?key=***" in result.stdout


def test_another_state_files_temporary_files_are_left_alone(tmp_path, feed_host, webhook):
    write_config(tmp_path, config(feed_host.url, hook("hook", webhook.url)))
    other = tmp_path / ".other.json.tmp-in-progress"
    other.write_text("{")
    poll(tmp_path)
    assert other.exists()


def test_sigterm_lets_a_delivery_in_flight_finish(
    tmp_path, feed_host, daemons, threaded_httpserver
):
    server = threaded_httpserver
    received = threading.Event()

    def slow(request):
        received.set()
        time.sleep(2)
        return Response("ok")

    server.expect_request("/slow", method="POST").respond_with_handler(slow)
    write_config(
        tmp_path,
        config(feed_host.url, hook("slow", server.url_for("/slow")), feed="notify_existing = 1"),
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(received.is_set, "the delivery to start")
    assert daemon.stop() == 0
    assert "delivered" in daemon.stderr and "Traceback" not in daemon.stderr
    assert destination_status(tmp_path, "slow")["queued"] == 0


def _config_in(tmp_path, feed_host, webhook):
    cfg = load_config(write_config(tmp_path, config(feed_host.url, hook("hook", webhook.url))))
    return dataclasses.replace(cfg, state=tmp_path / "state.json")  # relative to the cwd


def _poll_and_drain(cfg):
    async def run():
        store = Store(cfg.state)
        try:
            async with new_client(5) as client:
                watcher = Watcher(cfg, store, client, utcnow)
                result = await watcher.poll(cfg.feeds[0])
                await watcher.drain()
                return result, store.pending("hook"), store.load("talks").seen_keys
        finally:
            store.close()

    return asyncio.run(run())


def test_a_new_talk_that_cannot_be_read_in_full_is_read_again_next_poll(
    tmp_path, feed_host, webhook, monkeypatch
):
    """The feed's ETag and hash are not kept, so the same body is fetched and read again:
    the talk is announced once it can be read, not lost behind "unchanged"."""
    import watcher.skim

    cfg = _config_in(tmp_path, feed_host, webhook)
    _poll_and_drain(cfg)
    feed_host.set_body(add_talk(feed_host.body, *NEW))
    real_talks = watcher.skim.FeedRead.talks
    monkeypatch.setattr(watcher.skim.FeedRead, "talks", lambda self, guids: [])
    result, pending, seen = _poll_and_drain(cfg)
    assert result.ok and result.announced == 0 and webhook.received == []
    assert not any(NEW[0].lower() in key for key in seen), "not marked seen unread"
    report = watcher_command("status", "--config", "watcher.toml", "--json", cwd=tmp_path)
    assert "could not be read in full" in json.loads(report.stdout)["feeds"][0]["last_error"]
    monkeypatch.setattr(watcher.skim.FeedRead, "talks", real_talks)
    result, pending, _ = _poll_and_drain(cfg)
    assert result.announced == 1 and pending == []
    assert [p["talk"]["video_id"] for p in webhook.received] == [NEW[0]]
    _poll_and_drain(cfg)
    assert len(webhook.received) == 1


def test_a_poll_that_cannot_be_written_keeps_nothing_and_is_done_again(
    tmp_path, feed_host, webhook, monkeypatch
):
    """A full disk: the poll fails in one line, nothing of it stays in memory to be
    delivered, and the next poll records and announces the talk once."""
    cfg = _config_in(tmp_path, feed_host, webhook)
    _poll_and_drain(cfg)
    feed_host.set_body(add_talk(feed_host.body, *NEW))
    original = AtomicJSONStorage._write  # every write comes here, in the writer thread or not

    def full_disk(self, text):
        if ".feeds" in str(self.path.parent):
            raise OSError(28, "No space left on device")
        original(self, text)

    monkeypatch.setattr(AtomicJSONStorage, "_write", full_disk)
    result, pending, seen = _poll_and_drain(cfg)
    assert not result.ok and "No space left on device" in result.error
    assert pending == [] and not any(NEW[0].lower() in key for key in seen)
    assert webhook.received == []
    monkeypatch.setattr(AtomicJSONStorage, "_write", original)
    result, _, _ = _poll_and_drain(cfg)
    assert result.announced == 1
    assert [p["talk"]["video_id"] for p in webhook.received] == [NEW[0]]


def test_a_304_poll_writes_no_feed_file(tmp_path, feed_host, webhook):
    cfg = _config_in(tmp_path, feed_host, webhook)
    _poll_and_drain(cfg)
    [feed_file] = (tmp_path / "state.json.feeds").glob("*.json")
    before = feed_file.stat().st_mtime_ns, feed_file.read_bytes()
    first_poll = _last_poll(tmp_path)
    result, _, _ = _poll_and_drain(cfg)
    assert result.ok and feed_host.responses[-1] == 304
    assert (feed_file.stat().st_mtime_ns, feed_file.read_bytes()) == before
    assert _last_poll(tmp_path) > first_poll, "the poll's time is still recorded"


def _last_poll(tmp_path) -> str:
    return feed_status(tmp_path)["last_poll"]
