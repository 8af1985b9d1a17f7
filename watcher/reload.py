"""What a reload of the config changes (pure): feeds and destinations added, removed
and changed, and the settings that only a restart applies."""

from __future__ import annotations

from dataclasses import dataclass, fields

from watcher.config import Config, FeedConfig
from watcher.schema import ConfigError

# Read once at start-up: the state's lock and files, the HTTP side's socket, the HTTP
# client's timeouts.
RESTART_ONLY = ("state", "listen", "timeout")


@dataclass(frozen=True)
class ReloadPlan:
    feeds_added: tuple[FeedConfig, ...]
    feeds_removed: tuple[str, ...]
    feeds_changed: tuple[FeedConfig, ...]  # as configured now
    destinations_added: tuple[str, ...]
    destinations_removed: tuple[str, ...]
    destinations_changed: tuple[str, ...]
    restart_only: tuple[str, ...]  # [watcher] keys changed that a restart applies

    def summary(self) -> str:
        parts = [
            _named("feeds added", [feed.name for feed in self.feeds_added]),
            _named("feeds removed", self.feeds_removed),
            _named("feeds changed", [feed.name for feed in self.feeds_changed]),
            _named("destinations added", self.destinations_added),
            _named("destinations removed", self.destinations_removed),
            _named("destinations changed", self.destinations_changed),
        ]
        return "; ".join(part for part in parts if part) or "nothing changed"


def _named(what: str, names: tuple[str, ...] | list[str]) -> str:
    return f"{what}: {', '.join(names)}" if names else ""


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """What changes from `old` to `new`. A changed state file is refused: the daemon
    holds the old one's lock, and the talks seen are in it."""
    if new.state != old.state:
        raise ConfigError(
            f"{new.path}: watcher.state: the state file cannot change while the daemon runs"
            f" ({old.state} → {new.state}); restart it to use another"
        )
    old_feeds = {feed.name: feed for feed in old.feeds}
    new_feeds = {feed.name: feed for feed in new.feeds}
    old_dests, new_dests = old.destinations, new.destinations
    return ReloadPlan(
        feeds_added=tuple(feed for name, feed in new_feeds.items() if name not in old_feeds),
        feeds_removed=tuple(name for name in old_feeds if name not in new_feeds),
        feeds_changed=tuple(
            feed
            for name, feed in new_feeds.items()
            if name in old_feeds and old_feeds[name] != feed
        ),
        destinations_added=tuple(name for name in new_dests if name not in old_dests),
        destinations_removed=tuple(name for name in old_dests if name not in new_dests),
        destinations_changed=tuple(
            name for name in new_dests if name in old_dests and old_dests[name] != new_dests[name]
        ),
        restart_only=tuple(
            f.name
            for f in fields(Config)
            if f.name in RESTART_ONLY and getattr(old, f.name) != getattr(new, f.name)
        ),
    )
