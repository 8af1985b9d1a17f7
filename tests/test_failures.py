"""A broken feed or a failing endpoint is reported in one line, loses nothing,
and never stops the other feeds or destinations."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import timedelta

from werkzeug import Response

from tests.conftest import (
    FeedHost,
    Recorder,
    add_talk,
    destination_status,
    free_port,
    one_feed,
    run_status,
    watcher_command,
    webhook_table,
    write_config,
)
from watcher.app import Watcher
from watcher.clock import utcnow
from watcher.config import load_config
from watcher.fetch import new_client
from watcher.store import Store

NEW = ("NeWtAlK0001", "A new talk | Someone | Somewhere", "Wed, 10 Jun 2026 00:00:00 +0000")


def two_feed_config(
    good_url: str, bad_url: str, hook: Recorder, other: Recorder, timeout: str = "5s"
) -> str:
    return f"""
[watcher]
state = "state.json"
timeout = "{timeout}"

[[feeds]]
name = "good"
url = "{good_url}"

[[feeds]]
name = "broken"
url = "{bad_url}"

[[destinations]]
name = "hook"
type = "webhook"
url = "{hook.url}"

[[destinations]]
name = "other"
type = "webhook"
url = "{other.url}"
"""


def poll(tmp_path, *extra):
    return watcher_command("poll", "--config", "watcher.toml", *extra, cwd=tmp_path)


def test_broken_feeds_fail_alone_with_a_one_line_reason(tmp_path, httpserver):
    good = FeedHost(httpserver, "/good.xml")
    html = FeedHost(httpserver, "/html.xml")
    hook, other = Recorder(httpserver, "/hook"), Recorder(httpserver, "/other")
    write_config(tmp_path, two_feed_config(good.url, html.url, hook, other))
    assert poll(tmp_path).returncode == 0

    good.set_body(add_talk(good.body, *NEW))
    html.set_body(b"<!DOCTYPE html><html><body>Maintenance</body></html>")
    result = poll(tmp_path)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and errors[0].endswith(
        "feed broken: not a feed: got an HTML page that advertises no RSS or Atom feed"
    )
    assert [p["talk"]["video_id"] for p in hook.received] == [NEW[0]]
    assert [p["talk"]["video_id"] for p in other.received] == [NEW[0]]

    html.status = 503
    result = poll(tmp_path, "--feed", "broken")
    assert result.returncode == 1 and "feed broken: HTTP 503" in result.stderr
    feeds = {f["name"]: f for f in run_status(tmp_path)["feeds"]}
    assert feeds["broken"]["consecutive_failures"] == 2
    assert feeds["broken"]["last_error"].startswith("HTTP 503")
    assert feeds["good"]["last_error"] is None and feeds["good"]["talks_seen"] == 4


def test_unreachable_and_slow_feeds(tmp_path, httpserver):
    good = FeedHost(httpserver, "/good.xml")
    hook, other = Recorder(httpserver, "/hook"), Recorder(httpserver, "/other")
    dead_url = f"http://127.0.0.1:{free_port()}/feed.xml"
    write_config(tmp_path, two_feed_config(good.url, dead_url, hook, other))
    result = poll(tmp_path)
    assert result.returncode == 1
    assert "feed broken: connection failed" in result.stderr
    assert "feed good: first poll" in result.stderr

    def slow(request):
        time.sleep(3)
        return "too late"

    httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    write_config(
        tmp_path,
        two_feed_config(good.url, httpserver.url_for("/slow.xml"), hook, other, timeout="1s"),
    )
    started = time.monotonic()
    result = poll(tmp_path, "--feed", "broken")
    assert result.returncode == 1 and "feed broken: timed out after 1s" in result.stderr
    assert time.monotonic() - started < 30


def test_failing_destination_keeps_its_delivery_and_others_get_theirs(tmp_path, httpserver):
    good = FeedHost(httpserver, "/good.xml")
    gone = FeedHost(httpserver, "/gone.xml")
    hook, other = Recorder(httpserver, "/hook"), Recorder(httpserver, "/other")
    config_path = write_config(tmp_path, two_feed_config(good.url, gone.url, hook, other))
    assert poll(tmp_path).returncode == 0

    good.set_body(add_talk(good.body, *NEW))
    hook.statuses = [500]
    result = poll(tmp_path, "--feed", "good")
    assert result.returncode == 0, result.stderr
    assert "destination hook" in result.stderr and "HTTP 500" in result.stderr
    assert hook.received == [] and len(other.received) == 1
    destinations = {d["name"]: d for d in run_status(tmp_path)["destinations"]}
    assert destinations["hook"]["queued"] == 1 and destinations["hook"]["retrying"] == 1
    assert destinations["other"]["queued"] == 0

    # Its retry is due later; a watcher whose clock has moved on delivers it, once.
    config = load_config(config_path)
    config = dataclasses.replace(config, state=tmp_path / "state.json")

    async def drain_later():
        store = Store(config.state)
        try:
            async with new_client(5) as client:
                later = Watcher(config, store, client, lambda: utcnow() + timedelta(hours=2))
                return await later.drain()
        finally:
            store.close()

    result = asyncio.run(drain_later())
    assert result.sent == 1
    assert [p["talk"]["video_id"] for p in hook.received] == [NEW[0]]
    assert hook.headers[0]["Webhook-Id"] == hook.received[0]["id"] != other.received[0]["id"]
    assert len(other.received) == 1
    assert run_status(tmp_path)["destinations"][0]["queued"] == 0


def test_rejected_delivery_is_dead_lettered_not_lost(tmp_path, httpserver):
    good = FeedHost(httpserver, "/good.xml")
    gone = FeedHost(httpserver, "/gone.xml")
    hook, other = Recorder(httpserver, "/hook"), Recorder(httpserver, "/other")
    write_config(tmp_path, two_feed_config(good.url, gone.url, hook, other))
    assert poll(tmp_path).returncode == 0
    good.set_body(add_talk(good.body, *NEW))
    hook.statuses = [400]
    result = poll(tmp_path)
    assert result.returncode == 0
    assert "rejected, dead-lettered: HTTP 400 BAD REQUEST: nope" in result.stderr
    destinations = {d["name"]: d for d in run_status(tmp_path)["destinations"]}
    assert destinations["hook"]["dead_lettered"] == 1 and destinations["hook"]["queued"] == 0
    assert len(other.received) == 1


def test_smtp_server_down_is_retried_later(tmp_path, feed_host, webhook):
    mail_table = f"""
