"""What every destination shares: the delivery it is given and the errors it raises.

    DeliveryError
     ├── TransientDeliveryError   try again later (5xx, 408, 429)
     │    └── UnreachableError    the destination did not answer at all (network, timeout,
     │                            TLS): it is down as a whole, not just for this message
     └── PermanentDeliveryError   this message will never be accepted (other 4xx)

A destination's `send` returns only when the message was accepted; anything
else raises one of these, so a caller can never mistake a failure for success.
Messages never carry the destination's URL: it is a secret for Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import httpx

from watcher.errors import WatcherError
from watcher.httputil import parse_retry_after
from watcher.schema import Setting, duration, http_url, redact_url
from watcher.talk import Talk

RESPONSE_EXCERPT_BYTES = 200
ANSWER_SECONDS = 2.0  # to read the answer to a message accepted, for its connection's sake


ALERT_GUID_PREFIX = "alert:"


@dataclass(frozen=True)
class Alert:
    """An operational message (`[watcher] alerts`): a feed failing for long, its recovery,
    a feed gone quiet, a destination dead-lettering. `text` is one line; its parts that
    come from a feed or a server (an error) are untrusted like any feed text."""

    kind: str  # feed_failing, feed_recovered, feed_quiet, dead_letters
    subject: str  # the feed's or the destination's name
    text: str
    at: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "text": self.text, "at": self.at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(str(data["kind"]), str(data["subject"]), str(data["text"]), str(data["at"]))

    def as_talk(self) -> Talk:
        """How the outbox and `status` name it: a talk-shaped record of the alert."""
        title = f"alert: {self.text}"
        return Talk(
            guid=f"{ALERT_GUID_PREFIX}{self.kind}:{self.subject}:{self.at}",
            title=title,
            speaker=None,
            event=None,
            raw_title=title,
            url=None,
            video_id=None,
            video_url=None,
            published=self.at,
            slide_count=None,
            slides_present=0,
            duration=None,
        )


@dataclass(frozen=True)
class Delivery:
    """One talk (or an alert) for one destination; `id` is stable across retries."""

    id: str
    feed: str
    destination: str
    talk: Talk
    alert: Alert | None = None


@dataclass(frozen=True)
class DigestItem:
    id: str  # the delivery's id
    feed: str
    talk: Talk


@dataclass(frozen=True)
class Digest:
    """The talks of one digest (`watcher.digest`), oldest first; `id` is stable for them.
    A destination type that can send one has `send_digest(digest, client)`."""

    id: str
    destination: str
    items: tuple[DigestItem, ...]


class DeliveryError(WatcherError):
    pass


class TransientDeliveryError(DeliveryError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnreachableError(TransientDeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class Notifier(Protocol):
    TYPE: ClassVar[str]
    DEFAULT_RATE: ClassVar[float | None]
    SETTINGS: ClassVar[Mapping[str, Setting]]

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None: ...

    @staticmethod
    def validate(settings: Mapping[str, Any], where: str) -> None: ...

    @staticmethod
    def describe(settings: Mapping[str, Any]) -> str: ...

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None: ...


def json_bytes(payload: Any) -> bytes:
    """Compact UTF-8 JSON: the exact bytes sent (and signed)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    retry_hint: Callable[[str], float | None] | None = None,
) -> None:
    """POST a JSON `body`; return on 2xx, raise a `DeliveryError` otherwise.

    The whole exchange is bounded by `timeout`, and at most a short excerpt of
    the response body is read: an answer read to its end leaves the connection open for
    the next message (a new TLS handshake for each message cost more than the message).
    `retry_hint` reads a retry delay out of the excerpt of
    a transient failure (a service that says it in its body, not in `Retry-After`).
    """
    headers = {"Content-Type": "application/json", **(headers or {})}
    excerpt = ""
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request("POST", url, content=body, headers=headers)
            response = await client.send(request, stream=True, follow_redirects=False)
            if not response.is_success:
                try:
                    excerpt = await _excerpt(response)
                finally:
                    await response.aclose()
    except TimeoutError:
        raise UnreachableError(f"timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise UnreachableError(f"network error: {type(exc).__name__}") from None
    if response.is_success:  # accepted: what follows is no failure of the delivery
        await _read_answer(response)
        return
    if response.is_redirect:
        location = redact_url(response.headers.get("location", ""))
        raise PermanentDeliveryError(
            f"HTTP {response.status_code} redirect to {location}: a webhook must answer"
            f" itself, not redirect (the message would be lost); update the URL"
        )
    error = status_error(
        response.status_code, response.reason_phrase, excerpt, response.headers.get("retry-after")
    )
    if retry_hint is not None and isinstance(error, TransientDeliveryError):
        hint = retry_hint(excerpt)
        if hint is not None:
            error.retry_after = hint
    raise error


def status_error(
    status: int, reason: str, excerpt: str, retry_after_header: str | None
) -> DeliveryError:
    message = f"HTTP {status} {reason}".rstrip() + (f": {excerpt}" if excerpt else "")
    if status in (408, 429) or status >= 500:
        return TransientDeliveryError(message, parse_retry_after(retry_after_header))
    return PermanentDeliveryError(message)


async def _read_answer(response: httpx.Response) -> None:
    """Read a short answer to its end, so that the connection is kept for the next message;
    one that is long, slow or broken is let go of with its connection: the message was
    accepted with the status, and is not sent again for what comes after it."""
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            await _excerpt(response)
    except (TimeoutError, httpx.HTTPError):
        pass
    finally:
        with contextlib.suppress(httpx.HTTPError):
            await response.aclose()


async def _excerpt(response: httpx.Response) -> str:
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= RESPONSE_EXCERPT_BYTES:
            break
    text = body[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
    return " ".join(text.split())[:RESPONSE_EXCERPT_BYTES]


class JsonWebhookNotifier:
    """A destination that POSTs its own JSON rendering of a talk to a secret webhook URL
    (Discord, Teams): the shared keys, description, preview and send. A type gives its
    `TYPE`, `DEFAULT_RATE` and `render`, and, if its service says when to retry in the
    answer's body, `retry_hint`."""

    TYPE: ClassVar[str]
    DEFAULT_RATE: ClassVar[float | None]
    SETTINGS: ClassVar[Mapping[str, Setting]] = {
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

    @classmethod
    def describe(cls, settings: Mapping[str, Any]) -> str:
        return f"{cls.TYPE} {redact_url(settings['url'])}"

    def render(self, delivery: Delivery) -> dict[str, Any]:
        raise NotImplementedError

    def retry_hint(self, excerpt: str) -> float | None:
        return None

    def preview(self, delivery: Delivery) -> tuple[str, list[str]]:
        return json.dumps(self.render(delivery), indent=2, ensure_ascii=False), []

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None:
        body = json_bytes(self.render(delivery))
        await post_json(client, self.url, body, timeout=self.timeout, retry_hint=self.retry_hint)
