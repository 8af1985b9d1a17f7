"""Email over SMTP: a multipart text + HTML message per talk.

No feed text reaches a header unneutralised: line breaks and control
characters are folded away, and `=?` is broken so a title cannot smuggle an
RFC 2047 encoded word (CVE-2024-6923).
"""

from __future__ import annotations

import asyncio
import functools
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from watcher.messages import MessageTemplate, template_setting
from watcher.notifiers.base import (
    Delivery,
    Digest,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnreachableError,
)
from watcher.notifiers.text import facts
from watcher.schema import ConfigError, Setting, boolean, duration, string_list, text, whole_number
from watcher.text import clean_text

if TYPE_CHECKING:
    import jinja2

SUBJECT_CHARS = 200


def header_text(value: str) -> str:
    return clean_text(value).replace("=?", "= ?")


@dataclass(frozen=True)
class Templates:
    """An email destination's own `subject` and `template` (the body: its HTML part, and
    its plain-text part rendered from the same template as text)."""

    subject: MessageTemplate | None = None
    html: MessageTemplate | None = None
    text: MessageTemplate | None = None


NO_TEMPLATES = Templates()


def render(
    delivery: Delivery,
    sender: str,
    recipients: tuple[str, ...],
    templates: Templates = NO_TEMPLATES,
) -> EmailMessage:
    talk = delivery.talk
    message = EmailMessage(policy=SMTP)
    alert = delivery.alert
    subject = f"watcher alert: {alert.text}" if alert else f"New talk: {talk.title}"
    if templates.subject is not None and alert is None:
        subject = templates.subject.render(talk, delivery.feed)
    message["Subject"] = header_text(subject)[:SUBJECT_CHARS]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=delivery.id[:16], domain="watcher.local")
    if alert is not None:
        message.set_content(f"{clean_text(alert.text)}\n\n-- watcher, at {alert.at}\n")
        return message
    if templates.html is not None and templates.text is not None and alert is None:
        message.set_content(templates.text.render(talk, delivery.feed))
        message.add_alternative(templates.html.render(talk, delivery.feed), subtype="html")
        return message
    message.set_content(_plain(delivery))
    heading = f"New talk · {delivery.feed}"
    message.add_alternative(_html(heading, delivery.feed, [delivery]), subtype="html")
    return message


