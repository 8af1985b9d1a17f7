"""Delivery you can trust: retries, Retry-After, give-up and redeliver, signatures,
rate limits, order, and dedup that survives real feeds."""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from tests.conftest import (
    SEED_FEED,
    Recorder,
    add_talk,
    destination_status,
    feed_status,
    one_feed,
    watcher_command,
    webhook_table,
    write_config,
)


def poll(tmp_path, **env):
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return result


def video_ids(recorder: Recorder) -> list[str]:
    return [payload["talk"]["video_id"] for payload in recorder.received]


def test_signed_webhook_verifies_with_standard_webhooks(tmp_path, feed_host, webhook):
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            webhook_table("hook", webhook.url, 'secret = "${HOOK_SECRET}"'),
            feed="notify_existing = 2",
        ),
    )
    result = poll(tmp_path, HOOK_SECRET=secret)
    assert secret not in result.stderr
    assert len(webhook.raw) == 2
    verifier = Webhook(secret)
    for body, headers in zip(webhook.raw, webhook.headers, strict=True):
        lowered = {k.lower(): v for k, v in headers.items()}
        assert verifier.verify(body, lowered)["id"] == lowered["webhook-id"]
        assert lowered["webhook-signature"].startswith("v1,")
    tampered = webhook.raw[0].replace(b"talk.new", b"talk.old")
    with pytest.raises(Exception, match="No matching signature"):
        verifier.verify(tampered, {k.lower(): v for k, v in webhook.headers[0].items()})


def test_retry_after_is_honoured(tmp_path, feed_host, webhook):
    write_config(
        tmp_path,
        one_feed(feed_host.url, webhook_table("hook", webhook.url), feed="notify_existing = 1"),
    )
    webhook.statuses, webhook.retry_after = [429], "120"
    before = datetime.now(UTC)
    poll(tmp_path)
    hook = destination_status(tmp_path, "hook")
    assert hook["queued"] == 1 and hook["last_error"].startswith("HTTP 429")
    wait = (datetime.fromisoformat(hook["next_attempt"]) - before).total_seconds()
    assert 119 <= wait <= 130


def test_max_attempts_dead_letters_then_redeliver_sends_it(tmp_path, feed_host, webhook):
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            webhook_table("hook", webhook.url, "max_attempts = 1"),
            feed="notify_existing = 1",
        ),
    )
    webhook.statuses = [500]
    poll(tmp_path)
    hook = destination_status(tmp_path, "hook")
    assert hook["dead_lettered"] == 1 and hook["queued"] == 0
    assert hook["dead_letters"][0]["error"].startswith("gave up after 1 attempts: HTTP 500")
    text = watcher_command("status", "--config", "watcher.toml", cwd=tmp_path).stdout
    assert "dead-lettered: 'WWDC26" in text and "watcher redeliver hook" in text

    result = watcher_command("redeliver", "hook", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert video_ids(webhook) == ["toO9j5NKg0c"]
    assert destination_status(tmp_path, "hook")["dead_lettered"] == 0


def test_deliveries_follow_publication_order(tmp_path, feed_host, webhook):
    write_config(tmp_path, one_feed(feed_host.url, webhook_table("hook", webhook.url)))
    poll(tmp_path)
    body = feed_host.body
    for video, date in (
        ("Aaaaaaaaaa2", "Wed, 10 Jun 2026 00:00:00 +0000"),
        ("Aaaaaaaaaa1", "Tue, 09 Jun 2026 00:00:00 +0000"),
        ("Aaaaaaaaaa3", "Thu, 11 Jun 2026 00:00:00 +0000"),
    ):
        body = add_talk(body, video, f"Talk {video} | Someone", date)
    feed_host.set_body(body)
    poll(tmp_path)
    assert video_ids(webhook) == ["Aaaaaaaaaa1", "Aaaaaaaaaa2", "Aaaaaaaaaa3"]


def test_slack_is_paced_to_one_message_a_second(tmp_path, feed_host, slack):
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            f'[[destinations]]\nname = "s"\ntype = "slack"\nurl = "{slack.url}"\n',
            feed="notify_existing = 3",
        ),
    )
    poll(tmp_path)
    assert len(slack.received) == 3
    gaps = [b - a for a, b in itertools.pairwise(slack.times)]
    assert all(gap >= 0.9 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("rewrite", "dedup", "announced"),
    [
        (lambda guid: guid.replace("https://", "http://"), None, 0),
        (lambda guid: guid.rstrip("/"), None, 0),
        (lambda guid: guid.replace("blog.randomdomain.co.za", "talks.example.org"), None, 0),
        (
            lambda guid: guid.replace("blog.randomdomain.co.za", "talks.example.org"),
            'dedup = ["guid"]',
            3,
        ),
    ],
    ids=["http", "trailing-slash", "new-domain", "guid-only"],
)
def test_rewritten_guids_do_not_reannounce_the_back_catalogue(
    tmp_path, feed_host, webhook, rewrite, dedup, announced
):
    write_config(
        tmp_path, one_feed(feed_host.url, webhook_table("hook", webhook.url), feed=dedup or "")
    )
    poll(tmp_path)
    text = SEED_FEED.read_text()
    text = re.sub(
        r"<(guid|link)>(.*?)</\1>",
        lambda m: f"<{m.group(1)}>{rewrite(m.group(2))}</{m.group(1)}>",
        text,
    )
    assert text != SEED_FEED.read_text()
    feed_host.set_body(text.encode())
    poll(tmp_path)
    assert len(webhook.received) == announced


