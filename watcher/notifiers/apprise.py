"""Apprise (optional extra, `pip install 'watcher[apprise]'`): the long tail of services.

`url` is an Apprise URL (`tgram://…`, `matrix://…`, `pover://…`, `json://…`), a secret:
it is shown as its scheme only. The talk goes as a plain-text title and body. What
Apprise lets us know of a failure is whether it worked and what it logged: a logged
`error=4xx` (but 408 and 429) is a permanent rejection, a connection error means the
service did not answer, anything else is retried. Feed text has control characters
dropped and a zero-width space after every `@`, `<` and `]` (no `@everyone`, `@room`,
`<!channel>`, `<@id>` or `[x](…)` link, should a service read the text as markdown),
and is cut to a length most services take.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from watcher.notifiers.base import (
    Alert,
    Delivery,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnreachableError,
)
from watcher.notifiers.text import facts, fit, one_line
from watcher.schema import ConfigError, Setting, duration, text
from watcher.urls import safe_url

TITLE_CHARS = 250
BODY_CHARS = 1900  # under Discord's 2,000, Telegram's 4,096 and most others
ERROR_CHARS = 200
EXTRA = "pip install 'watcher[apprise]'"

ZWSP = "\u200b"
ESCAPES = {"@": "@" + ZWSP, "<": "<" + ZWSP, "]": "]" + ZWSP}

_STATUS = re.compile(r"error=(\d{3})")
_LOG_PREFIX = re.compile(r"^[\d-]+ [\d:,]+ - [A-Z]+ - ", re.MULTILINE)


def escape(value: str, limit: int) -> str:
    return fit(one_line(value), limit, ESCAPES)


def render(delivery: Delivery) -> tuple[str, str]:
    """The (title, body) Apprise is given."""
    if delivery.alert is not None:
        return _alert(delivery.alert)
    talk = delivery.talk
    lines = [f"{label}: {one_line(value)}" for label, value in facts(talk)]
    links = [
        f"{label}: {url}"
        for label, url in (("Talk", safe_url(talk.url)), ("Video", safe_url(talk.video_url)))
        if url and len(url) <= 500
    ]
    room = BODY_CHARS - sum(len(link) + 1 for link in links)
    text_lines = [*lines, *(one_line(line) for line in talk.first_lines)]
    body = fit("\n".join(text_lines), max(room, 0), ESCAPES)
    body = "\n".join([body, *links]) if body else "\n".join(links)
    return escape(talk.title or "(untitled)", TITLE_CHARS), body or "New talk"


def _alert(alert: Alert) -> tuple[str, str]:
    return "watcher alert", escape(alert.text, BODY_CHARS) or alert.kind


def scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


def error_from(logged: str, url: str) -> DeliveryError:
    """The error of a failed notify, told apart as far as Apprise's log allows; nothing of
    the URL (its tokens) is repeated."""
    message = " ".join(_LOG_PREFIX.sub("", logged).split())
    for part in sorted({url, *re.split(r"[/:@?&=]+", url.split("://", 1)[-1])}, key=len)[::-1]:
        if len(part) >= 4:
            message = message.replace(part, "***")
    message = f"apprise {scheme(url)}: " + (message[:ERROR_CHARS] or "the notification failed")
    statuses = [int(status) for status in _STATUS.findall(logged)]
    if statuses and all(400 <= s < 500 and s not in (408, 429) for s in statuses):
        return PermanentDeliveryError(message)
    if "connection error" in logged.lower() or "timed out" in logged.lower():
        return UnreachableError(message)
    return TransientDeliveryError(message)


class AppriseNotifier:
    TYPE: ClassVar[str] = "apprise"
    DEFAULT_RATE: ClassVar[float | None] = 1.0
    SETTINGS: ClassVar[Mapping[str, Setting]] = {
        "url": Setting(text, required=True, secret=True),
        "timeout": Setting(duration, default=10.0),
    }

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.url = settings["url"]
        self.timeout = settings["timeout"]

    @staticmethod
    def validate(settings: Mapping[str, Any], where: str) -> None:
        try:
            import apprise
        except ImportError:
            raise ConfigError(f"{where}.type: apprise is an optional extra: {EXTRA}") from None
        if not apprise.Apprise().add(settings["url"]):
            raise ConfigError(
                f"{where}.url: not a URL Apprise knows ({scheme(settings['url'])}://)"
            )

    @staticmethod
    def describe(settings: Mapping[str, Any]) -> str:
        return f"apprise {scheme(settings['url'])}://***"

    def _notify(self, title: str, body: str) -> tuple[bool, str]:
        import apprise

        app = apprise.Apprise()
        app.add(self.url)
        capture: Any = apprise.LogCapture  # untyped in Apprise
        with capture(level=logging.WARNING) as logged:
            ok = app.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
        return bool(ok), str(logged.getvalue())

    def preview(self, delivery: Delivery) -> tuple[str, list[str]]:
        title, body = render(delivery)
        return f"{title}\n\n{body}", []

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None:
        title, body = render(delivery)
        try:
            ok, logged = await asyncio.wait_for(
                asyncio.to_thread(self._notify, title, body), self.timeout
            )
        except TimeoutError:
            raise UnreachableError(f"timed out after {self.timeout:g}s") from None
        if not ok:
            raise error_from(logged, self.url)
