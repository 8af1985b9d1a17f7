"""ntfy: a push notification to a topic, published as JSON to the server's root URL.

`url` is the topic's URL (`https://ntfy.sh/mytopic`, or a self-hosted server's). The
message is POSTed as JSON to the server root (`https://ntfy.sh/`, with the topic in
the body), ntfy's documented alternative to its `Title`/`Click`/`Attach`/`Tags`
headers: feed text then never reaches an HTTP header, so a title needs no RFC 2047
encoding and can carry no line break into the request. Texts are plain (ntfy renders
markdown only when asked to), with control characters dropped, and cut to ntfy's
limits: the message 4,096 bytes, the title 1 KB, the tags 512 bytes together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from watcher.notifiers.base import Alert, Delivery, json_bytes, post_json
from watcher.notifiers.text import facts, fit, one_line, utf8_len, visible
from watcher.schema import ConfigError, Setting, duration, http_url, redact_url, text
from watcher.urls import safe_url

MESSAGE_BYTES = 4096
TITLE_BYTES = 1000  # ntfy: "limited to 1 KB"
URL_CHARS = 2048
TALK_TAGS = ["movie_camera"]
ALERT_TAGS = ["warning"]

_TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")


def topic_of(url: str) -> tuple[str, str]:
    """A topic URL → (the server's root URL, the topic)."""
    parts = urlsplit(url)
    root, _, topic = parts.path.rstrip("/").rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, root + "/", parts.query, "")), topic


def link(url: str | None) -> str | None:
    safe = safe_url(url)
    return safe if safe and len(safe) <= URL_CHARS else None


def summary(talk_facts: list[tuple[str, str]], lines: list[str]) -> str:
    parts = [f"{label}: {one_line(value)}" for label, value in talk_facts]
    text = "\n".join(parts)
    if lines:
        text += "\n\n" + "\n".join(one_line(line) for line in lines)
    return fit(visible(text).strip(), MESSAGE_BYTES, measure=utf8_len)


def render(delivery: Delivery, topic: str) -> dict[str, Any]:
    if delivery.alert is not None:
        return _alert(delivery.alert, topic)
    talk = delivery.talk
    message: dict[str, Any] = {
        "topic": topic,
        "title": fit(one_line(talk.title or "(untitled)"), TITLE_BYTES, measure=utf8_len),
        "message": summary(facts(talk), talk.first_lines) or "New talk",
        "tags": TALK_TAGS,
    }
    click = link(talk.url) or link(talk.video_url)
    if click:
        message["click"] = click
    thumbnail = link(talk.thumbnail)
    if thumbnail:
        message["attach"] = thumbnail
    video = link(talk.video_url)
    if video:
        message["actions"] = [{"action": "view", "label": "Watch video", "url": video}]
    return message


def _alert(alert: Alert, topic: str) -> dict[str, Any]:
    return {
        "topic": topic,
        "title": "watcher alert",
        "message": fit(one_line(alert.text), MESSAGE_BYTES, measure=utf8_len) or alert.kind,
        "tags": ALERT_TAGS,
        "priority": 4,
    }


class NtfyNotifier:
    TYPE: ClassVar[str] = "ntfy"
    # ntfy.sh lets a client burst 60 requests, then refills one every 5 s: stay at that.
    DEFAULT_RATE: ClassVar[float | None] = 0.2
    SETTINGS: ClassVar[Mapping[str, Setting]] = {
        "url": Setting(http_url, required=True, secret=True),  # the topic is its password
        "token": Setting(text, secret=True),
        "timeout": Setting(duration, default=10.0),
    }

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.root, self.topic = topic_of(settings["url"])
        self.token = settings["token"]
        self.timeout = settings["timeout"]

    @staticmethod
    def validate(settings: Mapping[str, Any], where: str) -> None:
        _, topic = topic_of(settings["url"])
        if not _TOPIC.match(topic):
            raise ConfigError(
                f"{where}.url: expected a topic URL like https://ntfy.sh/mytopic (a topic is"
                " 1 to 64 letters, digits, - or _)"
            )
        if settings["token"] is not None and not _TOKEN.match(settings["token"]):
            raise ConfigError(f"{where}.token: expected an access token, like tk_…")

    @staticmethod
    def describe(settings: Mapping[str, Any]) -> str:
        token = ", token" if settings["token"] else ""
        return f"ntfy {redact_url(settings['url'])}{token}"

    def preview(self, delivery: Delivery) -> tuple[str, list[str]]:
        shown = render(delivery, "***")  # the topic names who reads it: a secret
        return json.dumps(shown, indent=2, ensure_ascii=False), []

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        body = json_bytes(render(delivery, self.topic))
        await post_json(client, self.root, body, headers=headers, timeout=self.timeout)