[[destinations]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = {free_port()}
from = "w@example.com"
to = ["t@example.com"]
"""
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            mail_table,
            webhook_table("hook", webhook.url),
            feed="notify_existing = 1",
        ),
    )
    result = poll(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "destination mail" in result.stderr and "SMTP connection failed" in result.stderr
    assert len(webhook.received) == 1
    mail = destination_status(tmp_path, "mail")
    assert mail["queued"] == 1 and mail["next_attempt"]


def test_test_notify_tries_one_destination(tmp_path, httpserver):
    good = FeedHost(httpserver, "/good.xml")
    hook, other = Recorder(httpserver, "/hook"), Recorder(httpserver, "/other")
    write_config(tmp_path, two_feed_config(good.url, good.url + "?2", hook, other))
    result = watcher_command("test-notify", "hook", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p["talk"]["title"] for p in hook.received] == ["watcher test message"]
    assert other.received == [] and not (tmp_path / "state.json").exists()
    other.statuses = [404]
    result = watcher_command("test-notify", "other", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("HTTP 404 NOT FOUND: nope")
    assert "/other" not in result.stderr


def test_a_feed_slower_than_ten_seconds_within_its_timeout_is_read(tmp_path, httpserver):
    """`timeout = "20s"` is the feed's: a server that thinks for 11 s before it answers is
    slow, not down (each read used to be cut at 10 s whatever the setting)."""
    body = FeedHost(httpserver, "/unused.xml").body
    answered = threading.Event()

    def thinking(request):
        time.sleep(11)
        answered.set()
        return Response(body, content_type="application/rss+xml")

    httpserver.expect_request("/thinking.xml").respond_with_handler(thinking)
    hook, other = Recorder(httpserver, "/hook"), Recorder(httpserver, "/other")
    good = FeedHost(httpserver, "/good.xml")
    write_config(
        tmp_path,
        two_feed_config(good.url, httpserver.url_for("/thinking.xml"), hook, other, "20s"),
    )
    result = poll(tmp_path, "--feed", "broken")
    assert answered.is_set()
    assert result.returncode == 0, result.stderr
    assert "feed broken: first poll, 3 talks recorded as seen" in result.stderr
