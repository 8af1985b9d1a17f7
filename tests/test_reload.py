"""Changing the watcher while it runs, through a real daemon process: SIGHUP and
`watcher reload` re-read the config (feeds and destinations added, removed, changed;
queues kept; a bad config keeps the old one), and `watcher redeliver` goes through the
daemon instead of needing it stopped."""

from __future__ import annotations

import json
import os
import signal
import socket

import httpx

from tests.conftest import (
    FeedHost,
    Recorder,
    add_talk,
    watcher_command,
    webhook_table,
    write_config,
)

NEW = ("ReLoAdTaLk1", "Reloaded | Someone | Conf", "Sat, 13 Jun 2026 00:00:00 +0000")


def config(*feeds: str, destinations: list[str]) -> str:
    return (
        '[watcher]\nstate = "state.json"\nlisten = "127.0.0.1:0"\ninterval = "1h"\n\n'
        + "\n".join(feeds)
        + "\n"
        + "\n".join(destinations)
    )


def feed_table(name: str, url: str, notify: str, extra: str = "") -> str:
    return f'[[feeds]]\nname = "{name}"\nurl = "{url}"\nnotify = ["{notify}"]\n{extra}\n'


def run_status(cwd) -> dict:
    return json.loads(
        watcher_command("status", "--config", "watcher.toml", "--json", cwd=cwd).stdout
    )


def address(tmp_path, daemon) -> str:
    lock = tmp_path / "state.json.lock"
    daemon.wait_for(lambda: lock.exists() and len(lock.read_text().split()) == 2, "serving")
    return lock.read_text().split()[1]


def run(*args: str, cwd) -> tuple[int, str]:
    result = watcher_command(*args, "--config", "watcher.toml", cwd=cwd)
    return result.returncode, result.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_reload_adds_a_feed_and_a_destination_in_the_same_process(tmp_path, httpserver, daemons):
    first, second = FeedHost(httpserver, "/a.xml"), FeedHost(httpserver, "/b.xml")
    hook, other = Recorder(httpserver, "/hook"), Recorder(httpserver, "/other")
    write_config(
        tmp_path,
        config(feed_table("a", first.url, "hook"), destinations=[webhook_table("hook", hook.url)]),
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: "feed a: first poll" in daemon.stderr, "feed a's first poll")
    write_config(
        tmp_path,
        config(
            feed_table("a", first.url, "hook"),
            feed_table("b", second.url, "other", "notify_existing = 1"),
            destinations=[webhook_table("hook", hook.url), webhook_table("other", other.url)],
        ),
    )
    code, said = run("reload", cwd=tmp_path)
    assert code == 0, said
    assert "reloaded at" in said
    daemon.wait_for(lambda: len(other.received) == 1, "feed b's talk at the new destination")
    assert hook.received == [] and daemon.process.poll() is None
    assert "feeds added: b; destinations added: other" in daemon.stderr
    assert len(first.requests) == 1, "feed a is not polled again by the reload"


def test_a_removed_destination_keeps_its_queue_until_it_comes_back(tmp_path, httpserver, daemons):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    nowhere = f"http://127.0.0.1:{closed_port()}/down"
    down = [webhook_table("down", nowhere)]
    feeds = feed_table("talks", feed.url, "down", "notify_existing = 1")
    write_config(tmp_path, config(feeds, destinations=down))
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    url = address(tmp_path, daemon)
    daemon.wait_for(lambda: "destination down: down" in daemon.stderr, "the destination down")
    write_config(
        tmp_path,
        config(
            feed_table("talks", feed.url, "hook"), destinations=[webhook_table("hook", hook.url)]
        ),
    )
    os.kill(daemon.process.pid, signal.SIGHUP)
    daemon.wait_for(lambda: "destinations removed: down" in daemon.stderr, "the reload")
    status = httpx.get(f"{url}/status.json", trust_env=False).json()
    kept = {dest["name"]: dest for dest in status["destinations"]}["down"]
    assert kept["removed"] and kept["queued"] == 1
    write_config(
        tmp_path,
        config(
            feed_table("talks", feed.url, "hook"),
            destinations=[webhook_table("hook", hook.url), webhook_table("down", hook.url)],
        ),
    )
    code, said = run("reload", cwd=tmp_path)
    assert code == 0, said
    daemon.wait_for(lambda: len(hook.received) == 1, "the kept delivery, once it is back")
    assert daemon.stop() == 0
    assert len(hook.received) == 1


