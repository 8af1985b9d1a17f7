"""Generic JSON webhook: `POST {"type": "talk.new", "id", "feed", "talk"}`.

Every request carries `webhook-id` (stable for a talk and destination, the
same on every retry) and `webhook-timestamp`. With a `secret`, it is signed
by the Standard Webhooks scheme: `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, keyed by the base64-decoded secret (`whsec_` prefix
optional).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from watcher.notifiers.base import Delivery, Digest, json_bytes, post_json
from watcher.schema import ConfigError, Setting, duration, http_url, redact_url, text


def render(delivery: Delivery) -> dict[str, Any]:
    if delivery.alert is not None:
        return {"type": "watcher.alert", "id": delivery.id, "alert": delivery.alert.to_dict()}
    return {
        "type": "talk.new",
        "id": delivery.id,
        "feed": delivery.feed,
        "talk": delivery.talk.to_dict(),
    }


def render_digest(digest: Digest) -> dict[str, Any]:
    talks = [
        {"id": item.id, "feed": item.feed, "talk": item.talk.to_dict()} for item in digest.items
    ]
    return {"type": "talk.digest", "id": digest.id, "talks": talks}


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64, optionally `whsec_`-prefixed."""
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


def signed_headers(
    delivery_id: str, timestamp: int, body: bytes, key: bytes | None
) -> dict[str, str]:
    headers = {"webhook-id": delivery_id, "webhook-timestamp": str(timestamp)}
    if key is not None:
        signed = f"{delivery_id}.{timestamp}.".encode() + body
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
    return headers


class WebhookNotifier:
    TYPE: ClassVar[str] = "webhook"
    DEFAULT_RATE: ClassVar[float | None] = None
    SETTINGS: ClassVar[Mapping[str, Setting]] = {
        "url": Setting(http_url, required=True, secret=True),
        "secret": Setting(text, secret=True),
        "timeout": Setting(duration, default=10.0),
    }

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.url = settings["url"]
        self.timeout = settings["timeout"]
        self.key = signing_key(settings["secret"]) if settings["secret"] else None

    @staticmethod
    def validate(settings: Mapping[str, Any], where: str) -> None:
        if settings["secret"] is not None:
            try:
                key = signing_key(settings["secret"])
            except (binascii.Error, ValueError):
                raise ConfigError(
                    f"{where}.secret: expected a base64 secret, like whsec_ followed by base64"
                ) from None
            if len(key) < 16:
                raise ConfigError(f"{where}.secret: too short; use at least 16 random bytes")

    @staticmethod
    def describe(settings: Mapping[str, Any]) -> str:
        signed = ", signed" if settings["secret"] else ""
        return f"webhook {redact_url(settings['url'])}{signed}"

    def preview(self, delivery: Delivery) -> tuple[str, list[str]]:
        return json.dumps(render(delivery), indent=2, ensure_ascii=False), []

    async def send_digest(self, digest: Digest, client: httpx.AsyncClient) -> None:
        body = json_bytes(render_digest(digest))
        headers = signed_headers(digest.id, int(time.time()), body, self.key)
        await post_json(client, self.url, body, headers=headers, timeout=self.timeout)

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None:
        body = json_bytes(render(delivery))
        headers = signed_headers(delivery.id, int(time.time()), body, self.key)
        await post_json(client, self.url, body, headers=headers, timeout=self.timeout)