def test_a_talk_that_leaves_and_returns_or_grows_is_not_new(tmp_path, feed_host, webhook):
    write_config(tmp_path, one_feed(feed_host.url, webhook_table("hook", webhook.url)))
    poll(tmp_path)
    seed = SEED_FEED.read_text()
    items = re.findall(r"<item>.*?</item>", seed, flags=re.S)
    feed_host.set_body(seed.replace(items[1], "").encode())
    poll(tmp_path)
    completed = items[1].replace("151 slides extracted", "152 slides extracted")
    feed_host.set_body(seed.replace(items[1], completed).encode())
    poll(tmp_path)
    assert webhook.received == []


def test_talks_long_gone_are_forgotten_but_present_ones_never(tmp_path, feed_host, webhook):
    write_config(
        tmp_path,
        one_feed(feed_host.url, webhook_table("hook", webhook.url), watcher='retention = "1s"'),
    )
    poll(tmp_path)
    seed = SEED_FEED.read_text()
    items = re.findall(r"<item>.*?</item>", seed, flags=re.S)
    feed_host.set_body(seed.replace(items[1], "").encode())
    poll(tmp_path)
    time.sleep(1.2)
    feed_host.set_body(seed.replace(items[1], "").encode() + b"\n")
    result = poll(tmp_path)
    assert "forgot 1 talks" in result.stderr
    assert feed_status(tmp_path)["talks_seen"] == 2
    assert webhook.received == []


def test_state_file_keeps_its_previous_version_to_recover_from(tmp_path, feed_host, webhook):
    write_config(tmp_path, one_feed(feed_host.url, webhook_table("hook", webhook.url)))
    poll(tmp_path)
    poll(tmp_path)
    state, backup = tmp_path / "state.json", tmp_path / "state.json.bak"
    assert json.loads(backup.read_text())["activity"]
    state.write_text(state.read_text()[:50])
    broken = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert broken.returncode == 2 and "state.json.bak" in broken.stderr
    state.write_bytes(backup.read_bytes())
    [feed_file] = (tmp_path / "state.json.feeds").glob("*.json")
    written_once = feed_file.read_bytes()  # the first poll's; the second changed nothing
    feed_file.write_text("")
    broken = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert broken.returncode == 2
    assert f"{feed_file.name}: the state file is empty" in broken.stderr
    assert "No previous version is kept" in broken.stderr
    feed_file.write_bytes(written_once)
    (tmp_path / ".state.json.tmp-left-by-a-kill").write_text("{")
    poll(tmp_path)
    assert webhook.received == []
    assert not list(tmp_path.glob(".state.json.tmp-*"))


