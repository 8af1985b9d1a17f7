"""Generic JSON webhook: `POST {"type": "talk.new", "id", "feed", "talk"}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from watcher.notifiers.base import Delivery, post_json
from watcher.schema import Setting, duration, http_url, redact_url


def render(delivery: Delivery) -> dict[str, Any]:
    return {
        "type": "talk.new",
        "id": delivery.id,
        "feed": delivery.feed,
        "talk": delivery.talk.to_dict(),
    }


class WebhookNotifier:
    TYPE = "webhook"
    SETTINGS: Mapping[str, Setting] = {
        "url": Setting(http_url, required=True, secret=True),
        "timeout": Setting(duration, default=10.0),
    }

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.url = settings["url"]
        self.timeout = settings["timeout"]

    @staticmethod
    def validate(settings: Mapping[str, Any], where: str) -> None:
        pass

    @staticmethod
    def describe(settings: Mapping[str, Any]) -> str:
        return f"webhook {redact_url(settings['url'])}"

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None:
        await post_json(
            client,
            self.url,
            render(delivery),
            headers={"webhook-id": delivery.id},
            timeout=self.timeout,
        )
