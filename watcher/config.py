"""Read the TOML config, substitute `${ENV}`, validate, return frozen settings."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from watcher.digest import DigestSchedule, digest_schedule
from watcher.filters import Filter, rules
from watcher.logs import FORMATS
from watcher.notifiers import NOTIFIERS
from watcher.schema import (
    ConfigError,
    Setting,
    duration,
    feed_source,
    listen_address,
    one_of,
    rate,
    read_table,
    reject_unknown,
    string_list,
    text,
    whole_number,
)

DEFAULT_PATH = "config/watcher.toml"
LISTEN_VARIABLE = "WATCHER_LISTEN"
DEDUP_KEYS = ("guid", "link", "video_id")

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _dedup(value: Any, where: str) -> tuple[str, ...]:
    keys = string_list(value, where)
    unknown = [k for k in keys if k not in DEDUP_KEYS]
    if unknown or "guid" not in keys:
        raise ConfigError(f'{where}: expected "guid" plus any of link, video_id')
    return keys


WATCHER_SETTINGS = {
    "state": Setting(text, default="data/watcher.json"),
    "interval": Setting(duration, default=900.0),
    "timeout": Setting(duration, default=30.0),
    "max_bytes": Setting(whole_number(1024), default=20_000_000),
    "max_concurrency": Setting(whole_number(1, 256), default=16),
    "max_per_host": Setting(whole_number(1, 256), default=4),
    "retention": Setting(duration, default=90 * 86400.0),
    "max_backoff": Setting(duration, default=6 * 3600.0),
    "listen": Setting(listen_address),
    "log_format": Setting(one_of(*FORMATS), default="text"),
    "alerts": Setting(string_list, default=()),
    "alert_after": Setting(duration, default=3600.0),
    "quiet_after": Setting(duration, default=14 * 86400.0),
}

DELIVERY_SETTINGS = {
    "max_attempts": Setting(whole_number(1, 1_000_000)),
    "give_up_after": Setting(duration, default=24 * 3600.0),
    "rate": Setting(rate),
    "digest": Setting(text),  # checked with timezone: digest_schedule()
    "timezone": Setting(text),
}

# On a destination (who gets a talk) and on a feed (dropped for everyone): watcher.filters
FILTER_SETTINGS = {
    "include": Setting(rules, default=()),
    "exclude": Setting(rules, default=()),
    "min_slides": Setting(whole_number(0, 1_000_000)),
    "min_duration": Setting(duration),
}

FEED_SETTINGS = {
    "name": Setting(text, required=True),
    "url": Setting(feed_source, required=True),
    "interval": Setting(duration),
    "notify": Setting(string_list),
    "notify_existing": Setting(whole_number(0, 10_000), default=0),
    "dedup": Setting(_dedup, default=DEDUP_KEYS),
    "alert_after": Setting(duration),
    **FILTER_SETTINGS,
}


@dataclass(frozen=True)
class FeedConfig:
    name: str
    url: str
    interval: float
    notify: tuple[str, ...]
    notify_existing: int
    dedup: tuple[str, ...]
    alert_after: float | None = None  # else [watcher].alert_after
    filter: Filter = field(default_factory=Filter)  # talks it drops for every destination


@dataclass(frozen=True)
class DeliveryPolicy:
    """How a destination's deliveries are retried and paced; the same keys for every type."""

    max_attempts: int | None = None
    give_up_after: float = 24 * 3600.0
    rate: float | None = None  # messages per second; None: as fast as accepted
    digest: DigestSchedule | None = None  # its talks go out together, at these times


@dataclass(frozen=True)
class DestinationConfig:
    name: str
    type: str
    settings: Mapping[str, Any]
    policy: DeliveryPolicy = DeliveryPolicy()
    filter: Filter = field(default_factory=Filter)  # the talks it gets

    def describe(self) -> str:
        """One line about the destination with its secrets redacted."""
        return NOTIFIERS[self.type].describe(self.settings)


@dataclass(frozen=True)
class Config:
    path: Path
    state: Path
    interval: float
    timeout: float
    max_bytes: int
    max_concurrency: int
    max_per_host: int
    retention: float
    max_backoff: float
    feeds: tuple[FeedConfig, ...]
    destinations: Mapping[str, DestinationConfig]
    listen: tuple[str, int] | None = None  # the daemon's HTTP side (watcher.server)
    log_format: str = "text"
    alerts: tuple[str, ...] = ()  # destinations told of trouble (watcher.alerts)
    alert_after: float = 3600.0
    quiet_after: float = 14 * 86400.0


