"""Which items are distinct talks, across polls: a shared guid or homepage link never
hides a real talk, a truncated document never announces a blank or a half-read talk,
and a poll that had to recover from broken XML is no sign that a failing feed is well."""

from __future__ import annotations

import re

import pytest

from tests.conftest import (
    FeedHost,
    Recorder,
    add_talk,
    feed_status,
    one_feed,
    watcher_command,
    webhook_table,
    write_config,
)
from tests.store_helpers import record
from watcher.store import Store

HOME = "https://conf.example.org/"
NEW = ("NeWtAlK0001", "A new talk | Someone | Somewhere", "Wed, 10 Jun 2026 00:00:00 +0000")


def config(feed: FeedHost, hook: Recorder) -> str:
    return one_feed(feed.url, webhook_table("hook", hook.url))


def poll(tmp_path):
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    return result


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


def rss(*items: str) -> bytes:
    body = "".join(f"<item>{item}</item>" for item in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Pod</title>'
        f"<link>{HOME}</link>{body}</channel></rss>"
    ).encode()


def item(title: str, date: str = "", guid: str = "", link: str = HOME, media: str = "") -> str:
    parts = [f"<title>{title}</title>", f"<link>{link}</link>"]
    if date:
        parts.append(f"<pubDate>{date}</pubDate>")
    if media:
        parts.append(f'<enclosure url="{media}" length="1" type="audio/mpeg"/>')
    if guid:
        parts.append(f"<guid>{guid}</guid>")  # last, as many podcast feeds write it
    return "".join(parts)


A = item("Talk A", "Fri, 05 Jun 2026 10:00:00 +0000")
B_OLDER = item("Talk B", "Wed, 03 Jun 2026 10:00:00 +0000")
B_UNDATED = item("Talk B")


def polled(tmp_path, httpserver, *bodies: bytes) -> Recorder:
    """Each body served and polled in turn (the first is the baseline); the webhook."""
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    write_config(tmp_path, config(feed, hook))
    for body in bodies:
        feed.set_body(body)
        result = poll(tmp_path)
        assert result.returncode == 0, result.stderr
    return hook


@pytest.mark.parametrize("newcomer", [B_OLDER, B_UNDATED], ids=["older", "undated"])
def test_a_talk_seen_alone_stays_seen_when_another_item_shares_its_link(
    tmp_path, httpserver, newcomer
):
    """However the newcomer sorts, the talk seen alone is not announced again and the
    newcomer is announced once."""
    hook = polled(tmp_path, httpserver, rss(A), rss(newcomer, A), rss(newcomer, A))
    assert titles(hook) == ["Talk B"]


def test_items_sharing_a_guid_with_their_own_links_are_each_announced(tmp_path, httpserver):
    one = item("Episode 1", guid="ep", link="https://pod.example/1")
    two = item("Episode 2", guid="ep", link="https://pod.example/2")
    hook = polled(tmp_path, httpserver, rss(one), rss(two, one), rss(two, one))
    assert titles(hook) == ["Episode 2"]


def test_a_new_date_on_a_talk_that_shares_its_link_announces_nothing(tmp_path, httpserver):
    moved = item("Talk B", "Wed, 03 Jun 2026 12:00:00 +0000")
    hook = polled(tmp_path, httpserver, rss(A), rss(B_OLDER, A), rss(moved, A))
    assert titles(hook) == ["Talk B"]


def test_talks_sharing_title_and_link_but_not_their_file_are_distinct(tmp_path, httpserver):
    day1 = item(
        "Lightning talks", "Mon, 01 Jun 2026 10:00:00 +0000", media="https://p.example/1.mp3"
    )
    day2 = item(
        "Lightning talks", "Tue, 02 Jun 2026 10:00:00 +0000", media="https://p.example/2.mp3"
    )
    hook = polled(tmp_path, httpserver, rss(day1), rss(day2, day1))
    assert [p["talk"]["video_url"] for p in hook.received] == ["https://p.example/2.mp3"]


def test_an_episode_cut_inside_its_guid_is_announced_once_whole(tmp_path, httpserver):
    """Episodes that link to the show's home page and write their guid last: a response cut
    inside the new episode's guid must not announce it under its link, then again."""
    old = item("Episode 1", "Mon, 01 Jun 2026 10:00:00 +0000", guid="pod-ep-1")
    new = item("Episode 2", "Tue, 02 Jun 2026 10:00:00 +0000", guid="pod-ep-2-uuid")
    whole = rss(old, new)  # this feed lists the oldest first: the new episode is last
    cut = whole[: whole.index(b"pod-ep-2") + 4]
    hook = polled(tmp_path, httpserver, rss(old), cut, whole, whole)
    assert [p["talk"]["guid"] for p in hook.received] == ["pod-ep-2-uuid"]


def test_a_feed_that_is_always_a_little_broken_is_read_as_ever(tmp_path, httpserver):
    """A stray `&nbsp;` is malformed XML, but no truncation: the poll is healthy, and an
    episode with no guid and no link is announced as before."""
    episode = item(
        "Episode 3", "Wed, 03 Jun 2026 10:00:00 +0000", link="", media="https://p.example/3.mp3"
    )
    body = rss(A.replace("Talk A", "Talk&nbsp;A"))
    grown = rss(episode, A.replace("Talk A", "Talk&nbsp;A"))
    hook = polled(tmp_path, httpserver, body, grown)
    assert titles(hook) == ["Episode 3"]
    status = feed_status(tmp_path)
    assert (status["degraded"], status["last_error"]) == (False, None)


def test_state_from_before_item_keys_is_upgraded_without_announcing_old_items(tmp_path, httpserver):
    """The state of a feed whose items all share one guid, as the watcher kept it before it
    told them apart: only the first item, seen under the bare guid. The upgrade announces
    none of the items hidden until now; the next new one is announced."""
    items = [
        item(f"News {n}", f"Mon, 0{n} Jun 2026 10:00:00 +0000", guid="capsule") for n in (3, 2, 1)
    ]
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    write_config(tmp_path, config(feed, hook))
    store = Store(tmp_path / "state.json")
    seen = [("capsule", {"guid:capsule"})]
    record(store, "talks", seen=seen, at="2026-06-03T11:00:00Z", baselined=True, url=feed.url)
    store.close()
    feed.set_body(rss(*items))
    result = poll(tmp_path)
    assert "2 items that share a guid with a talk seen before recorded as seen" in result.stderr
    feed.set_body(rss(item("News 4", "Thu, 04 Jun 2026 10:00:00 +0000", guid="capsule"), *items))
    poll(tmp_path)
    assert titles(hook) == ["News 4"]
    assert feed_status(tmp_path)["talks_seen"] == 4
