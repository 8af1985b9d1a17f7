"""Per-host limits, through `watcher poll` as a process: a slow host with many feeds
gets at most `max_per_host` requests at once and never holds up another host's feeds.
Both hosts are on 127.0.0.1, on two ports."""

from __future__ import annotations

import re
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import FeedHost, seed_bytes, watcher_command, write_config

SLOW_FEEDS = 8
FAST_FEEDS = 4
MAX_PER_HOST = 2
HOLD = 1.0  # every slow response takes at least this long...
STALL = 5.0  # ...and waits, up to this long after the first one, for the fast feeds to be served


class SlowHost:
    """Feeds on a threaded server whose responses wait until the fast host has served
    every feed (or STALL has passed), then take at least HOLD; counts requests in flight."""

    def __init__(self, server: HTTPServer, fast: list[FeedHost]) -> None:
        self.server = server
        self.fast = fast
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fast_served_when_done: list[int] = []  # per slow response
        self.stall_until: float | None = None
        for index in range(SLOW_FEEDS):
            server.expect_request(f"/slow/{index}.xml").respond_with_handler(self._handle)

    def url(self, index: int) -> str:
        return self.server.url_for(f"/slow/{index}.xml")

    def fast_served(self) -> int:
        return sum(len(host.responses) for host in self.fast)

    def _handle(self, request: Request) -> Response:
        started = time.monotonic()
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if self.stall_until is None:
                self.stall_until = started + STALL
        try:
            while self.fast_served() < FAST_FEEDS and time.monotonic() < self.stall_until:
                time.sleep(0.02)
            time.sleep(max(0.0, started + HOLD - time.monotonic()))
            self.fast_served_when_done.append(self.fast_served())
            return Response(seed_bytes(), content_type="application/rss+xml; charset=utf-8")
        finally:
            with self.lock:
                self.in_flight -= 1


def config_for(slow: SlowHost, fast: list[FeedHost], max_concurrency: int) -> str:
    feeds = [(f"slow-{i}", slow.url(i)) for i in range(SLOW_FEEDS)]  # first: first in line
    feeds += [(f"fast-{i}", host.url) for i, host in enumerate(fast)]
    tables = "".join(f'\n[[feeds]]\nname = "{name}"\nurl = "{url}"\n' for name, url in feeds)
    return f"""
[watcher]
state = "state/watcher.json"
timeout = "60s"
max_concurrency = {max_concurrency}
max_per_host = {MAX_PER_HOST}
{tables}
[[destinations]]
name = "screen"
type = "console"
"""


@pytest.mark.parametrize(
    "max_concurrency",
    [
        16,  # room for every feed: only the per-host limit holds the slow host back
        3,  # fewer global slots than slow feeds: those queued on their host must hold none
    ],
)
def test_a_slow_host_gets_max_per_host_polls_and_holds_up_no_other_host(
    tmp_path, httpserver, threaded_httpserver, max_concurrency
):
    fast = [FeedHost(httpserver, f"/fast/{i}.xml") for i in range(FAST_FEEDS)]
    slow = SlowHost(threaded_httpserver, fast)
    assert httpserver.port != threaded_httpserver.port
    write_config(tmp_path, config_for(slow, fast, max_concurrency))

    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert len(slow.fast_served_when_done) == SLOW_FEEDS
    assert [len(host.responses) for host in fast] == [1] * FAST_FEEDS
    assert slow.most_in_flight == MAX_PER_HOST
    # Every slow response waited for the fast host to serve all its feeds: had the fast
    # feeds queued behind the slow ones, the wait would have run out (STALL) first.
    assert slow.fast_served_when_done == [FAST_FEEDS] * SLOW_FEEDS
    # And the watcher recorded every fast feed before any slow one (HOLD to spare).
    finished = re.findall(r"feed (\S+): first poll", result.stderr)
    assert sorted(finished) == sorted(
        [f"slow-{i}" for i in range(SLOW_FEEDS)] + [f"fast-{i}" for i in range(FAST_FEEDS)]
    )
    assert all(name.startswith("fast-") for name in finished[:FAST_FEEDS]), finished
