"""Which items are distinct talks, across polls: a shared guid or homepage link never
hides a real talk, a truncated document never announces a blank or a half-read talk,
and a poll that had to recover from broken XML is no sign that a failing feed is well."""

from __future__ import annotations

import json
import re

from tests.conftest import FeedHost, Recorder, add_talk, watcher_command, write_config

HOME = "https://conf.example.org/"
NEW = ("NeWtAlK0001", "A new talk | Someone | Somewhere", "Wed, 10 Jun 2026 00:00:00 +0000")


def config(feed: FeedHost, hook: Recorder) -> str:
    return f"""
[watcher]
state = "state.json"

[[feeds]]
name = "talks"
url = "{feed.url}"

[[destinations]]
name = "hook"
type = "webhook"
url = "{hook.url}"
"""


def poll(tmp_path):
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    return result


def feed_status(tmp_path) -> dict:
    result = watcher_command("status", "--config", "watcher.toml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["feeds"][0]


def homepage_only(feed: bytes) -> bytes:
    """The feed as some sites publish it: no guids, and every item links to the home page."""
    text = re.sub(r"<guid[^>]*>.*?</guid>", "", feed.decode())
    return re.sub(r"<link>.*?</link>", f"<link>{HOME}</link>", text).encode()


def titles(hook: Recorder) -> list[str]:
    return [payload["talk"]["raw_title"] for payload in hook.received]


def test_items_sharing_one_link_and_no_guid_are_each_announced_once(tmp_path, httpserver):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    feed.set_body(homepage_only(feed.body))
    write_config(tmp_path, config(feed, hook))
    poll(tmp_path)
    assert feed_status(tmp_path)["talks_seen"] == 3 and hook.received == []

    grown = homepage_only(add_talk(feed.body, *NEW))
    feed.set_body(grown)
    poll(tmp_path)
    assert titles(hook) == [NEW[1]]

    feed.set_body(grown.replace(b"\n", b"\n "))  # a new body, the same items
    poll(tmp_path)
    oldest_gone = re.sub(
        rb"<item>(?:(?!<item>).)*</item></channel>", b"</channel>", grown, flags=re.S
    )
    assert oldest_gone.count(b"<item>") == 3
    feed.set_body(oldest_gone)
    poll(tmp_path)
    assert titles(hook) == [NEW[1]], "an item's name changed when the oldest left the feed"


def cut_inside_first_item(feed: bytes) -> bytes:
    """The document as a server that dies mid-response leaves it: cut right after the first
    item's title, before its link and guid."""
    end = feed.index(b"</title>", feed.index(b"<item>")) + len(b"</title>")
    return feed[:end]


def test_a_truncated_document_announces_no_half_read_talk_and_is_no_recovery(tmp_path, httpserver):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    write_config(tmp_path, config(feed, hook))
    poll(tmp_path)
    feed.status = 503
    poll(tmp_path)
    poll(tmp_path)
    assert feed_status(tmp_path)["consecutive_failures"] == 2

    feed.status = 200
    whole = add_talk(feed.body, *NEW)
    feed.set_body(cut_inside_first_item(whole))
    result = poll(tmp_path)
    assert "item 1 skipped: the document ends inside it (truncated)" in result.stderr
    assert hook.received == []
    status = feed_status(tmp_path)
    assert status["degraded"] is True and status["consecutive_failures"] == 2
    assert status["last_error"].startswith("degraded: malformed feed")
    text = watcher_command("status", "--config", "watcher.toml", cwd=tmp_path).stdout
    assert "degraded: malformed feed" in text

    feed.set_body(whole)
    poll(tmp_path)
    assert titles(hook) == [NEW[1]]
    status = feed_status(tmp_path)
    assert (status["degraded"], status["consecutive_failures"], status["last_error"]) == (
        False,
        0,
        None,
    )
