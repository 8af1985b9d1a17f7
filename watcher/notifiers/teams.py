"""Microsoft Teams Workflows webhook: an Adaptive Card in a `message` envelope.

    {"type": "message", "attachments": [{"contentType":
      "application/vnd.microsoft.card.adaptive", "content": {"type": "AdaptiveCard", …}}]}

Feed text is untrusted. TextBlocks and facts render a subset of markdown, so a
zero-width space follows every `]` (no `[x](javascript:…)` link can form) and every
`<` (no `<at>` mention, no `<https://…>` autolink) and every `@` (no `@channel`
text, even where Teams would never read it as a mention); control characters go.
Only http(s) URLs reach the image and the buttons. The whole message stays under
Teams' 28 KB: the first lines are cut first, then every text.
"""

from __future__ import annotations

from typing import Any, ClassVar

from watcher.notifiers.base import Alert, Delivery, JsonWebhookNotifier, json_bytes
from watcher.notifiers.text import facts, fit, one_line
from watcher.urls import safe_url

MESSAGE_BYTES = 28_000  # Teams: "the message size limit is 28 KB"
TITLE_CHARS = 300
FACT_TITLE_CHARS = 100
FACT_VALUE_CHARS = 500
LINE_CHARS = 1000
ALERT_CHARS = 2000
URL_CHARS = 2048
CARD_VERSION = "1.4"

ZWSP = "\u200b"
ESCAPES = {"]": "]" + ZWSP, "<": "<" + ZWSP, "@": "@" + ZWSP}


def escape(text: str, limit: int) -> str:
    return fit(one_line(text), max(limit, 1), ESCAPES)


def link(url: str | None) -> str | None:
    safe = safe_url(url)
    return safe if safe and len(safe) <= URL_CHARS else None


def envelope(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def render(delivery: Delivery, limit: int = MESSAGE_BYTES) -> dict[str, Any]:
    """The card, within `limit` bytes of JSON: the first lines go first, then every text
    is cut shorter, until it fits."""
    if delivery.alert is not None:
        return _alert(delivery.alert)
    lines = list(delivery.talk.first_lines)
    shrink = 1
    while True:
        message = _card(delivery, lines, shrink)
        if len(json_bytes(message)) <= limit or shrink > 1024:
            return message
        if lines:
            lines.pop()
        else:
            shrink *= 2


def _card(delivery: Delivery, lines: list[str], shrink: int) -> dict[str, Any]:
    talk = delivery.talk
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": escape(talk.title or "(untitled)", TITLE_CHARS // shrink),
            "wrap": True,
            "size": "Large",
            "weight": "Bolder",
            "style": "heading",
        }
    ]
    thumbnail = link(talk.thumbnail)
    if thumbnail and shrink == 1:
        body.append(
            {
                "type": "Image",
                "url": thumbnail,
                "altText": escape(f"First slide of {talk.title}", 200),
                "size": "Large",
            }
        )
    pairs = [
        {
            "title": escape(label, FACT_TITLE_CHARS // shrink),
            "value": escape(value, FACT_VALUE_CHARS // shrink),
        }
        for label, value in facts(talk)
    ]
    if pairs:
        body.append({"type": "FactSet", "facts": pairs})
    if lines:
        body.append(
            {
                "type": "TextBlock",
                "text": "\n\n".join(escape(line, LINE_CHARS // shrink) for line in lines),
                "wrap": True,
                "isSubtle": True,
            }
        )
    actions = [
        {"type": "Action.OpenUrl", "title": label, "url": url}
        for label, url in (("Talk page", link(talk.url)), ("Watch video", link(talk.video_url)))
        if url and shrink == 1
    ]
    return envelope(body, actions)


def _alert(alert: Alert) -> dict[str, Any]:
    block = {
        "type": "TextBlock",
        "text": "⚠️ " + escape(f"watcher alert: {alert.text}", ALERT_CHARS),
        "wrap": True,
        "color": "Attention",
        "weight": "Bolder",
    }
    return envelope([block], [])


class TeamsNotifier(JsonWebhookNotifier):
    TYPE: ClassVar[str] = "teams"
    # Teams throttles a webhook past four requests a second; stay well below.
    DEFAULT_RATE: ClassVar[float | None] = 1.0

    def render(self, delivery: Delivery) -> dict[str, Any]:
        return render(delivery)