def render_digest(digest: Digest, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    count = len(digest.items)
    message = EmailMessage(policy=SMTP)
    message["Subject"] = f"{count} new talk{'s' if count != 1 else ''}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=digest.id[:16], domain="watcher.local")
    plain = [message["Subject"], ""]
    deliveries = [Delivery(i.id, i.feed, digest.destination, i.talk) for i in digest.items]
    plain += [_plain(delivery).rstrip() + "\n" for delivery in deliveries]
    message.set_content("\n".join(plain))
    message.add_alternative(_html(message["Subject"], "", deliveries), subtype="html")
    return message


def _plain(delivery: Delivery) -> str:
    talk = delivery.talk
    lines = [talk.title, ""]
    lines += [f"{label}: {value}" for label, value in facts(talk)]
    if talk.first_lines:
        lines += [""] + [f"> {line}" for line in talk.first_lines]
    lines.append("")
    lines += [f"{label}: {url}" for label, url in _links(delivery) if url]
    lines += ["", f"-- watcher, feed {delivery.feed}"]
    return "\n".join(lines) + "\n"


def _links(delivery: Delivery) -> list[tuple[str, str | None]]:
    talk = delivery.talk
    return [("Talk page", talk.url), ("Video", talk.video_url)]


@functools.cache
def _layout() -> jinja2.Template:
    """Loaded once, when the first email is rendered (Jinja2 is slow to import)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("watcher", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("email.html")


_BUTTON_COLOURS = ("#0969da", "#1f2328")


def _html(heading: str, feed: str, deliveries: list[Delivery]) -> str:
    """A notification people are used to, held up by tables and inline styles as email
    clients need (templates/email.html): per talk, the thumbnail beside the title, the
    facts under it, the first lines quoted, buttons for the talk and the video."""
    return _layout().render(
        heading=heading, feed=feed, cards=[_card(delivery) for delivery in deliveries]
    )


def _card(delivery: Delivery) -> dict[str, Any]:
    named = dict(facts(delivery.talk))
    byline = " · ".join(value for key in ("Speaker", "Event") if (value := named.pop(key, "")))
    links = zip(_links(delivery), _BUTTON_COLOURS, strict=True)
    return {
        "talk": delivery.talk,
        "byline": byline,
        "details": " · ".join(f"{label}: {value}" for label, value in named.items()),
        "buttons": [(label, url, colour) for (label, url), colour in links if url],
    }


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """The server has accepted the message: how it answers QUIT changes nothing."""
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


class EmailNotifier:
    TYPE: ClassVar[str] = "email"
    DEFAULT_RATE: ClassVar[float | None] = None
    SETTINGS: ClassVar[Mapping[str, Setting]] = {
        "host": Setting(text, required=True),
        "port": Setting(whole_number(1, 65535), default=25),
        "starttls": Setting(boolean, default=False),
        "ssl": Setting(boolean, default=False),
        "username": Setting(text),
        "password": Setting(text, secret=True),
        "from": Setting(text, required=True),
        "to": Setting(string_list, required=True),
        "timeout": Setting(duration, default=30.0),
        "subject": Setting(template_setting("header")),
        "template": Setting(text),  # checked in validate(): as HTML and as text
    }

    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        self.name = name
        self.settings = settings
        body = settings.get("template")
        self.templates = Templates(
            settings.get("subject"),
            MessageTemplate(body, "html", "template") if body else None,
            MessageTemplate(body, "text", "template") if body else None,
        )

    @staticmethod
    def validate(settings: Mapping[str, Any], where: str) -> None:
        if settings.get("template"):
            for target in ("html", "text"):
                MessageTemplate(settings["template"], target, f"{where}.template")
        if settings["starttls"] and settings["ssl"]:
            raise ConfigError(f"{where}: choose one of starttls and ssl, not both")
        if (settings["username"] is None) != (settings["password"] is None):
            raise ConfigError(f"{where}: username and password go together")
        for key in ("from",):
            if "\n" in settings[key] or "\r" in settings[key]:
                raise ConfigError(f"{where}.{key}: must be a single line")

    @staticmethod
    def describe(settings: Mapping[str, Any]) -> str:
        security = "ssl" if settings["ssl"] else "starttls" if settings["starttls"] else "plain"
        user = f"{settings['username']}@" if settings["username"] else ""
        return (
            f"email smtp://{user}{settings['host']}:{settings['port']} ({security}) "
            f"to {', '.join(settings['to'])}"
        )

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s["ssl"]:
            return smtplib.SMTP_SSL(
                s["host"], s["port"], timeout=s["timeout"], context=ssl.create_default_context()
            )
        return smtplib.SMTP(s["host"], s["port"], timeout=s["timeout"])

    def preview(self, delivery: Delivery) -> tuple[str, list[str]]:
        message = render(delivery, self.settings["from"], self.settings["to"], self.templates)
        return message.as_string(), []

    async def send_digest(self, digest: Digest, client: httpx.AsyncClient) -> None:
        message = render_digest(digest, self.settings["from"], self.settings["to"])
        await self._send_bounded(message)

    async def send(self, delivery: Delivery, client: httpx.AsyncClient) -> None:
        """Send in a worker thread (smtplib blocks), bounded in total, not only per read."""
        message = render(delivery, self.settings["from"], self.settings["to"], self.templates)
        await self._send_bounded(message)

    async def _send_bounded(self, message: EmailMessage) -> None:
        deadline = self.settings["timeout"] * 3
        try:
            async with asyncio.timeout(deadline):
                await asyncio.to_thread(self._send_sync, message)
        except TimeoutError:
            raise UnreachableError(f"SMTP timed out after {deadline:g}s") from None

    def _send_sync(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            smtp = self._connect()
            try:
                if s["starttls"]:
                    smtp.starttls(context=ssl.create_default_context())
                if s["username"]:
                    smtp.login(s["username"], s["password"])
                smtp.send_message(message)
            except BaseException:
                smtp.close()
                raise
            _quit_quietly(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            error = f"SMTP refused every recipient (codes {codes})"
            if all(code >= 500 for code in codes):
                raise PermanentDeliveryError(error) from None
            raise TransientDeliveryError(error) from None
        except smtplib.SMTPResponseException as exc:
            reply = (
                exc.smtp_error.decode("utf-8", "replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            error = f"SMTP {exc.smtp_code}: {' '.join(reply.split())[:200]}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(error) from None
            raise TransientDeliveryError(error) from None
        except ssl.SSLError as exc:
            raise UnreachableError(f"TLS error: {exc.reason or exc}") from None
        except (OSError, smtplib.SMTPException) as exc:  # connection refused, reset, timeout
            raise UnreachableError(f"SMTP connection failed: {type(exc).__name__}: {exc}") from None
