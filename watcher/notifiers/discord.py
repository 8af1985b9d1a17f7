"""Discord webhook: one embed per talk, `allowed_mentions: {"parse": []}` always.

Feed text is untrusted. A zero-width space follows every `@` and `<`, so no title
can spell `@everyone`, `@here`, `<@id>`, `<@&role>` or `<#channel>`; Discord's
markdown characters are escaped with a backslash, so no text becomes a masked link
(`[x](javascript:…)`), bold or a spoiler; and even a mention that got through would
not ping, as `allowed_mentions` allows none. Every text is cut to Discord's embed
limits (counted in UTF-16 code units, which is never less than in characters), so
Discord never rejects a message for its size.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from watcher.notifiers.base import Alert, Delivery, JsonWebhookNotifier
from watcher.notifiers.text import facts, fit, one_line, utf16_len
from watcher.urls import safe_url

CONTENT_CHARS = 2000
TITLE_CHARS = 256
DESCRIPTION_CHARS = 4096
FIELDS = 25
FIELD_NAME_CHARS = 256
FIELD_VALUE_CHARS = 1024
FOOTER_CHARS = 2048
EMBED_CHARS = 6000  # title, description, field names and values, footer: all together
URL_CHARS = 2048  # not a documented Discord limit: a longer link is left out
COLOR = 0x5865F2

ZWSP = "\u200b"
ESCAPES = {
    "@": "@" + ZWSP,
    "<": "<" + ZWSP,
    **{ch: "\\" + ch for ch in "\\*_~|`[]()"},
}
LINE_START = "#->"  # a heading, a list or a quote only where a line starts
IN_TEXT_URL = "[]()*_~|`\\"  # percent-encoded in a link shown as text
NO_MENTIONS: dict[str, list[str]] = {"parse": []}

_RETRY_AFTER = re.compile(r'"retry_after"\s*:\s*([0-9]+(?:\.[0-9]+)?)')


def escape(text: str, limit: int) -> str:
    text = one_line(text)
    lead = "\\" if text[:1] in LINE_START and text else ""
    return lead + fit(text, limit - len(lead), ESCAPES, utf16_len)


def link(url: str | None) -> str | None:
    safe = safe_url(url)
    return safe if safe and len(safe) <= URL_CHARS else None


def text_link(url: str) -> str:
    """A link shown as a field's text: nothing in it that Discord's markdown reads."""
    return "".join(f"%{ord(ch):02X}" if ch in IN_TEXT_URL else ch for ch in url)


def render(delivery: Delivery) -> dict[str, Any]:
    if delivery.alert is not None:
        return _alert(delivery.alert)
    return {"embeds": [embed(delivery)], "allowed_mentions": NO_MENTIONS}


def embed(delivery: Delivery) -> dict[str, Any]:
    talk = delivery.talk
    title = escape(talk.title or "(untitled)", TITLE_CHARS)
    footer = escape(f"watcher · {delivery.feed}", 200)
    pairs = [(label, escape(value, FIELD_VALUE_CHARS)) for label, value in facts(talk)]
    video = link(talk.video_url)
    if video and link(talk.url) not in (None, video) and len(text_link(video)) <= FIELD_VALUE_CHARS:
        pairs.append(("Video", text_link(video)))
    named = [(escape(label, FIELD_NAME_CHARS), value) for label, value in pairs[:FIELDS]]
    fields = [{"name": name, "value": value, "inline": True} for name, value in named]
    used = utf16_len(title) + utf16_len(footer)
    used += sum(utf16_len(name) + utf16_len(value) for name, value in named)
    room = min(DESCRIPTION_CHARS, EMBED_CHARS - used)
    result: dict[str, Any] = {"title": title, "color": COLOR}
    url = link(talk.url) or video
    if url:
        result["url"] = url
    if talk.first_lines and room > 100:
        budget = room // len(talk.first_lines) - 3  # "> " and the line break
        result["description"] = "\n".join(f"> {escape(line, budget)}" for line in talk.first_lines)
    thumbnail = link(talk.thumbnail)
    if thumbnail:
        result["thumbnail"] = {"url": thumbnail}
    if fields:
        result["fields"] = fields
    result["footer"] = {"text": footer}
    return result


def _alert(alert: Alert) -> dict[str, Any]:
    text = escape(f"watcher alert: {alert.text}", CONTENT_CHARS - 3)
    return {"content": f"⚠️ {text}", "allowed_mentions": NO_MENTIONS}


def retry_after(excerpt: str) -> float | None:
    """The `retry_after` (seconds) of Discord's JSON answer to a rate-limited request."""
    match = _RETRY_AFTER.search(excerpt)
    return float(match.group(1)) if match else None


class DiscordNotifier(JsonWebhookNotifier):
    TYPE: ClassVar[str] = "discord"
    # Discord documents no fixed webhook rate (its headers tell it as it goes); 30 messages
    # a minute per channel is what it is widely seen to allow, so stay at one per 2 s.
    DEFAULT_RATE: ClassVar[float | None] = 0.5

    def render(self, delivery: Delivery) -> dict[str, Any]:
        return render(delivery)

    def retry_hint(self, excerpt: str) -> float | None:
        return retry_after(excerpt)