def test_a_config_that_fails_to_load_keeps_the_one_in_force(tmp_path, httpserver, daemons):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    body = config(
        feed_table("talks", feed.url, "hook", 'interval = "0.5s"'),
        destinations=[webhook_table("hook", hook.url)],
    )
    write_config(tmp_path, body)
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    url = address(tmp_path, daemon)
    daemon.wait_for(lambda: "first poll" in daemon.stderr, "the first poll")
    write_config(tmp_path, body.replace('type = "webhook"', 'type = "pigeon"'))
    code, said = run("reload", cwd=tmp_path)
    assert code == 2 and "unknown destination type 'pigeon'" in said, "checked before sending"
    os.kill(daemon.process.pid, signal.SIGHUP)
    daemon.wait_for(lambda: "reload failed" in daemon.stderr, "the failed reload")
    [line] = [line for line in daemon.stderr.splitlines() if "reload failed" in line]
    assert "watcher.toml: destinations[0].type: unknown destination type 'pigeon'" in line
    health = httpx.get(f"{url}/healthz", trust_env=False)
    assert health.status_code == 200
    assert health.json()["reload"].startswith("the last reload failed: watcher.toml: destinations")
    feed.set_body(add_talk(feed.body, *NEW))
    daemon.wait_for(lambda: len(hook.received) == 1, "a new talk, under the config in force")
    assert daemon.process.poll() is None


def test_redeliver_goes_through_the_running_daemon(tmp_path, httpserver, daemons):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook", statuses=[400])
    write_config(
        tmp_path,
        config(
            feed_table("talks", feed.url, "hook", "notify_existing = 1"),
            destinations=[webhook_table("hook", hook.url)],
        ),
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    address(tmp_path, daemon)
    daemon.wait_for(lambda: "rejected, dead-lettered" in daemon.stderr, "the dead letter")
    code, said = run("redeliver", "hook", cwd=tmp_path)
    assert code == 0 and "the daemon re-queued 1 dead-lettered deliveries" in said, said
    daemon.wait_for(lambda: len(hook.received) == 1, "the redelivery")
    assert daemon.process.poll() is None


def test_reload_without_a_daemon_says_so(tmp_path, httpserver):
    feed = FeedHost(httpserver)
    write_config(
        tmp_path,
        config(
            feed_table("talks", feed.url, "hook"), destinations=[webhook_table("hook", feed.url)]
        ),
    )
    code, said = run("reload", cwd=tmp_path)
    assert code == 1 and "no daemon holds this state" in said


def test_prune_removes_leftover_feeds_but_not_undelivered_talks(tmp_path, httpserver):
    first, second = FeedHost(httpserver, "/a.xml"), FeedHost(httpserver, "/b.xml")
    nowhere = f"http://127.0.0.1:{closed_port()}/down"
    both = config(
        feed_table("a", first.url, "down"),
        feed_table("b", second.url, "down", "notify_existing = 1"),
        destinations=[webhook_table("down", nowhere)],
    )
    write_config(tmp_path, both.replace('listen = "127.0.0.1:0"\n', ""))
    assert run("poll", cwd=tmp_path)[0] == 0
    write_config(
        tmp_path,
        config(feed_table("c", first.url, "down"), destinations=[webhook_table("down", nowhere)]),
    )
    report = run_status(tmp_path)
    assert [feed["name"] for feed in report["leftover_feeds"]] == ["a", "b"]
    code, said = run("prune", cwd=tmp_path)
    assert code == 1 and "b (1 deliveries queued)" in said and "removed the state of feed a" in said
    assert [feed["name"] for feed in run_status(tmp_path)["leftover_feeds"]] == ["b"]
    code, said = run("prune", "--force", cwd=tmp_path)
    assert code == 0 and "feed b (1 queued deliveries dropped)" in said
    report = run_status(tmp_path)
    assert report["leftover_feeds"] == [] and report["destinations"][0]["queued"] == 0
    assert len(list((tmp_path / "state.json.feeds").glob("*.json"))) == 0
