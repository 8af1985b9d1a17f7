"""`[watcher] alerts`: trouble told to the alert destinations once, through the outbox,
by a real daemon against a real feed host and recording webhooks; and the rules
themselves (when a feed is quiet) as the pure functions they are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import FeedHost, Recorder, one_feed, webhook_table, write_config
from watcher.alerts import cadence, feed_alerts, span
from watcher.config import Config, FeedConfig
from watcher.notifiers.base import Alert, Delivery
from watcher.notifiers.console import render as console
from watcher.notifiers.slack import render as slack
from watcher.notifiers.webhook import render as webhook
from watcher.store import FeedState

ALERTS = 'alerts = ["ops"]\nalert_after = "1s"\nmax_backoff = "1s"\ninterval = "0.3s"'


def alerts_of(ops: Recorder) -> list[dict]:
    assert all(payload["type"] == "watcher.alert" for payload in ops.received)
    return [payload["alert"] for payload in ops.received]


def test_a_failing_feed_is_reported_once_and_its_recovery_once(tmp_path, httpserver, daemons):
    feed, hook, ops = (
        FeedHost(httpserver),
        Recorder(httpserver, "/hook"),
        Recorder(httpserver, "/ops"),
    )
    feed.status = 503
    tables = (webhook_table("hook", hook.url), webhook_table("ops", ops.url))
    write_config(tmp_path, one_feed(feed.url, *tables, watcher=ALERTS, feed='notify = ["hook"]'))
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: len(ops.received) == 1, "the failing alert")
    [failing] = alerts_of(ops)
    assert failing["kind"] == "feed_failing" and failing["subject"] == "talks"
    assert "feed talks has failed for" in failing["text"]
    assert failing["text"].endswith("HTTP 503 SERVICE UNAVAILABLE")
    polls = len(feed.requests)
    daemon.wait_for(lambda: len(feed.requests) >= polls + 3, "three more failed polls")
    assert len(ops.received) == 1, "reported once for the spell"
    feed.status = 200
    daemon.wait_for(lambda: len(ops.received) == 2, "the recovery alert")
    recovered = alerts_of(ops)[1]
    assert recovered["kind"] == "feed_recovered"
    assert recovered["text"].startswith("feed talks is read again after failing for")
    polls = len(feed.requests)
    daemon.wait_for(lambda: len(feed.requests) >= polls + 3, "three more polls")
    assert len(ops.received) == 2 and hook.received == []
    assert daemon.stop() == 0


def test_dead_letters_are_reported_to_the_other_alert_destinations_once(
    tmp_path, httpserver, daemons
):
    feed = FeedHost(httpserver)
    hook, ops = (
        Recorder(httpserver, "/hook", statuses=[400, 400, 400]),
        Recorder(httpserver, "/ops"),
    )
    tables = (webhook_table("hook", hook.url), webhook_table("ops", ops.url))
    settings = 'alerts = ["ops", "hook"]\ninterval = "1h"'
    body = one_feed(
        feed.url, *tables, watcher=settings, feed='notify = ["hook"]\nnotify_existing = 3'
    )
    write_config(tmp_path, body)
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: hook.statuses == [], "three rejections")
    daemon.wait_for(lambda: len(ops.received) == 1, "the dead-letter alert")
    daemon.wait_for(lambda: daemon.stderr.count("rejected, dead-lettered") == 3, "3 dead letters")
    [alert] = alerts_of(ops)
    assert alert["kind"] == "dead_letters" and alert["subject"] == "hook"
    assert "HTTP 400" in alert["text"] and "watcher redeliver hook" in alert["text"]
    assert hook.received == [], "not told of its own trouble"
    assert daemon.stop() == 0
    assert len(ops.received) == 1


def test_a_feed_that_went_quiet_is_reported_once(tmp_path, httpserver, daemons):
    weekly = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=7 * n) for n in range(5)]
    items = "".join(
        f"<item><title>Weekly {n}</title><link>https://e.test/{n}</link>"
        f"<pubDate>{day.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        for n, day in enumerate(weekly)
    )
    feed, hook, ops = (
        FeedHost(httpserver),
        Recorder(httpserver, "/hook"),
        Recorder(httpserver, "/ops"),
    )
    feed.body = f'<rss version="2.0"><channel><title>W</title>{items}</channel></rss>'.encode()
    tables = (webhook_table("hook", hook.url), webhook_table("ops", ops.url))
    write_config(tmp_path, one_feed(feed.url, *tables, watcher=ALERTS, feed='notify = ["hook"]'))
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: len(ops.received) == 1, "the quiet alert")
    [quiet] = alerts_of(ops)
    assert quiet["kind"] == "feed_quiet"
    assert "it usually brings one every 7d" in quiet["text"]
    polls = len(feed.requests)
    daemon.wait_for(lambda: len(feed.requests) >= polls + 3, "three more polls")
    assert len(ops.received) == 1
    assert daemon.stop() == 0


def config(quiet_after: float = 14 * 86400.0) -> Config:
    feed = FeedConfig("talks", "https://e.test/feed", 60, ("ops",), 0, ("guid",))
    return Config(
        path=None,  # type: ignore[arg-type]
        state=None,  # type: ignore[arg-type]
        interval=60,
        timeout=30,
        max_bytes=1,
        max_concurrency=1,
        max_per_host=1,
        retention=1,
        max_backoff=1,
        feeds=(feed,),
        destinations={},
        alerts=("ops",),
        quiet_after=quiet_after,
    )


def test_quiet_is_three_usual_gaps_and_at_least_quiet_after():
    now = datetime(2026, 3, 1, tzinfo=UTC)
    cfg = config()
    feed = cfg.feeds[0]
    daily = FeedState("talks", newest_talk="2026-02-20T00:00:00Z", median_gap=86400.0)
    assert feed_alerts(feed, cfg, daily, daily, now)[1] == [], "9 days: under quiet_after"
    state, [alert] = feed_alerts(feed, config(quiet_after=86400.0), daily, daily, now)
    assert state.alerted == "quiet" and "no new talk for 9d" in alert.text
    monthly = FeedState("talks", newest_talk="2026-01-10T00:00:00Z", median_gap=30 * 86400.0)
    assert feed_alerts(feed, cfg, monthly, monthly, now)[1] == [], "50 days: under 3 gaps"
    back = FeedState(
        "talks", newest_talk="2026-02-28T00:00:00Z", median_gap=86400.0, alerted="quiet"
    )
    assert feed_alerts(feed, config(quiet_after=86400.0), back, back, now)[0].alerted is None
    assert cadence(["2026-01-01T00:00:00Z", None, "2026-01-03T00:00:00Z"]) == (
        "2026-01-03T00:00:00.000000Z",
        None,
    ), "too few talks to tell"
    assert span(90061) == "1d 1h" and span(3660) == "1h 1m" and span(45) == "45s"


def test_alerts_are_escaped_for_each_destination():
    alert = Alert("feed_failing", "talks", "feed talks: HTTP 500 <!channel> \x1b[31m", "2026-01-01")
    delivery = Delivery("id", "talks", "ops", alert.as_talk(), alert)
    assert (
        "<!channel>" not in str(slack(delivery)) and "&lt;!channel&gt;" in slack(delivery)["text"]
    )
    assert "\x1b" not in console(delivery)
    assert webhook(delivery) == {"type": "watcher.alert", "id": "id", "alert": alert.to_dict()}