def test_a_slow_destination_never_holds_up_another(
    tmp_path, feed_host, daemons, threaded_httpserver
):
    slow_server = threaded_httpserver
    arrivals: dict[str, float] = {}
    released = threading.Event()

    def slow(request):
        arrivals.setdefault("slow", time.monotonic())
        released.wait(10)
        return Response("ok")

    def quick(request):
        arrivals.setdefault("quick", time.monotonic())
        return Response("ok")

    slow_server.expect_request("/slow", method="POST").respond_with_handler(slow)
    slow_server.expect_request("/quick", method="POST").respond_with_handler(quick)
    try:
        write_config(
            tmp_path,
            one_feed(
                feed_host.url,
                webhook_table("slow", slow_server.url_for("/slow"), 'timeout = "20s"'),
                webhook_table("quick", slow_server.url_for("/quick")),
                watcher='interval = "1s"',
            ),
        )
        daemon = daemons(tmp_path, "--config", "watcher.toml")
        daemon.wait_for(lambda: "first poll" in daemon.stderr, "the baseline")
        feed_host.set_body(
            add_talk(
                feed_host.body, "SlowQuick01", "Both | Someone", "Fri, 12 Jun 2026 00:00:00 +0000"
            )
        )
        daemon.wait_for(lambda: "quick" in arrivals and "slow" in arrivals, "both deliveries")
        daemon.wait_for(lambda: "destination quick" in daemon.stderr, "the quick delivery")
        assert "destination slow" not in daemon.stderr, "the slow one is still in flight"
        released.set()
        daemon.wait_for(lambda: "destination slow" in daemon.stderr, "the slow delivery")
        assert daemon.stop() == 0
    finally:
        released.set()


def test_items_sharing_one_link_are_still_told_apart(tmp_path, httpserver, webhook):
    def feed(count: int) -> bytes:
        items = "".join(
            f"<item><title>Episode {n}</title><guid>ep-{n}</guid>"
            f"<link>https://podcast.example/</link></item>"
            for n in range(count, 0, -1)
        )
        return (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>P</title>'
            f"{items}</channel></rss>"
        ).encode()

    bodies = [feed(2), feed(3)]
    httpserver.expect_request("/p.xml").respond_with_handler(
        lambda request: Response(bodies[0], content_type="application/rss+xml")
    )
    write_config(
        tmp_path, one_feed(httpserver.url_for("/p.xml"), webhook_table("hook", webhook.url))
    )
    poll(tmp_path)
    bodies.pop(0)
    poll(tmp_path)
    assert [p["talk"]["guid"] for p in webhook.received] == ["ep-3"]


def test_a_rewritten_guid_is_recognised_by_its_link_alone(tmp_path, httpserver, webhook):
    def feed(guid_prefix: str) -> bytes:
        items = "".join(
            f"<item><title>Post {n}</title><guid>{guid_prefix}{n}</guid>"
            f"<link>https://blog.example/posts/{n}/</link></item>"
            for n in (2, 1)
        )
        return (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>'
            f"{items}</channel></rss>"
        ).encode()

    bodies = [feed("tag:old,"), feed("tag:new,")]
    httpserver.expect_request("/b.xml").respond_with_handler(
        lambda request: Response(bodies[0], content_type="application/rss+xml")
    )
    write_config(
        tmp_path, one_feed(httpserver.url_for("/b.xml"), webhook_table("hook", webhook.url))
    )
    poll(tmp_path)
    bodies.pop(0)
    result = poll(tmp_path)
    assert webhook.received == []
    assert "matches a seen talk by link" in result.stderr
