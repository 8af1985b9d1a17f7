"""What a review of the service work found, each pinned by a test: a delivery sent but not
recorded is not sent again in a loop; a pid left in a lock file is no daemon; a feed
failing for ever backs off without overflowing; a backfill request is checked; a gone
feed is reported at once; a reload that fails twice says so twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.conftest import FeedHost, Recorder, watcher_command, webhook_table, write_config
from tests.store_helpers import queue
from watcher.alerts import feed_alerts
from watcher.backfill import selection
from watcher.backoff import backoff_delay
from watcher.clock import utcnow
from watcher.config import Config, DeliveryPolicy, FeedConfig
from watcher.deliver import Deliverer
from watcher.fetch import new_client
from watcher.holder import holder
from watcher.notifiers.webhook import WebhookNotifier
from watcher.schema import ConfigError
from watcher.store import AtomicJSONStorage, FeedState, Store, StoreError


def test_a_delivery_sent_but_not_recorded_is_not_sent_again_by_the_process(
    tmp_path, httpserver, monkeypatch
):
    hook = Recorder(httpserver, "/hook")
    store = Store(tmp_path / "state.json")
    queue(store, ("talks", "t1"))

    def full_disk(self, data):
        raise OSError(28, "No space left on device")

    async def drain() -> None:
        async with new_client(5) as client:
            notifier = WebhookNotifier("hook", {"url": hook.url, "timeout": 5.0, "secret": None})
            policy = {"hook": DeliveryPolicy()}
            await Deliverer(store, {"hook": notifier}, policy, client, utcnow).drain()

    monkeypatch.setattr(AtomicJSONStorage, "_write", full_disk)
    with pytest.raises(StoreError, match="No space left on device"):
        asyncio.run(drain())
    asyncio.run(drain())
    assert len(hook.received) == 1, "sent once, not again while the disk is full"
    monkeypatch.undo()
    store.close()
    reopened = Store(tmp_path / "state.json")
    assert [entry.id for entry in reopened.pending("hook")] == ["talks-t1"], "at most once more"
    reopened.close()


def test_deliveries_sent_while_the_disk_is_full_are_each_sent_once(
    tmp_path, httpserver, monkeypatch
):
    """Several deliveries' writes in flight when the disk fills: the pass stops sending
    once one has failed, says so (the error is raised), and none of those sent is sent
    again by the process; no write is left unawaited, nor its error unread."""
    hook = Recorder(httpserver, "/hook")
    store = Store(tmp_path / "state.json")
    guids = [f"t{n}" for n in range(8)]
    queue(store, *(("talks", guid) for guid in guids))

    def full_disk(self, data):
        raise OSError(28, "No space left on device")

    async def drains() -> tuple[list[str], list[dict]]:
        unread: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: unread.append(context)
        )
        outcomes = []
        async with new_client(5) as client:
            notifier = WebhookNotifier("hook", {"url": hook.url, "timeout": 5.0, "secret": None})
            policy = {"hook": DeliveryPolicy()}
            deliverer = Deliverer(store, {"hook": notifier}, policy, client, utcnow)
            for _ in range(len(guids) + 1):
                if not store.pending("hook"):
                    break
                try:
                    await deliverer.drain()
                    outcomes.append("ok")
                except StoreError as exc:
                    outcomes.append(str(exc))
                assert not deliverer._marking.get("hook"), "writes left in hand after a pass"
        return outcomes, unread

    monkeypatch.setattr(AtomicJSONStorage, "_write", full_disk)
    outcomes, unread = asyncio.run(drains())
    import gc

    gc.collect()
    assert outcomes and all("No space left on device" in outcome for outcome in outcomes)
    assert len(outcomes) > 1, "a pass went on sending after a write had failed"
    assert sorted(t["talk"]["guid"] for t in hook.received) == guids, "each sent once"
    assert unread == []
    monkeypatch.undo()
    store.close()
    reopened = Store(tmp_path / "state.json")
    assert [entry.id for entry in reopened.pending("hook")] == [f"talks-{g}" for g in guids]
    reopened.close()


def test_a_pid_left_in_a_lock_file_is_no_daemon(tmp_path):
    state = tmp_path / "state.json"
    Store(state).close()
    assert (tmp_path / "state.json.lock").read_text() == "", "no pid left behind"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "state.json.lock").write_text(f"{sleeper.pid}\nhttp://127.0.0.1:9\n")
        assert holder(state) is None, "its pid is alive, but it holds no lock"
        write_config(
            tmp_path,
            '[watcher]\nstate = "state.json"\n[[feeds]]\nname = "t"\nurl = "f.xml"\n'
            + webhook_table("hook", "http://127.0.0.1:9/"),
        )
        result = watcher_command("reload", "--config", "watcher.toml", cwd=tmp_path)
        assert result.returncode == 1 and "no daemon holds this state" in result.stderr
        assert sleeper.poll() is None, "and it was sent no SIGHUP"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_feed_failing_for_ever_backs_off_to_the_cap_without_overflowing():
    assert backoff_delay(1030, 60, 3600, None) == 3600
    assert backoff_delay(10**6, 60, 3600, 5.0) == 3600


FEED = FeedConfig("talks", "https://e.test/feed", 60, ("hook",), 0, ("guid",))


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        ([1, 2], "expected a JSON object"),
        ({"last": "2"}, "--last: expected a whole number of talks, 1 or more, got '2'"),
        ({"last": -1}, "--last: expected a whole number of talks, 1 or more, got -1"),
        ({"since": 5}, "--since: expected a date like 2026-06-01, got 5"),
        ({"last": 1, "destinations": ["ops"]}, "feed talks does not notify 'ops'"),
        ({}, "give one of --last N or --since DATE"),
    ],
)
def test_a_backfill_request_is_checked(request_body, error):
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace(")", r"\)")):
        selection(request_body, FEED)


def test_a_gone_feed_is_reported_at_once():
    config = Config(
        path=None,  # type: ignore[arg-type]
        state=None,  # type: ignore[arg-type]
        interval=60, timeout=30, max_bytes=1, max_concurrency=1, max_per_host=1,
        retention=1, max_backoff=1, feeds=(FEED,), destinations={}, alerts=("ops",),
    )  # fmt: skip
    now = datetime(2026, 1, 1, tzinfo=UTC)
    gone = FeedState("talks", failures=1, failing_since="2026-01-01T00:00:00Z",
                     last_error="HTTP 410 Gone", gone=True)  # fmt: skip
    state, [alert] = feed_alerts(FEED, config, FeedState("talks"), gone, now)
    assert alert.kind == "feed_failing" and state.alerted == "failing"


def test_a_reload_that_fails_twice_says_so_twice(tmp_path, httpserver, daemons):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    body = (
        '[watcher]\nstate = "state.json"\nlisten = "127.0.0.1:0"\ninterval = "1h"\n'
        f'[[feeds]]\nname = "talks"\nurl = "{feed.url}"\n' + webhook_table("hook", hook.url)
    )
    write_config(tmp_path, body)
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    lock = tmp_path / "state.json.lock"
    daemon.wait_for(lambda: lock.exists() and len(lock.read_text().split()) == 2, "serving")
    # Set for the command, not for the daemon: the daemon's reload fails, the same way twice.
    write_config(tmp_path, body.replace(hook.url, "${HOOK_ONLY_HERE}"))
    for _ in range(2):
        result = watcher_command(
            "reload", "--config", "watcher.toml", cwd=tmp_path, env={"HOOK_ONLY_HERE": hook.url},
            timeout=8,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert "the last reload failed" in result.stderr and "HOOK_ONLY_HERE" in result.stderr
    assert daemon.process.poll() is None
    os.kill(daemon.process.pid, signal.SIGTERM)
    assert daemon.process.wait(10) == 0
