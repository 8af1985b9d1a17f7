"""`watcher backfill`: seen talks queued on purpose, through the filters, once per
destination unless forced; with the daemon running (through it) and without."""

from __future__ import annotations

from tests.conftest import FeedHost, Recorder, watcher_command, webhook_table, write_config

METAL = "WWDC26: Optimize custom machine learning operations with Metal tensors"


def config(feed_url: str, *destinations: str, watcher: str = "") -> str:
    return (
        f'[watcher]\nstate = "state.json"\n{watcher}\n\n[[feeds]]\nname = "talks"\n'
        f'url = "{feed_url}"\n\n' + "\n".join(destinations)
    )


def run(*args: str, cwd) -> tuple[int, str]:
    result = watcher_command(*args, "--config", "watcher.toml", cwd=cwd)
    return result.returncode, result.stderr


def test_backfill_sends_seen_talks_once_unless_forced(tmp_path, httpserver):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    other = Recorder(httpserver, "/other")
    write_config(
        tmp_path,
        config(
            feed.url,
            webhook_table("hook", hook.url),
            webhook_table("other", other.url, 'exclude = ["speaker:apple"]'),
        ),
    )
    assert run("poll", cwd=tmp_path)[0] == 0
    assert hook.received == [], "the first poll is quiet"
    code, said = run("backfill", "talks", "--last", "2", cwd=tmp_path)
    assert code == 0, said
    assert [p["talk"]["title"][:8] for p in hook.received][-1] == METAL[:8], "oldest first"
    assert len(hook.received) == 2 and len(other.received) == 1, "other drops the Apple talk"
    assert run("backfill", "talks", "--last", "2", cwd=tmp_path)[0] == 0
    assert len(hook.received) == 2 and len(other.received) == 1, "not twice"
    code, said = run(
        "backfill", "talks", "--since", "2026-06-01", "--dest", "hook", "--force", cwd=tmp_path
    )
    assert code == 0 and "queued 1 deliveries" in said, said
    assert [p["talk"]["title"] for p in hook.received[2:]] == [METAL]
    assert hook.received[2]["id"] != hook.received[1]["id"], "a new id: receivers drop repeats"
    assert hook.received[2]["talk"]["guid"] == hook.received[1]["talk"]["guid"]
    assert run("poll", cwd=tmp_path)[0] == 0 and len(hook.received) == 3, "a poll sends nothing"


def test_backfill_goes_through_the_running_daemon(tmp_path, httpserver, daemons):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    settings = 'listen = "127.0.0.1:0"\ninterval = "1h"'
    write_config(tmp_path, config(feed.url, webhook_table("hook", hook.url), watcher=settings))
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    lock = tmp_path / "state.json.lock"
    daemon.wait_for(
        lambda: "first poll" in daemon.stderr and len(lock.read_text().split()) == 2,
        "the first poll, served",
    )
    code, said = run("backfill", "talks", "--last", "1", cwd=tmp_path)
    assert code == 0 and "the daemon queued 1 deliveries" in said, said
    daemon.wait_for(lambda: len(hook.received) == 1, "the backfilled talk")
    assert hook.received[0]["talk"]["title"] == METAL
    assert daemon.process.poll() is None


def test_a_bad_since_or_feed_is_a_usage_error(tmp_path, httpserver):
    feed = FeedHost(httpserver)
    write_config(tmp_path, config(feed.url, webhook_table("hook", "http://127.0.0.1:9/")))
    code, said = run("backfill", "talks", "--since", "last tuesday", cwd=tmp_path)
    assert code == 2 and "--since: expected a date like 2026-06-01" in said
    code, said = run("backfill", "nope", "--last", "1", cwd=tmp_path)
    assert code == 2 and "no feed named 'nope'" in said