def config_path(cli_value: str | None) -> Path:
    """`--config`, else `$WATCHER_CONFIG`, else `config/watcher.toml`."""
    return Path(cli_value or os.environ.get("WATCHER_CONFIG") or DEFAULT_PATH)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the config at `path`; any problem raises `ConfigError`."""
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        config = _build(path, _substitute(raw, environ, ""))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if environ.get(LISTEN_VARIABLE):
        # A container listens beyond its own loopback, where its port is published.
        listen = listen_address(environ[LISTEN_VARIABLE], f"${LISTEN_VARIABLE}")
        config = dataclasses.replace(config, listen=listen)
    return config


def _substitute(value: Any, environ: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return environ[name]

        return _ENV_REFERENCE.sub(lookup, value)
    if isinstance(value, dict):
        return {
            k: _substitute(v, environ, f"{where}.{k}" if where else k) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _build(path: Path, raw: dict[str, Any]) -> Config:
    unknown = sorted(set(raw) - {"watcher", "feeds", "destinations"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section (known: watcher, feeds, destinations)")
    base = read_table(_table(raw.get("watcher", {}), "watcher"), WATCHER_SETTINGS, "watcher")
    destinations = _destinations(_array(raw.get("destinations", []), "destinations"))
    feeds = _feeds(_array(raw.get("feeds"), "feeds"), base["interval"], destinations)
    return Config(
        path=path,
        state=Path(base["state"]),
        interval=base["interval"],
        timeout=base["timeout"],
        max_bytes=base["max_bytes"],
        max_concurrency=base["max_concurrency"],
        max_per_host=base["max_per_host"],
        retention=base["retention"],
        max_backoff=base["max_backoff"],
        feeds=feeds,
        destinations=MappingProxyType(destinations),
        listen=base["listen"],
        log_format=base["log_format"],
        alerts=_alerts(base["alerts"], destinations),
        alert_after=base["alert_after"],
        quiet_after=base["quiet_after"],
    )


def _destinations(tables: list[Any]) -> dict[str, DestinationConfig]:
    destinations: dict[str, DestinationConfig] = {}
    for index, table in enumerate(tables):
        where = f"destinations[{index}]"
        table = _table(table, where)
        name = text(table.get("name"), f"{where}.name")
        kind = table.get("type")
        if not isinstance(kind, str) or kind not in NOTIFIERS:
            known = ", ".join(sorted(NOTIFIERS))
            raise ConfigError(f"{where}.type: unknown destination type {kind!r} (known: {known})")
        if name in destinations:
            raise ConfigError(f"{where}.name: duplicate destination name {name!r}")
        notifier = NOTIFIERS[kind]
        rest = {k: v for k, v in table.items() if k not in ("name", "type")}
        common = {k: v for k, v in rest.items() if k in DELIVERY_SETTINGS}
        chosen = {k: v for k, v in rest.items() if k in FILTER_SETTINGS}
        own = {k: v for k, v in rest.items() if k not in {**DELIVERY_SETTINGS, **FILTER_SETTINGS}}
        keys = {"name", "type", *notifier.SETTINGS, *DELIVERY_SETTINGS, *FILTER_SETTINGS}
        reject_unknown(table, keys, where)
        settings = read_table(own, notifier.SETTINGS, where)
        policy = read_table(common, DELIVERY_SETTINGS, where)
        policy["rate"] = policy["rate"] if policy["rate"] is not None else notifier.DEFAULT_RATE
        timezone = policy.pop("timezone")
        if policy["digest"] is not None:
            policy["digest"] = digest_schedule(policy["digest"], timezone, where)
        elif timezone is not None:
            raise ConfigError(f"{where}.timezone: only a digest has a time zone")
        notifier.validate(settings, where)
        destinations[name] = DestinationConfig(
            name,
            kind,
            MappingProxyType(settings),
            DeliveryPolicy(**policy),
            Filter(**read_table(chosen, FILTER_SETTINGS, where)),
        )
    return destinations


def _feeds(
    tables: list[Any], default_interval: float, destinations: Mapping[str, DestinationConfig]
) -> tuple[FeedConfig, ...]:
    if not tables:
        raise ConfigError("feeds: at least one [[feeds]] table is required")
    feeds: list[FeedConfig] = []
    for index, table in enumerate(tables):
        where = f"feeds[{index}]"
        values = read_table(_table(table, where), FEED_SETTINGS, where)
        if any(feed.name == values["name"] for feed in feeds):
            raise ConfigError(f"{where}.name: duplicate feed name {values['name']!r}")
        notify = values["notify"] if values["notify"] is not None else tuple(destinations)
        for target in notify:
            if target not in destinations:
                known = ", ".join(destinations) or "none defined"
                raise ConfigError(
                    f"{where}.notify: unknown destination {target!r} (destinations: {known})"
                )
        if not notify:
            raise ConfigError(f"{where}.notify: the feed notifies no destination")
        values["notify"] = tuple(dict.fromkeys(notify))
        values["interval"] = values["interval"] or default_interval
        dropped = Filter(**{key: values.pop(key) for key in FILTER_SETTINGS})
        feeds.append(FeedConfig(**values, filter=dropped))
    return tuple(feeds)


def _alerts(
    names: tuple[str, ...], destinations: Mapping[str, DestinationConfig]
) -> tuple[str, ...]:
    for name in names:
        if name not in destinations:
            known = ", ".join(destinations) or "none defined"
            raise ConfigError(
                f"watcher.alerts: unknown destination {name!r} (destinations: {known})"
            )
    return tuple(dict.fromkeys(names))


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected an array of tables ([[{where}]])")
    return value
