"""What reaches Discord, Teams and ntfy readers: a huge, hostile talk (and alert) stays
within each service's documented limits, pings nobody, links nowhere but http(s), and
carries no control character."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import SEED_FEED
from tests.test_render import strings
from watcher.feed import parse_feed
from watcher.notifiers import apprise, discord, ntfy, teams
from watcher.notifiers.base import (
    Alert,
    Delivery,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnreachableError,
    json_bytes,
)
from watcher.notifiers.text import utf16_len
from watcher.talk import Talk

EVIL = (
    "@everyone @here <@123> <@!123> <@&456> <#789> <at>Boss</at> [x](javascript:alert(1))"
    " [y][1] <https://evil.example|click> **bold** ||spoiler|| # heading"
    " \x00\x07\x1b[31m\u202eevil\u2066\x85\r\n"
)
PINGS = re.compile(r"@(?:everyone|here)|<[@#]|<at>", re.IGNORECASE)
LINK = re.compile(r"(?<!\\)\]\(|(?<!\\)\]\[|<https?:")  # a markdown link, reference or autolink
UNSEEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def seed_talk() -> Talk:
    return parse_feed(SEED_FEED.read_bytes()).talks[0]


def hostile_talk(**changes) -> Talk:
    fields = seed_talk().to_dict() | {
        "title": ("Title " + EVIL) * 100,  # over 10,000 characters
        "speaker": EVIL * 50,
        "event": EVIL * 50,
        "first_lines": [EVIL * 100] * 3,
        "url": "javascript:alert(1)",
        "video_url": "data:text/html,<script>alert(1)</script>",
        "thumbnail": "javascript:alert(2)",
    }
    return Talk.from_dict(fields | changes)


WIDE = "😀" * 10_000  # 2 UTF-16 units, 4 UTF-8 bytes each
TALKS = {
    "hostile": hostile_talk(),
    "hostile, real links": hostile_talk(
        url="https://talks.example.org/a",
        video_url="https://www.youtube.com/watch?v=toO9j5NKg0c",
        thumbnail="https://talks.example.org/a.png",
    ),
    "wide": hostile_talk(title=WIDE, speaker=WIDE, event=WIDE, first_lines=[WIDE] * 3),
}
ALERT = Alert("dead_letters", "dest", EVIL * 200, "2026-06-08T00:00:00Z")


def deliveries():
    for name, talk in TALKS.items():
        yield pytest.param(Delivery("id", "talks", "dest", talk), id=name)
    yield pytest.param(Delivery("id", "talks", "dest", ALERT.as_talk(), ALERT), id="alert")


def assert_harmless(message: dict) -> None:
    for text in strings(message):
        assert not PINGS.search(text), text[:200]
        assert not LINK.search(text), text[:200]
        assert not UNSEEN.search(text), text[:200]


def urls(value, keys: set[str]):
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, str):
                yield item
            yield from urls(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from urls(item, keys)


def assert_http_links(message: dict, keys: set[str]) -> None:
    for url in urls(message, keys):
        assert url.startswith(("https://", "http://")), url


def validate_discord(message: dict) -> None:
    """Discord's documented limits, counted in UTF-16 units (the stricter way)."""
    assert message["allowed_mentions"] == {"parse": []}
    assert utf16_len(message.get("content", "")) <= 2000
    embeds = message.get("embeds", [])
    assert len(embeds) <= 10 and (embeds or message.get("content"))
    for embed in embeds:
        title = embed.get("title", "")
        description = embed.get("description", "")
        fields = embed.get("fields", [])
        footer = embed.get("footer", {}).get("text", "")
        assert utf16_len(title) <= 256 and utf16_len(description) <= 4096
        assert len(fields) <= 25 and utf16_len(footer) <= 2048
        for item in fields:
            assert 0 < utf16_len(item["name"]) <= 256 and 0 < utf16_len(item["value"]) <= 1024
        total = utf16_len(title) + utf16_len(description) + utf16_len(footer)
        total += sum(utf16_len(f["name"]) + utf16_len(f["value"]) for f in fields)
        assert total <= 6000, total


@pytest.mark.parametrize("delivery", list(deliveries()))
def test_discord_payload_is_within_limits_and_harmless(delivery):
    message = discord.render(delivery)
    validate_discord(message)
    assert_harmless(message)
    assert_http_links(message, {"url"})


def test_discord_keeps_a_plain_talk_whole_and_links_real_urls():
    talk = seed_talk()
    [embed] = discord.render(Delivery("id", "talks", "dest", talk))["embeds"]
    assert embed["title"] == talk.title and embed["url"] == talk.url
    assert embed["thumbnail"] == {"url": talk.thumbnail}
    assert embed["description"].startswith("> Hello, my name is Xiao")
    assert {"name": "Video", "value": talk.video_url, "inline": True} in embed["fields"]


def test_discord_escapes_mentions_and_markdown_readably():
    talk = seed_talk()
    talk = Talk.from_dict(talk.to_dict() | {"title": "@everyone [x](javascript:alert(1)) *b*"})
    [embed] = discord.render(Delivery("id", "talks", "dest", talk))["embeds"]
    assert embed["title"] == "@\u200beveryone \\[x\\]\\(javascript:alert\\(1\\)\\) \\*b\\*"


def test_discord_reads_retry_after_from_its_json_answer():
    assert discord.retry_after('{"message": "You are being rate limited.", "retry_after": 1.5}')
    assert discord.retry_after('{"retry_after": 64.57, "global": false}') == 64.57
    assert discord.retry_after("nope") is None


