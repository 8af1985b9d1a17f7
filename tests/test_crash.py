"""kill -9 at random moments while the feed gains talks and an endpoint fails:
no talk is ever missing, and a talk is repeated only if it was in flight at a kill."""

from __future__ import annotations

import random
import time
from collections import Counter

from tests.conftest import Recorder, add_talk, one_feed, webhook_table, write_config
from watcher.store import read_snapshot

ROUNDS = 15


def test_random_kills_lose_nothing_and_repeat_only_in_flight(
    tmp_path, feed_host, httpserver, daemons
):
    rng = random.Random(20261125)
    flaky, steady = Recorder(httpserver, "/flaky"), Recorder(httpserver, "/steady")
    flaky.statuses = [503 if rng.random() < 0.35 else 200 for _ in range(10_000)]
    flaky.retry_after = "1"
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            webhook_table("flaky", flaky.url),
            webhook_table("steady", steady.url),
            watcher='interval = "0.3s"',
            state="state/watcher.json",
        ),
    )
    first = daemons(tmp_path, "--config", "watcher.toml")
    first.wait_for(lambda: "first poll" in first.stderr, "the baseline")
    first.kill()

    added: list[str] = []
    for round_number in range(ROUNDS):
        video = f"Crash{round_number:06d}"
        added.append(video)
        feed_host.set_body(
            add_talk(
                feed_host.body,
                video,
                f"Talk {round_number} | Speaker",
                f"Mon, {1 + round_number:02d} Jun 2026 00:00:00 +0000",
            )
        )
        feed_host.status = 500 if rng.random() < 0.2 else 200
        daemon = daemons(tmp_path, "--config", "watcher.toml")
        deadline = rng.uniform(0.05, 1.2)
        _sleep_while_running(daemon, deadline)
        daemon.kill()
        assert "watcher: error" not in daemon.stderr, daemon.stderr

    feed_host.status = 200
    flaky.statuses = []
    final = daemons(tmp_path, "--config", "watcher.toml")
    final.wait_for(
        lambda: set(added) <= _ids(flaky) and set(added) <= _ids(steady),
        "every talk at both endpoints",
        timeout=90,
    )
    assert final.stop() == 0
    counts_after_stop = (len(flaky.received), len(steady.received))

    polled = len(feed_host.requests)
    quiet = daemons(tmp_path, "--config", "watcher.toml")
    quiet.wait_for(lambda: len(feed_host.requests) >= polled + 5, "five polls with nothing new")
    assert quiet.stop() == 0
    assert (len(flaky.received), len(steady.received)) == counts_after_stop, "nothing after"

    kills = ROUNDS + 1
    for recorder in (flaky, steady):
        ids = [payload["talk"]["video_id"] for payload in recorder.received]
        assert set(ids) == set(added), "every talk, and only new ones"
        repeats = sum(count - 1 for count in Counter(ids).values())
        assert repeats <= kills, f"{repeats} repeats for {kills} kills"
        by_id = Counter(payload["id"] for payload in recorder.received)
        assert all(count <= 1 + kills for count in by_id.values())
    assert read_snapshot(tmp_path / "state" / "watcher.json").outbox == []


def _ids(recorder: Recorder) -> set[str]:
    return {payload["talk"]["video_id"] for payload in recorder.received}


def _sleep_while_running(daemon, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and daemon.process.poll() is None:
        time.sleep(0.02)
