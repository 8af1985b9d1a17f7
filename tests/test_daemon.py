"""`watcher run` as a real process: schedule, signals, the state file's lock and guards."""

from __future__ import annotations

import shutil
import signal
import time

import pytest
from werkzeug import Response

from tests.conftest import (
    REPO,
    SEED_FEED,
    add_talk,
    console_table,
    one_feed,
    watcher_command,
    webhook_table,
    write_config,
)


def test_shipped_example_announces_on_the_console_then_stays_quiet(tmp_path, daemons):
    shutil.copytree(REPO / "config", tmp_path / "config")
    daemon = daemons(tmp_path, "--config", "config/example.toml")
    daemon.wait_for(lambda: daemon.stdout.count("New talk") == 3, "three talks on stdout")
    assert daemon.stop(signal.SIGINT) == 0
    assert "stopped" in daemon.stderr
    assert "Speaker: Frank McSherry" in daemon.stdout

    again = daemons(tmp_path, "-v", "--config", "config/example.toml")
    again.wait_for(lambda: "feed talks: unchanged" in again.stderr, "a poll that finds nothing")
    assert again.stop() == 0
    assert again.stdout == ""


def test_daemon_announces_a_talk_that_appears_and_exits_cleanly(
    tmp_path, daemons, feed_host, webhook
):
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            webhook_table("hook", webhook.url),
            watcher='interval = "1s"',
            state="state/watcher.json",
        ),
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: "first poll" in daemon.stderr, "the baseline")
    feed_host.set_body(
        add_talk(
            feed_host.body,
            "DaEmOnTaLk1",
            "Live | A Speaker | Conf",
            "Fri, 12 Jun 2026 00:00:00 +0000",
        )
    )
    daemon.wait_for(lambda: webhook.received, "the new talk at the webhook")
    daemon.wait_for(lambda: feed_host.responses[-3:] == [304, 304, 304], "polls to go on")
    assert daemon.stop() == 0
    assert [p["talk"]["video_id"] for p in webhook.received] == ["DaEmOnTaLk1"]


def test_second_instance_on_the_same_state_refuses_to_start(tmp_path, daemons, feed_host, webhook):
    write_config(
        tmp_path,
        one_feed(feed_host.url, webhook_table("hook", webhook.url), state="state/watcher.json"),
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: "first poll" in daemon.stderr, "the baseline")
    for command in ("run", "poll"):
        result = watcher_command(command, "--config", "watcher.toml", cwd=tmp_path, timeout=20)
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"watcher: error: state/watcher.json: the state file is in use by another watcher "
            f"(pid {daemon.process.pid}); stop it first, or give this one another state file"
        )
    status = watcher_command("status", "--config", "watcher.toml", cwd=tmp_path)
    assert status.returncode == 0 and "3 talks seen" in status.stdout
    assert daemon.stop() == 0


@pytest.mark.parametrize(
    ("content", "problem"), [(b"", "empty"), (b'{"feeds": {"1": ', "not valid JSON")]
)
def test_a_damaged_state_file_is_never_taken_for_an_empty_one(
    tmp_path, feed_host, content, problem
):
    write_config(tmp_path, one_feed(feed_host.url, console_table(), state="watcher.json"))
    (tmp_path / "watcher.json").write_bytes(content)
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"watcher: error: watcher.json: the state file is {problem}")
    assert "refusing to start" in result.stderr
    assert (tmp_path / "watcher.json").read_bytes() == content
    assert feed_host.requests == []


def test_a_slow_feeds_skipped_runs_are_said_once(tmp_path, daemons, httpserver):
    """A feed slower than its interval: its skipped runs give one WARNING line in all (not
    the scheduler's and ours, every run)."""
    served = []

    def slow(request):
        time.sleep(1.2)
        served.append(time.monotonic())
        return Response(SEED_FEED.read_bytes(), content_type="application/rss+xml")

    httpserver.expect_request("/slow.xml").respond_with_handler(slow)
    write_config(
        tmp_path,
        f'[watcher]\nstate = "state.json"\ninterval = "0.2s"\n\n[[feeds]]\nname = "slow"\n'
        f'url = "{httpserver.url_for("/slow.xml")}"\n\n'
        '[[destinations]]\nname = "screen"\ntype = "console"\n',
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: len(served) >= 3, "three slow polls", timeout=30)
    assert daemon.stop() == 0
    warnings = [line for line in daemon.stderr.splitlines() if " WARNING " in line]
    assert len([w for w in warnings if "skipped this run" in w]) == 1, warnings
    assert not [w for w in warnings if "Execution of job" in w or "was missed by" in w]