@pytest.mark.parametrize("delivery", list(deliveries()))
def test_teams_card_is_within_28_kb_and_harmless(delivery):
    message = teams.render(delivery)
    assert len(json_bytes(message)) <= 28_000
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["type"] == "TextBlock" and card["body"][0]["wrap"] is True
    assert_harmless(message)
    assert_http_links(message, {"url"})
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl"


def test_teams_card_has_title_facts_image_and_buttons():
    talk = seed_talk()
    card = teams.render(Delivery("id", "talks", "dest", talk))["attachments"][0]["content"]
    kinds = [block["type"] for block in card["body"]]
    assert kinds == ["TextBlock", "Image", "FactSet", "TextBlock"]
    assert card["body"][0]["text"] == talk.title
    assert card["body"][1]["url"] == talk.thumbnail
    assert {"title": "Speaker", "value": "Apple"} in card["body"][2]["facts"]
    assert [(a["title"], a["url"]) for a in card["actions"]] == [
        ("Talk page", talk.url),
        ("Watch video", talk.video_url),
    ]


def test_teams_cuts_the_first_lines_before_anything_else():
    delivery = Delivery("id", "talks", "dest", seed_talk())
    whole = len(json_bytes(teams.render(delivery)))
    without_lines = teams.render(
        Delivery("id", "talks", "dest", Talk.from_dict(seed_talk().to_dict() | {"first_lines": []}))
    )
    limit = len(json_bytes(without_lines)) + 20
    assert limit < whole
    cut = teams.render(delivery, limit=limit)
    assert len(json_bytes(cut)) <= limit
    assert cut == without_lines
    tiny = teams.render(delivery, limit=1500)
    assert len(json_bytes(tiny)) <= 1500
    assert tiny["attachments"][0]["content"]["body"][0]["text"].startswith("WWDC26")


def test_teams_neutralises_links_and_mentions_readably():
    talk = Talk.from_dict(seed_talk().to_dict() | {"title": "[x](javascript:alert(1)) <at>B</at>"})
    card = teams.render(Delivery("id", "talks", "dest", talk))["attachments"][0]["content"]
    assert card["body"][0]["text"] == "[x]\u200b(javascript:alert(1)) <\u200bat>B<\u200b/at>"
    talk = Talk.from_dict(seed_talk().to_dict() | {"speaker": "@channel"})
    card = teams.render(Delivery("id", "talks", "dest", talk))["attachments"][0]["content"]
    assert {"title": "Speaker", "value": "@\u200bchannel"} in card["body"][2]["facts"]


@pytest.mark.parametrize("delivery", list(deliveries()))
def test_ntfy_message_is_within_limits_and_harmless(delivery):
    message = ntfy.render(delivery, "mytopic")
    assert message["topic"] == "mytopic"
    assert len(message["title"].encode()) <= 1000 and "\n" not in message["title"]
    assert 0 < len(message["message"].encode()) <= 4096
    assert len(",".join(message["tags"]).encode()) <= 512
    assert not UNSEEN.search(json.dumps(message, ensure_ascii=False))
    assert_http_links(message, {"click", "attach", "url"})
    if delivery.alert is None and delivery.talk.url == "javascript:alert(1)":
        assert "click" not in message and "attach" not in message and "actions" not in message


def test_ntfy_message_reads_as_a_plain_summary():
    talk = seed_talk()
    message = ntfy.render(Delivery("id", "talks", "dest", talk), "mytopic")
    assert message == {
        "topic": "mytopic",
        "title": talk.title,
        "message": message["message"],
        "tags": ["movie_camera"],
        "click": talk.url,
        "attach": talk.thumbnail,
        "actions": [{"action": "view", "label": "Watch video", "url": talk.video_url}],
    }
    assert message["message"].startswith("Speaker: Apple\nSlides: 64\nDuration: 15:54\n")
    assert "\n\nHello, my name is Xiao" in message["message"]


@pytest.mark.parametrize(
    ("url", "root", "topic"),
    [
        ("https://ntfy.sh/mytopic", "https://ntfy.sh/", "mytopic"),
        ("https://push.example.org/ntfy/alerts/", "https://push.example.org/ntfy/", "alerts"),
        ("http://127.0.0.1:8080/t?auth=abc", "http://127.0.0.1:8080/?auth=abc", "t"),
    ],
)
def test_ntfy_publishes_to_the_server_root(url, root, topic):
    assert ntfy.topic_of(url) == (root, topic)


@pytest.mark.parametrize("delivery", list(deliveries()))
def test_apprise_text_is_short_and_harmless(delivery):
    title, body = apprise.render(delivery)
    assert 0 < len(title) <= 250 and "\n" not in title
    assert 0 < len(body) <= 1900
    assert_harmless({"title": title, "body": body})
    for line in body.splitlines():
        if line.startswith(("Talk: ", "Video: ")):
            assert line.split(": ", 1)[1].startswith("https://")


def test_apprise_errors_are_told_apart_and_never_repeat_the_url():
    url = "tgram://123456:ABCDEFsecret/987654"
    logged = (
        "2026-06-08 10:00:00,000 - WARNING - Failed for ABCDEFsecret: Bad Request, error=400.\n"
    )
    error = apprise.error_from(logged, url)
    assert isinstance(error, PermanentDeliveryError) and "ABCDEFsecret" not in str(error)
    assert str(error) == "apprise tgram: Failed for ***: Bad Request, error=400."
    assert isinstance(apprise.error_from("… error=503.", url), TransientDeliveryError)
    assert isinstance(apprise.error_from("… error=429.", url), TransientDeliveryError)
    refused = apprise.error_from("A Connection error occurred sending to x.", url)
    assert isinstance(refused, UnreachableError)
