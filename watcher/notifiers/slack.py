"""Slack incoming webhook: a Block Kit message with a plain `text` fallback.

Feed text is untrusted. Every feed-provided string is escaped (`&`, `<`, `>`),
so nothing in a title or transcript can become a mention (`<!channel>`) or a
link, and every text is cut to Block Kit's limits so Slack never rejects it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from watcher.messages import MessageTemplate, template_setting
from watcher.notifiers.base import Alert, Delivery, Digest, json_bytes, post_json
from watcher.notifiers.text import facts
from watcher.schema import Setting, duration, http_url, redact_url
from watcher.talk import Talk

HEADER_CHARS = 150
SECTION_CHARS = 3000
CONTEXT_ELEMENTS = 10
ALT_TEXT_CHARS = 2000
URL_CHARS = 3000
FALLBACK_CHARS = 3000

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def fit(text: str, limit: int) -> str:
    """Escape `text` and cut it (never inside an escape) to at most `limit` characters."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    pieces: list[str] = []
    used = 0
    for ch in text:
        piece = _ESCAPES.get(ch, ch)
        if used + len(piece) > limit - 1:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces).rstrip() + "…"


def render(delivery: Delivery, template: MessageTemplate | None = None) -> dict[str, Any]:
    if delivery.alert is not None:
        return _alert(delivery.alert)
    talk = delivery.talk
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": fit(talk.title or "(untitled)", HEADER_CHARS)},
        },
    ]
    context = [
        {"type": "mrkdwn", "text": fit(f"*{label}:* {value}", SECTION_CHARS)}
        for label, value in facts(talk)
    ][:CONTEXT_ELEMENTS]
    if context:
        blocks.append({"type": "context", "elements": context})
    if template is not None:
        main = cut_escaped(template.render(talk, delivery.feed), SECTION_CHARS)
    elif talk.first_lines:
        budget = SECTION_CHARS // len(talk.first_lines) - 3
        main = "\n".join(f"> {fit(line, budget)}" for line in talk.first_lines)
    if template is not None or talk.first_lines:
        section: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": main}}
        if talk.thumbnail and len(talk.thumbnail) <= URL_CHARS:
            section["accessory"] = {
                "type": "image",
                "image_url": talk.thumbnail,
                "alt_text": fit(f"First slide of {talk.title}", ALT_TEXT_CHARS),
            }
        blocks.append(section)
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
        for label, url in (("Talk page", talk.url), ("Watch video", talk.video_url))
        if url and len(url) <= URL_CHARS
    ]
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": fallback_text(delivery.feed, talk), "blocks": blocks}


MAX_BLOCKS = 50


def problems(message: dict[str, Any]) -> list[str]:
    """How a message breaks Slack's documented limits (none, as rendered by `render`)."""
    found = []
    blocks = message.get("blocks", [])
    if len(blocks) > MAX_BLOCKS:
        found.append(f"{len(blocks)} blocks, over Slack's {MAX_BLOCKS}")
    if len(message.get("text", "")) > FALLBACK_CHARS:
        found.append(f"text over {FALLBACK_CHARS} characters")
    for block in blocks:
        text = block.get("text", {}).get("text", "")
        limit = HEADER_CHARS if block["type"] == "header" else SECTION_CHARS
        if len(text) > limit:
            found.append(f"a {block['type']} block's text over {limit} characters")
    return found


def cut_escaped(text: str, limit: int) -> str:
    """Text already escaped (a template's), cut to `limit` without splitting an escape."""
    if len(text) <= limit:
        return text or " "
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + "…"


def fallback_text(feed: str, talk: Talk) -> str:
    parts = [f"New talk: {talk.title}"]
    if talk.speaker:
        parts.append(f"by {talk.speaker}")
    if talk.event:
        parts.append(f"at {talk.event}")
    text = fit(" ".join(parts), FALLBACK_CHARS - URL_CHARS // 3)
    link = talk.url or talk.video_url
    return f"{text} {escape(link)}" if link and len(link) < URL_CHARS // 3 else text


def render_digest(digest: Digest) -> list[dict[str, Any]]:
    """One message, or several when its blocks would pass Slack's 50: a header, then per
    event a context line and a section per talk."""
    by_event: dict[str, list[Talk]] = {}
    for item in digest.items:
        by_event.setdefault(item.talk.event or "", []).append(item.talk)
    blocks: list[dict[str, Any]] = []
    for event, talks in by_event.items():
        if event:
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": fit(f"*{event}*", SECTION_CHARS)}],
                }
            )
        blocks += [
            {"type": "section", "text": {"type": "mrkdwn", "text": _digest_line(talk)}}
            for talk in talks
        ]
    count = len(digest.items)
    title = f"{count} new talk{'s' if count != 1 else ''}"
    per_message = MAX_BLOCKS - 1
    messages = []
    for start in range(0, len(blocks), per_message):
        header = {"type": "header", "text": {"type": "plain_text", "text": title}}
        messages.append({"text": title, "blocks": [header, *blocks[start : start + per_message]]})
    return messages


def _digest_line(talk: Talk) -> str:
    title = fit(talk.title or "(untitled)", HEADER_CHARS)
    link = talk.url or talk.video_url
    target = escape(link).replace("|", "%7C") if link else ""
    named = f"<{target}|{title}>" if link and len(link) <= URL_CHARS else f"*{title}*"
    facts_line = " · ".join(fit(str(value), 200) for _, value in facts(talk))
    return f"{named}\n{facts_line}" if facts_line else named


def _alert(alert: Alert) -> dict[str, Any]:
    text = fit(f"watcher alert: {alert.text}", SECTION_CHARS - 10)
    block = {"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {text}"}}
    return {"text": fit(f"watcher alert: {alert.text}", FALLBACK_CHARS), "blocks": [block]}


class SlackNotifier:
    TYPE: ClassVar[str] = "slack"
    DEFAULT_RATE: ClassVar[float | None] = 1.0  # Slack allows one message per second per webhook
    SETTINGS: ClassVar[Mapping[str, Setting]] = {
        "url": Setting(http_url, required=True, secret=True),
        "timeout": Setting(duration, default=10.0),
        "template": Setting(template_setting("slack")),
    }

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.url = settings["url"]
        self.timeout = settings["timeout"]
        self.template: MessageTemplate | None = settings.get("template")

    @staticmethod
    def validate(settings: Mapping[str, Any], where: str) -> None:
        pass

    @staticmethod
    def describe(settings: Mapping[str, Any]) -> str:
        return f"slack {redact_url(settings['url'])}"

    def preview(self, delivery: Delivery) -> tuple[str, list[str]]:
        message = render(delivery, self.template)
        return json.dumps(message, indent=2, ensure_ascii=False), problems(message)

    async def send_digest(self, digest: Digest, client: httpx.AsyncClient) -> None:
        """In order; a failure after the first message resends the digest whole later."""
        for message in render_digest(digest):
            await post_json(client, self.url, json_bytes(message), timeout=self.timeout)

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None:
        await post_json(
            client, self.url, json_bytes(render(delivery, self.template)), timeout=self.timeout
        )
