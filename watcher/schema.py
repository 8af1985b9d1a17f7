"""Declared settings: each config table and each destination type lists its keys here.

A `Setting` says what a key holds, whether it is required, and whether it is a
secret (never printed; shown redacted). `read_table` validates one TOML table
against such a declaration and names the offending key on any error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from watcher.errors import WatcherError


class ConfigError(WatcherError):
    """An invalid config: the message names the file, the key and what is wrong."""


@dataclass(frozen=True)
class Setting:
    kind: Callable[[Any, str], Any]
    required: bool = False
    default: Any = None
    secret: bool = False


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def duration(value: Any, where: str) -> float:
    """ "90s", "15m", "1h", "1d" or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ConfigError(f'{where}: expected a duration like "90s", "15m" or "1h"')
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise ConfigError(
                f'{where}: bad duration {value!r}: use a number with s, m, h or d, like "15m"'
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{where}: duration must be positive, got {value!r}")
    return seconds


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")


def rate(value: Any, where: str) -> float:
    """ "1/s", "20/m", "100/h" → messages per second."""
    match = _RATE.match(value) if isinstance(value, str) else None
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f'{where}: bad rate {value!r}: use messages per s, m or h, like "1/s"')
    return float(match.group(1)) / _UNIT_SECONDS[match.group(2)]


_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")


def listen_address(value: Any, where: str) -> tuple[str, int]:
    """ "127.0.0.1:8765", "[::1]:8765", "localhost:0" (any free port) → (host, port)."""
    match = _LISTEN.match(value) if isinstance(value, str) else None
    if not match or int(match.group("port")) > 65535:
        raise ConfigError(f'{where}: expected HOST:PORT, like "127.0.0.1:8765", got {value!r}')
    return match.group("v6") or match.group("host"), int(match.group("port"))


def text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string")
    return value


def http_url(value: Any, where: str) -> str:
    url = text(value, where)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{where}: expected an http:// or https:// URL")
    return url


def feed_source(value: Any, where: str) -> str:
    """An http(s) URL, a file:// URL or a local path."""
    source = text(value, where)
    try:
        parts = urlsplit(source)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise ConfigError(f"{where}: not a valid URL ({exc})") from None
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ConfigError(f"{where}: the URL has no host")
    if len(parts.scheme) > 1 and parts.scheme not in ("http", "https", "file"):
        raise ConfigError(f"{where}: expected an http(s) URL or a file path, got {parts.scheme}:")
    return source


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false")
    return value


def whole_number(minimum: int = 0, maximum: int = 2**31) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (minimum <= value <= maximum)
        ):
            raise ConfigError(f"{where}: expected a whole number from {minimum} to {maximum}")
        return value

    return check


def string_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(value)


def one_of(*choices: str) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def reject_unknown(table: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        listed = ", ".join(sorted(known))
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known keys: {listed})")


def read_table(
    table: Mapping[str, Any], settings: Mapping[str, Setting], where: str
) -> dict[str, Any]:
    """Validate `table` against `settings`: unknown keys, missing keys and bad values fail."""
    reject_unknown(table, settings, where)
    values = {}
    for key, setting in settings.items():
        if key not in table:
            if setting.required:
                raise ConfigError(f"{where}.{key}: required key is missing")
            values[key] = setting.default
            continue
        values[key] = setting.kind(table[key], f"{where}.{key}")
    return values


def redact_feed_url(url: str) -> str:
    """A feed URL safe to print: the path stays, a password and the query's values go."""
    try:
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            return url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    user = f"{parts.username}:***@" if parts.password else ""
    query = "&".join(f"{pair.split('=', 1)[0]}=***" for pair in parts.query.split("&") if pair)
    return f"{parts.scheme}://{user}{host}{port}{parts.path}" + (f"?{query}" if query else "")


def redact_url(url: str) -> str:
    """A URL safe to print: scheme and host, the path hidden past its first segment.

    `https://hooks.slack.com/services/T0123/B456/xyz` → `https://hooks.slack.com/services/T0…/***`
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    if not parts.scheme:
        return "***"
    base = f"{parts.scheme}://{host}{port}"
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return base + ("/***" if parts.query else "")
    if len(segments) == 1:
        return f"{base}/***"
    return f"{base}/{segments[0]}/{segments[1][:2]}…/***"
