"""Digests (`digest` on a destination): its talks wait in the outbox and go out together at
the times of a crontab expression (`"0 9 * * MON"`) or every interval (`"1h"`), in its
`timezone`.

No state is kept for it: a queued talk is due at the digest's first time after it was
queued, so a digest due while the daemon was down goes out when it starts, and the talks
of one digest are always the same ones (its id, a hash of theirs, is stable: a digest sent
again after a kill is recognisably the same message)."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from watcher.notifiers.base import (
    Digest,
    DigestItem,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from watcher.retry import Outcome
from watcher.schema import ConfigError, duration
from watcher.store import OutboxEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigestSchedule:
    source: str  # as configured
    timezone: str = "UTC"
    every: float | None = None  # an interval, in seconds; else a crontab expression
    trigger: Any = field(default=None, compare=False, repr=False)  # APScheduler's CronTrigger

    def next_after(self, moment: datetime) -> datetime:
        """The digest's first time strictly after `moment`."""
        if self.every is not None:  # counted from the epoch, so every process agrees
            epoch = datetime(1970, 1, 1, tzinfo=UTC)
            steps = math.floor((moment - epoch).total_seconds() / self.every) + 1
            return epoch + timedelta(seconds=steps * self.every)
        fire: datetime = self.trigger.get_next_fire_time(None, moment + timedelta(microseconds=1))
        return fire.astimezone(UTC)


def digest_schedule(value: Any, timezone: Any, where: str) -> DigestSchedule:
    """`digest` and `timezone` of a destination, checked."""
    zone = "UTC" if timezone is None else timezone
    try:
        tz = ZoneInfo(zone) if isinstance(zone, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
    if tz is None:
        raise ConfigError(f"{where}.timezone: unknown time zone {zone!r} (like Europe/London)")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{where}.digest: expected a crontab expression or an interval,"
            ' like "0 9 * * MON" or "1h"'
        )
    if len(value.split()) == 1:
        return DigestSchedule(value, zone, every=duration(value, f"{where}.digest"))
    from apscheduler.triggers.cron import CronTrigger  # only for a digest that needs it

    try:
        trigger = CronTrigger.from_crontab(value, timezone=tz)
    except ValueError as exc:
        raise ConfigError(f"{where}.digest: bad crontab expression {value!r}: {exc}") from None
    return DigestSchedule(value, zone, trigger=trigger)


def digest_id(destination: str, delivery_ids: Iterable[str]) -> str:
    joined = "\n".join([destination, *sorted(delivery_ids)])
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


async def send_digest(
    send: Callable[[Digest, httpx.AsyncClient], Awaitable[None]],
    client: httpx.AsyncClient,
    destination: str,
    due: list[OutboxEntry],
) -> tuple[Outcome, str | None]:
    """Send the due talks of a digest destination as one digest: sent, dead (rejected
    for good) or retry, with the error said."""
    items = tuple(DigestItem(entry.id, entry.feed, entry.talk) for entry in due)
    digest = Digest(digest_id(destination, [entry.id for entry in due]), destination, items)
    try:
        await send(digest, client)
    except PermanentDeliveryError as exc:
        log.error("destination %s: digest of %d talks rejected: %s", destination, len(due), exc)
        return Outcome.DEAD, str(exc)
    except TransientDeliveryError as exc:
        return Outcome.RETRY, str(exc)
    except Exception as exc:  # a notifier's bug: its talks stay queued
        log.exception("destination %s: the digest failed unexpectedly", destination)
        return Outcome.RETRY, f"unexpected {type(exc).__name__}: {exc}"
    log.info(
        "destination %s: digest %s of %d talks delivered", destination, digest.id[:12], len(due)
    )
    return Outcome.SENT, None
