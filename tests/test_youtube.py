"""A YouTube channel feed, as YouTube serves it, watched end to end: a new video is
announced once, with its own id, thumbnail and description, not a video it links to."""

from __future__ import annotations

import re

from tests.conftest import FIXTURES, FeedHost, Recorder, watcher_command, write_config

CHANNEL = FIXTURES / "wild" / "podtube--youtube.xml"  # a real channel feed
NEW_ID = "NeWvIdEo_01"


def with_new_video(feed: bytes) -> bytes:
    """The feed as YouTube serves it once the channel uploads one more video: a copy of its
    newest entry with another id and title, whose description links the old video."""
    text = feed.decode()
    entry = re.search(r"<entry>.*?</entry>", text, flags=re.S).group()
    old_id = re.search(r"<yt:videoId>(.*?)</yt:videoId>", entry).group(1)
    new = entry.replace(old_id, NEW_ID)
    new = re.sub(r"<title>.*?</title>", "<title>Part 2 | Ada Lovelace | PyCon</title>", new)
    new = re.sub(
        r"<media:description>",
        f"<media:description>Watch part 1 first: https://www.youtube.com/watch?v={old_id}\n",
        new,
        count=1,
    )
    start = text.index("<entry>")
    return (text[:start] + new + text[start:]).encode()


def test_a_new_video_on_a_channel_is_announced_once_as_itself(tmp_path, httpserver):
    feed, hook = FeedHost(httpserver, "/feeds/videos.xml"), Recorder(httpserver, "/hook")
    feed.set_body(CHANNEL.read_bytes())
    write_config(
        tmp_path,
        f"""
[watcher]
state = "state.json"

[[feeds]]
name = "channel"
url = "{feed.url}"

[[destinations]]
name = "hook"
type = "webhook"
url = "{hook.url}"
""",
    )
    poll = ["poll", "--config", "watcher.toml"]
    assert watcher_command(*poll, cwd=tmp_path).returncode == 0
    assert hook.received == []

    feed.set_body(with_new_video(feed.body))
    result = watcher_command(*poll, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert watcher_command(*poll, cwd=tmp_path).returncode == 0
    assert len(hook.received) == 1
    talk = hook.received[0]["talk"]
    assert (talk["title"], talk["speaker"], talk["event"]) == ("Part 2", "Ada Lovelace", "PyCon")
    assert talk["video_id"] == NEW_ID
    assert talk["video_url"] == f"https://www.youtube.com/watch?v={NEW_ID}"
    assert talk["url"] == f"https://www.youtube.com/watch?v={NEW_ID}"
    assert talk["thumbnail"] == f"https://i2.ytimg.com/vi/{NEW_ID}/hqdefault.jpg"
    assert talk["first_lines"][0].startswith("Watch part 1 first: https://www.youtube.com/")
    assert len(talk["first_lines"]) == 3
