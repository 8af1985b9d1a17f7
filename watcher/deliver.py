"""Drain the outbox: send each queued delivery; remove it only once it was accepted.

Each destination drains on its own (one's outage or slowness never delays
another), in queue order, which is publication order within a feed. A transient
failure schedules a retry with exponential backoff and jitter (or the
server's `Retry-After`) and stops that destination's drain so order is kept; a
permanent failure, or one still failing after `GIVE_UP_AFTER`, is dead-lettered:
kept in the store, never silently dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from watcher.clock import iso
from watcher.notifiers.base import (
    Delivery,
    Notifier,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from watcher.store import Store
from watcher.talk import Talk

log = logging.getLogger(__name__)

RETRY_BASE = 30.0
RETRY_CAP = 3600.0
GIVE_UP_AFTER = timedelta(hours=24)


def retry_delay(attempts: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds until the next try after `attempts` failures: exponential, jittered."""
    if retry_after is not None:
        return min(max(retry_after, 1.0), RETRY_CAP * 6)
    ceiling = min(RETRY_BASE * 2 ** (attempts - 1), RETRY_CAP)
    return ceiling * (0.5 + rng.random() / 2)


@dataclass
class DrainResult:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


class Deliverer:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        client: httpx.AsyncClient,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.client = client
        self.clock = clock
        self.rng = rng or random.Random()
        self._locks = {name: asyncio.Lock() for name in notifiers}

    async def drain(self, destinations: Iterable[str] | None = None) -> DrainResult:
        names = [n for n in (destinations or self.notifiers) if n in self.notifiers]
        results = await asyncio.gather(*(self._drain_one(name) for name in dict.fromkeys(names)))
        total = DrainResult()
        for result in results:
            total.sent += result.sent
            total.failed += result.failed
            total.dead += result.dead
            total.errors += result.errors
        return total

    async def _drain_one(self, name: str) -> DrainResult:
        result = DrainResult()
        async with self._locks[name]:
            for row in self.store.pending(name):
                now = self.clock()
                if row["next_attempt"] and datetime.fromisoformat(row["next_attempt"]) > now:
                    break
                if not await self._attempt(name, row, now, result):
                    break
        return result

    async def _attempt(self, name: str, row: dict, now: datetime, result: DrainResult) -> bool:
        """Try one delivery; True when the drain may go on to the next one."""
        delivery = Delivery(row["id"], row["feed"], name, Talk.from_dict(row["talk"]))
        context = f"destination {name}: talk {delivery.talk.guid}"
        attempts = row["attempts"] + 1
        try:
            await self.notifiers[name].send(delivery, self.client)
        except PermanentDeliveryError as exc:
            self._dead(name, row, attempts, str(exc), now)
            log.error("%s: rejected, dead-lettered: %s", context, exc)
            result.dead += 1
            result.errors.append(f"{name}: {exc}")
            return True
        except Exception as exc:
            error = (
                str(exc)
                if isinstance(exc, TransientDeliveryError)
                else (f"unexpected {type(exc).__name__}: {exc}")
            )
            if not isinstance(exc, TransientDeliveryError):
                log.exception("%s: the notifier failed unexpectedly", context)
            result.failed += 1
            result.errors.append(f"{name}: {error}")
            created = datetime.fromisoformat(row["created"])
            if now - created >= GIVE_UP_AFTER:
                self._dead(name, row, attempts, f"gave up after {attempts} attempts: {error}", now)
                log.error("%s: giving up after %d attempts: %s", context, attempts, error)
                return True
            delay = retry_delay(attempts, self.rng, getattr(exc, "retry_after", None))
            next_attempt = iso(now + timedelta(seconds=delay))
            with self.store.batch():
                self.store.delivery_failed(
                    row["id"], attempts=attempts, last_error=error, next_attempt=next_attempt
                )
                self.store.update_destination_state(name, last_error=error, last_error_at=iso(now))
            log.warning(
                "%s: failed (attempt %d), retrying in %.0fs: %s", context, attempts, delay, error
            )
            return False
        with self.store.batch():
            self.store.delivered(row["id"])
            self.store.update_destination_state(name, last_success=iso(now))
        log.info("%s: delivered", context)
        result.sent += 1
        return True

    def _dead(self, name: str, row: dict, attempts: int, error: str, now: datetime) -> None:
        with self.store.batch():
            self.store.delivery_failed(
                row["id"], attempts=attempts, last_error=error, dead=True, next_attempt=None
            )
            self.store.update_destination_state(name, last_error=error, last_error_at=iso(now))
