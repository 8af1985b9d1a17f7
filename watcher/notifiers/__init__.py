"""Destinations, keyed by their `type` in the config.

Each type's module is imported when that type is first looked up: a config names one
or two, and `watcher poll` should not pay for email's, Slack's and Apprise's imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watcher.notifiers.base import Notifier

# type → (module, class)
_WHERE = {
    "console": ("console", "ConsoleNotifier"),
    "webhook": ("webhook", "WebhookNotifier"),
    "slack": ("slack", "SlackNotifier"),
    "email": ("email", "EmailNotifier"),
    "discord": ("discord", "DiscordNotifier"),
    "teams": ("teams", "TeamsNotifier"),
    "ntfy": ("ntfy", "NtfyNotifier"),
    "apprise": ("apprise", "AppriseNotifier"),
}


class _Registry(Mapping[str, "type[Notifier]"]):
    def __getitem__(self, kind: str) -> type[Notifier]:
        module, name = _WHERE[kind]
        notifier: type[Notifier] = getattr(
            importlib.import_module(f"watcher.notifiers.{module}"), name
        )
        return notifier

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


NOTIFIERS: Mapping[str, type[Notifier]] = _Registry()


def build_notifier(name: str, kind: str, settings: Mapping[str, Any]) -> Notifier:
    return NOTIFIERS[kind](name, settings)
