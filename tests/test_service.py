"""The daemon's HTTP side, through a real daemon process: `/healthz`, `/metrics` (parsed
with prometheus_client's own parser, counted against what the receivers saw),
`/status.json`, and `watcher status` asking the daemon instead of reading files that lag."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    FeedHost,
    Recorder,
    one_feed,
    run_status,
    watcher_command,
    webhook_table,
    write_config,
)
from watcher.store import read_snapshot

LISTEN = 'listen = "127.0.0.1:0"\ninterval = "1h"'


def address_of(tmp_path: Path, daemon) -> str:
    """The address the daemon wrote in its lock file once it serves (port 0: any free)."""
    lock = tmp_path / "state.json.lock"

    def served() -> bool:
        return lock.exists() and len(lock.read_text().split()) == 2

    daemon.wait_for(served, "the HTTP side to start")
    return lock.read_text().split()[1]


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5, trust_env=False)


def samples(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = get(f"{address}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_metrics_count_what_the_receivers_saw(tmp_path, httpserver, daemons):
    feed = FeedHost(httpserver)
    hook, broken = Recorder(httpserver, "/hook"), Recorder(httpserver, "/broken", [400] * 3)
    write_config(
        tmp_path,
        one_feed(
            feed.url,
            webhook_table("hook", hook.url),
            webhook_table("broken", broken.url),
            watcher=LISTEN,
            feed="notify_existing = 3",
        ),
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    address = address_of(tmp_path, daemon)
    dead = ("watcher_deliveries_total", {"destination": "broken", "outcome": "dead"})
    daemon.wait_for(lambda: value(samples(address), dead[0], **dead[1]) == 3, "3 dead letters")
    daemon.wait_for(lambda: len(hook.received) == 3, "3 deliveries")
    found = samples(address)
    assert value(found, "watcher_deliveries_total", destination="hook", outcome="sent") == 3
    assert value(found, "watcher_deliveries_total", destination="hook", outcome="dead") is None
    assert value(found, "watcher_deliveries_total", destination="broken", outcome="sent") is None
    assert broken.statuses == [] and broken.received == []
    assert value(found, "watcher_polls_total", feed="talks", outcome="changed") == 1
    for outcome in ("not_modified", "unchanged", "failed", "skipped"):
        assert value(found, "watcher_polls_total", feed="talks", outcome=outcome) == 0
    assert len(feed.requests) == 1
    assert value(found, "watcher_talks_new_total", feed="talks") == 3
    assert value(found, "watcher_fetch_duration_seconds_count", feed="talks") == 1
    assert value(found, "watcher_queue_depth", destination="hook") == 0
    assert value(found, "watcher_dead_letters", destination="broken") == 3
    assert value(found, "watcher_feed_consecutive_failures", feed="talks") == 0
    last_success = value(found, "watcher_feed_last_success_timestamp_seconds", feed="talks")
    assert last_success is not None and abs(last_success - time.time()) < 60
    assert (value(found, "process_resident_memory_bytes") or 0) > 0
    assert daemon.stop() == 0


def test_status_is_live_from_the_daemon_and_says_so_from_the_files(tmp_path, httpserver, daemons):
    """The files hold a destination's results only from the next flush (a minute): asked
    while the daemon runs, `watcher status` shows them at once; with the daemon stopped it
    reads the files and says when they were written."""
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    body = one_feed(
        feed.url, webhook_table("hook", hook.url), watcher=LISTEN, feed="notify_existing = 2"
    )
    write_config(tmp_path, body)
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    address = address_of(tmp_path, daemon)
    daemon.wait_for(lambda: len(hook.received) == 2, "2 deliveries")
    daemon.wait_for(
        lambda: get(f"{address}/status.json").json()["destinations"][0]["last_success"],
        "the delivery recorded",
    )
    files = read_snapshot(tmp_path / "state.json")
    assert "hook" not in files.destinations, "not flushed yet: the files lag"
    report = run_status(tmp_path)
    assert report["source"] == "daemon" and report["daemon"].startswith("running (pid")
    [dest] = report["destinations"]
    assert dest["last_success"] and dest["queued"] == 0
    [talks] = report["feeds"]
    assert talks["talks_seen"] == 3 and talks["last_success"]
    assert talks["next_poll"] > report["generated"], "the schedule's next run, in the future"
    text = watcher_command("status", "--config", "watcher.toml", cwd=tmp_path).stdout
    assert "live from the running daemon" in text
    assert daemon.stop() == 0
    after = run_status(tmp_path)
    assert after["source"] == "files" and after["daemon"] == "not running"
    assert after["as_of"] and after["destinations"][0]["last_success"], "flushed at stop"
    assert (
        "read from the state files (not running)"
        in watcher_command("status", "--config", "watcher.toml", cwd=tmp_path).stdout
    )


def test_healthz_is_503_with_the_reason_when_the_state_folder_is_gone(
    tmp_path, httpserver, daemons
):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    (tmp_path / "data").mkdir()
    body = one_feed(feed.url, webhook_table("hook", hook.url), watcher=LISTEN)
    write_config(tmp_path, body.replace('state = "state.json"', 'state = "data/state.json"'))
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    lock = tmp_path / "data" / "state.json.lock"
    daemon.wait_for(lambda: lock.exists() and len(lock.read_text().split()) == 2, "serving")
    address = lock.read_text().split()[1]
    healthy = get(f"{address}/healthz")
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
    shutil.rmtree(tmp_path / "data")
    sick = get(f"{address}/healthz")
    assert sick.status_code == 503
    assert sick.json()["problems"] == ["data: the state folder is not writable"]
    daemon.kill()


def test_a_port_in_use_is_one_line_naming_the_key(tmp_path, httpserver):
    feed = FeedHost(httpserver)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listen = f'listen = "127.0.0.1:{port}"'
        write_config(tmp_path, one_feed(feed.url, webhook_table("hook", feed.url), watcher=listen))
        result = watcher_command("run", "--config", "watcher.toml", cwd=tmp_path, timeout=30)
    assert result.returncode != 0
    [line] = [line for line in result.stderr.splitlines() if "listen" in line]
    assert f"[watcher] listen 127.0.0.1:{port}: cannot listen: Address already in use" in line
    assert "Traceback" not in result.stderr


def test_a_bad_listen_value_is_a_config_error(tmp_path):
    write_config(
        tmp_path,
        one_feed(
            "feed.xml", webhook_table("hook", "http://127.0.0.1:9/"), watcher='listen = "8765"'
        ),
    )
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert 'watcher.listen: expected HOST:PORT, like "127.0.0.1:8765"' in result.stderr
