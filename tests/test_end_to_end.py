"""`watcher poll`, run as a process, against a real feed host, webhook and Slack
endpoints and an SMTP server, all on 127.0.0.1."""

from __future__ import annotations

import json

from slack_sdk.models.blocks import Block
from slack_sdk.models.blocks.blocks import HeaderBlock

from tests.conftest import add_talk, watcher_command, write_config

NEW_VIDEO = "AbC123xYz_9"
NEW_TITLE = "Deterministic simulation at scale | Ada Lovelace | Bug Bash"


def config_for(feed_url, webhook, slack, smtp_port, notify_existing=0) -> str:
    return f"""
[watcher]
state = "state/watcher.json"
interval = "5m"

[[feeds]]
name = "talks"
url = "{feed_url}"
notify = ["hook", "team-slack", "mail", "screen"]
notify_existing = {notify_existing}

[[destinations]]
name = "hook"
type = "webhook"
url = "{webhook.url}"

[[destinations]]
name = "team-slack"
type = "slack"
url = "${{SLACK_URL}}"

[[destinations]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = {smtp_port}
from = "watcher@example.com"
to = ["team@example.com", "ops@example.com"]

[[destinations]]
name = "screen"
type = "console"
"""


def test_second_poll_announces_exactly_the_new_talk_everywhere_once(
    tmp_path, feed_host, webhook, slack, smtp_server
):
    write_config(tmp_path, config_for(feed_host.url, webhook, slack, smtp_server.port))
    env = {"SLACK_URL": slack.url}

    first = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "first poll, 3 talks recorded as seen, 0 announced" in first.stderr
    assert webhook.received == [] and slack.received == [] and smtp_server.messages == []
    assert "New talk" not in first.stdout

    feed_host.set_body(
        add_talk(feed_host.body, NEW_VIDEO, NEW_TITLE, "Tue, 09 Jun 2026 10:00:00 +0000")
    )
    second = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr

    assert len(webhook.received) == 1
    payload = webhook.received[0]
    assert payload["type"] == "talk.new"
    assert payload["feed"] == "talks"
    assert webhook.headers[0]["Content-Type"] == "application/json"
    assert webhook.headers[0]["Webhook-Id"] == payload["id"]
    talk = payload["talk"]
    assert talk["title"] == "Deterministic simulation at scale"
    assert talk["speaker"] == "Ada Lovelace"
    assert talk["event"] == "Bug Bash"
    assert talk["raw_title"] == NEW_TITLE
    assert talk["video_id"] == NEW_VIDEO
    assert talk["video_url"] == f"https://www.youtube.com/watch?v={NEW_VIDEO}"
    assert talk["guid"] == f"https://blog.randomdomain.co.za/youtube/{NEW_VIDEO.lower()}/"
    assert talk["published"] == "2026-06-09T10:00:00Z"
    assert talk["slide_count"] == 64 and talk["slides_present"] == 64
    assert talk["duration"] == 954
    assert talk["thumbnail"].endswith(f"/{NEW_VIDEO}/slide_000.png")
    assert talk["first_lines"][0] == "Hello, my name is Xiao, and I am a GPU software engineer."

    assert len(slack.received) == 1
    message = slack.received[0]
    assert "Deterministic simulation at scale" in message["text"]
    blocks = Block.parse_all(message["blocks"])
    for block in blocks:
        block.validate_json()
    assert isinstance(blocks[0], HeaderBlock)
    assert blocks[0].text.text == "Deterministic simulation at scale"
    flat = json.dumps(message)
    for fact in (
        "Ada Lovelace",
        "Bug Bash",
        "64",
        "15:54",
        talk["video_url"],
        talk["url"],
        talk["thumbnail"],
    ):
        assert fact in flat

    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert mail["Subject"] == "New talk: Deterministic simulation at scale"
    assert smtp_server.envelopes[0] == (
        "watcher@example.com",
        ["team@example.com", "ops@example.com"],
    )
    assert mail.get_body(("plain",)).get_content().count("Ada Lovelace") == 1
    assert talk["video_url"] in mail.get_body(("html",)).get_content()

    assert second.stdout.count("New talk [talks]: Deterministic simulation at scale") == 1
    assert second.stdout.count("New talk") == 1

    third = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path, env=env)
    assert third.returncode == 0, third.stderr
    assert feed_host.responses[-1] == 304
    assert len(webhook.received) == 1 and len(slack.received) == 1
    assert len(smtp_server.messages) == 1 and "New talk" not in third.stdout


def test_conditional_get_sends_stored_validators(tmp_path, feed_host, webhook, slack, smtp_server):
    write_config(tmp_path, config_for(feed_host.url, webhook, slack, smtp_server.port))
    env = {"SLACK_URL": slack.url}
    for _ in range(2):
        result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr
    first, second = feed_host.requests
    assert "If-None-Match" not in first
    assert second["If-None-Match"] == feed_host.etag
    assert second["If-Modified-Since"] == feed_host.modified
    assert first["User-Agent"].startswith("watcher/")
    assert feed_host.responses == [200, 304]


def test_notify_existing_announces_the_newest_on_first_poll(
    tmp_path, feed_host, webhook, slack, smtp_server
):
    write_config(
        tmp_path, config_for(feed_host.url, webhook, slack, smtp_server.port, notify_existing=2)
    )
    result = watcher_command(
        "poll", "--config", "watcher.toml", cwd=tmp_path, env={"SLACK_URL": slack.url}
    )
    assert result.returncode == 0, result.stderr
    titles = [p["talk"]["title"] for p in webhook.received]
    # The two newest, oldest first: the 14 May talk listed first in the feed, then 8 June.
    assert titles == [
        "Building confidence in an always-in-motion distributed streaming system",
        "WWDC26: Optimize custom machine learning operations with Metal tensors",
    ]
    assert len(slack.received) == 2 and len(smtp_server.messages) == 2
