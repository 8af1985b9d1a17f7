"""Destinations, keyed by their `type` in the config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watcher.notifiers.apprise import AppriseNotifier
from watcher.notifiers.base import Notifier
from watcher.notifiers.console import ConsoleNotifier
from watcher.notifiers.discord import DiscordNotifier
from watcher.notifiers.email import EmailNotifier
from watcher.notifiers.ntfy import NtfyNotifier
from watcher.notifiers.slack import SlackNotifier
from watcher.notifiers.teams import TeamsNotifier
from watcher.notifiers.webhook import WebhookNotifier

NOTIFIERS: Mapping[str, type[Notifier]] = {
    notifier.TYPE: notifier
    for notifier in (
        ConsoleNotifier,
        WebhookNotifier,
        SlackNotifier,
        EmailNotifier,
        DiscordNotifier,
        TeamsNotifier,
        NtfyNotifier,
        AppriseNotifier,
    )
}


def build_notifier(name: str, kind: str, settings: Mapping[str, Any]) -> Notifier:
    return NOTIFIERS[kind](name, settings)
