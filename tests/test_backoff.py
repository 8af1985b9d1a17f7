"""A failing feed is polled less and less often, honours Retry-After, comes back to
its interval after a success, and a feed that is gone (410) is left alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tests.conftest import (
    console_table,
    feed_status,
    one_feed,
    run_status,
    watcher_command,
    write_config,
)
from watcher.backoff import backing_off, backoff_delay
from watcher.config import FeedConfig
from watcher.store import FeedState

SKIPPED_GONE = "feed talks: skipped: gone (HTTP 410)"  # logged with -v, each run it is not polled


def daemon_config(feed_url: str, interval: str = "0.3s") -> str:
    return one_feed(feed_url, console_table(), watcher=f'interval = "{interval}"')


def test_backoff_delay_doubles_to_the_cap_and_honours_retry_after():
    assert [backoff_delay(n, 60, 600, None) for n in (1, 2, 3, 4, 5, 9)] == [
        60,
        120,
        240,
        480,
        600,
        600,
    ]
    assert backoff_delay(1, 60, 21600, 3600) == 3600
    assert backoff_delay(1, 60, 600, 3600) == 600


def test_a_gone_feed_is_polled_again_once_its_url_changes():
    feed = FeedConfig("talks", "https://new.example/feed", 60, ("x",), 0, ("guid",))
    now = datetime.now(UTC)
    assert backing_off(feed, FeedState("talks", gone=True, gone_url=feed.url), now)
    old = FeedState("talks", gone=True, gone_url="https://old.example/feed")
    assert backing_off(feed, old, now) is None


def test_failing_feed_backs_off_then_returns_to_its_interval(tmp_path, feed_host, daemons):
    write_config(tmp_path, daemon_config(feed_host.url))
    feed_host.status = 503
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: len(feed_host.requests) >= 1, "the first poll")
    time.sleep(4.0)
    failing = len(feed_host.requests)
    # 0.3 s apart without back-off: ~14 polls; with it: 0, 0.3, 0.9, 2.1, (4.5) s.
    assert failing <= 6, failing
    report = feed_status(tmp_path)
    # The daemon polls on while status runs: each poll it answered is one failure in a row.
    assert failing <= report["consecutive_failures"] <= len(feed_host.requests)
    assert report["last_error"] == "HTTP 503 SERVICE UNAVAILABLE"
    feed_host.status = 200
    daemon.wait_for(lambda: 200 in feed_host.responses, "a success", timeout=30)
    recovered = len(feed_host.requests)
    daemon.wait_for(
        lambda: len(feed_host.requests) >= recovered + 4, "polls at the interval", timeout=5
    )
    assert daemon.stop() == 0


def test_retry_after_on_a_feed_sets_its_next_poll(tmp_path, httpserver):
    httpserver.expect_request("/busy.xml").respond_with_data(
        "busy", status=429, headers={"Retry-After": "3600"}
    )
    write_config(tmp_path, daemon_config(httpserver.url_for("/busy.xml"), interval="1m"))
    before = datetime.now(UTC)
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 1 and "HTTP 429" in result.stderr
    report = feed_status(tmp_path)
    wait = (datetime.fromisoformat(report["next_poll"]) - before).total_seconds()
    assert 3590 <= wait <= 3700


def test_a_gone_feed_stops_being_polled(tmp_path, httpserver, daemons):
    httpserver.expect_request("/gone.xml").respond_with_data("gone", status=410)
    write_config(tmp_path, daemon_config(httpserver.url_for("/gone.xml")))
    daemon = daemons(tmp_path, "-v", "--config", "watcher.toml")
    daemon.wait_for(lambda: "the feed is gone" in daemon.stderr, "the 410")
    daemon.wait_for(lambda: daemon.stderr.count(SKIPPED_GONE) >= 5, "five runs skipped")
    assert daemon.stop() == 0
    assert len(httpserver.log) == 1
    again = daemons(tmp_path, "-v", "--config", "watcher.toml")
    again.wait_for(lambda: again.stderr.count(SKIPPED_GONE) >= 3, "three runs skipped")
    assert again.stop() == 0
    assert len(httpserver.log) == 1
    report = feed_status(tmp_path)
    assert report["gone"] is True


def test_the_back_off_is_spread_so_feeds_fall_out_of_step():
    delays = [backoff_delay(3, 60, 21600, None, spread) for spread in (0.0, 0.5, 1.0)]
    assert delays == [180, 240, 300]
    assert backoff_delay(3, 60, 21600, 3600, 0.0) == 3600, "never sooner than Retry-After"
    assert backoff_delay(9, 60, 600, None, 1.0) == 600, "never past the cap"


def test_feeds_failing_together_are_not_retried_in_lock_step(tmp_path, httpserver):
    """Four feeds on one flapping server, failed twice together: their next polls spread
    out, instead of all landing in the server's next outage."""
    httpserver.expect_request("/flaky.xml").respond_with_data("down", status=503)
    url = httpserver.url_for("/flaky.xml")
    feeds = "".join(f'\n[[feeds]]\nname = "f{n}"\nurl = "{url}?{n}"\n' for n in range(4))
    write_config(
        tmp_path,
        f'[watcher]\nstate = "state.json"\ninterval = "1m"\n{feeds}\n'
        '[[destinations]]\nname = "screen"\ntype = "console"\n',
    )
    for _ in range(2):
        assert watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path).returncode == 1
    report = run_status(tmp_path)
    polls = sorted(datetime.fromisoformat(feed["next_poll"]) for feed in report["feeds"])
    assert all(feed["consecutive_failures"] == 2 for feed in report["feeds"])
    assert (polls[-1] - polls[0]).total_seconds() > 2, polls


def test_a_feed_that_will_fail_the_same_way_backs_off_harder(tmp_path, httpserver):
    """Back-off by the error's class: a 503 is passing (the next poll at the interval), a
    404 or a page that is no feed will repeat until something changes (4 intervals out)."""
    httpserver.expect_request("/busy.xml").respond_with_data("busy", status=503)
    httpserver.expect_request("/missing.xml").respond_with_data("no", status=404)
    httpserver.expect_request("/page.xml").respond_with_data(
        "<!DOCTYPE html><html><body>hi</body></html>", content_type="text/html"
    )
    feeds = "".join(
        f'\n[[feeds]]\nname = "{name}"\nurl = "{httpserver.url_for(f"/{name}.xml")}"\n'
        for name in ("busy", "missing", "page")
    )
    write_config(
        tmp_path,
        f'[watcher]\nstate = "state.json"\ninterval = "10m"\n{feeds}\n'
        '[[destinations]]\nname = "screen"\ntype = "console"\n',
    )
    assert watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path).returncode == 1
    report = run_status(tmp_path)
    waits = {
        feed["name"]: (
            datetime.fromisoformat(feed["next_poll"]) - datetime.fromisoformat(feed["last_poll"])
        ).total_seconds()
        for feed in report["feeds"]
    }
    assert waits["busy"] == 600
    assert 3 * 600 <= waits["missing"] <= 5 * 600, waits
    assert 3 * 600 <= waits["page"] <= 5 * 600, waits
