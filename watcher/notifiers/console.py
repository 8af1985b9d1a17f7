"""Console: a readable summary of each talk on standard output."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, ClassVar, TextIO

import httpx

from watcher.messages import MessageTemplate, template_setting
from watcher.notifiers.base import Delivery, Digest, TransientDeliveryError
from watcher.notifiers.text import facts
from watcher.schema import Setting
from watcher.text import clean_text


def render(delivery: Delivery, template: MessageTemplate | None = None) -> str:
    if template is not None and delivery.alert is None:
        return template.render(delivery.talk, delivery.feed).rstrip("\n") + "\n"
    if delivery.alert is not None:
        return f"Alert [{delivery.alert.kind}]: {clean_text(delivery.alert.text)}\n"
    talk = delivery.talk
    lines = [f"New talk [{delivery.feed}]: {talk.title}"]
    lines += [f"  {label}: {value}" for label, value in facts(talk)]
    lines += [f"  > {line}" for line in talk.first_lines]
    if talk.url:
        lines.append(f"  Link: {talk.url}")
    if talk.video_url:
        lines.append(f"  Video: {talk.video_url}")
    if talk.thumbnail:
        lines.append(f"  Thumbnail: {talk.thumbnail}")
    return "\n".join(lines) + "\n"


def render_digest(digest: Digest, template: MessageTemplate | None = None) -> str:
    count = len(digest.items)
    lines = [f"Digest: {count} new talk{'s' if count != 1 else ''}"]
    for item in digest.items:
        delivery = Delivery(item.id, item.feed, digest.destination, item.talk)
        lines += ["", *(f"  {line}" for line in render(delivery, template).splitlines())]
    return "\n".join(lines) + "\n"


class ConsoleNotifier:
    TYPE: ClassVar[str] = "console"
    DEFAULT_RATE: ClassVar[float | None] = None
    SETTINGS: ClassVar[Mapping[str, Setting]] = {"template": Setting(template_setting("text"))}

    def __init__(self, name: str, settings: Mapping[str, Any], stream: TextIO | None = None):
        self.name = name
        self.stream = stream
        self.template: MessageTemplate | None = settings.get("template")

    @staticmethod
    def validate(settings: Mapping[str, Any], where: str) -> None:
        pass

    @staticmethod
    def describe(settings: Mapping[str, Any]) -> str:
        return "console (standard output)"

    def preview(self, delivery: Delivery) -> tuple[str, list[str]]:
        return render(delivery, self.template), []

    async def send_digest(self, digest: Digest, client: httpx.AsyncClient) -> None:
        self._write(render_digest(digest, self.template))

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None:
        self._write(render(delivery, self.template))

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stdout
        try:
            stream.write(text + "\n")
            stream.flush()
        except BrokenPipeError:  # `watcher poll | head`: not shown, so not delivered
            raise TransientDeliveryError("standard output is closed (broken pipe)") from None
