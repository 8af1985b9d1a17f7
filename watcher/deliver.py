"""Drain the outbox: send each queued delivery; remove it only once it was accepted.

Each destination drains on its own (one's outage or slowness never delays
another), in queue order, which is publication order within a feed. A transient
failure schedules a retry with exponential backoff and jitter (or the
server's `Retry-After`) and stops that destination's drain so order is kept; a
permanent failure, or one still failing after the destination's `give_up_after`
or `max_attempts`, is dead-lettered:
kept in the store, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from watcher.clock import iso
from watcher.config import DeliveryPolicy
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
IDLE_WAKE = 60.0


def retry_delay(attempts: int, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds until the next try after `attempts` failures: exponential, jittered,
    or the server's `Retry-After` when it gave one."""
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

    def add(self, other: DrainResult) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.dead += other.dead
        self.errors += other.errors


class Deliverer:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        policies: Mapping[str, DeliveryPolicy],
        client: httpx.AsyncClient,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.policies = policies
        self.client = client
        self.clock = clock
        self.rng = rng or random.Random()
        self._locks = {name: asyncio.Lock() for name in notifiers}
        self._wake = {name: asyncio.Event() for name in notifiers}
        self._next_slot = dict.fromkeys(notifiers, 0.0)
        self._stopping = False

    async def drain(self, destinations: Iterable[str] | None = None) -> DrainResult:
        """One pass over the queue of each destination, all destinations at once."""
        names = [n for n in dict.fromkeys(destinations or self.notifiers) if n in self.notifiers]
        total = DrainResult()
        for result in await asyncio.gather(*(self._drain_one(name) for name in names)):
            total.add(result)
        return total

    def kick(self, destinations: Iterable[str]) -> None:
        """Wake the delivery loops of these destinations (new talks were queued)."""
        for name in destinations:
            if name in self._wake:
                self._wake[name].set()

    async def run_forever(self) -> None:
        """One loop per destination, so one's outage or slowness never delays another.

        Returns after `stop()`, once each loop has finished the delivery in hand.
        """
        await asyncio.gather(*(self._loop(name) for name in self.notifiers))

    def stop(self) -> None:
        self._stopping = True
        for event in self._wake.values():
            event.set()

    async def _loop(self, name: str) -> None:
        while not self._stopping:
            self._wake[name].clear()
            try:
                await self._drain_one(name)
            except Exception:
                log.exception("destination %s: delivery loop failed; trying again", name)
            wait = self._due_in(name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake[name].wait(), wait)

    def _due_in(self, name: str) -> float:
        pending = self.store.pending(name)
        if not pending or not pending[0]["next_attempt"]:
            return IDLE_WAKE if not pending else 1.0
        due = datetime.fromisoformat(pending[0]["next_attempt"]) - self.clock()
        return min(max(due.total_seconds(), 0.05), IDLE_WAKE)

    async def _drain_one(self, name: str) -> DrainResult:
        result = DrainResult()
        async with self._locks[name]:
            for row in self.store.pending(name):
                if self._stopping:
                    break
                now = self.clock()
                if row["next_attempt"] and datetime.fromisoformat(row["next_attempt"]) > now:
                    break
                if not await self._attempt(name, row, result):
                    break
        return result

    async def _pace(self, name: str) -> None:
        rate = self.policies[name].rate
        if not rate:
            return
        loop = asyncio.get_running_loop()
        wait = self._next_slot[name] - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_slot[name] = max(loop.time(), self._next_slot[name]) + 1.0 / rate

    async def _attempt(self, name: str, row: dict, result: DrainResult) -> bool:
        """Try one delivery; True when the drain may go on to the next one."""
        delivery = Delivery(row["id"], row["feed"], name, Talk.from_dict(row["talk"]))
        context = f"destination {name}: talk {delivery.talk.guid}"
        attempts = row["attempts"] + 1
        await self._pace(name)
        try:
            await self.notifiers[name].send(delivery, self.client)
        except PermanentDeliveryError as exc:
            self._dead(name, row, attempts, str(exc))
            log.error("%s: rejected, dead-lettered: %s", context, exc)
            result.dead += 1
            result.errors.append(f"{name}: {exc}")
            return True
        except Exception as exc:
            if isinstance(exc, TransientDeliveryError):
                error = str(exc)
            else:
                error = f"unexpected {type(exc).__name__}: {exc}"
                log.exception("%s: the notifier failed unexpectedly", context)
            result.errors.append(f"{name}: {error}")
            retrying = self._retry_later(name, row, attempts, error, exc, context)
            if retrying:
                result.failed += 1
            else:
                result.dead += 1
            return not retrying
        now = self.clock()
        with self.store.batch():
            self.store.delivered(row["id"])
            self.store.update_destination_state(name, last_success=iso(now))
        log.info("%s: delivered", context)
        result.sent += 1
        return True

    def _retry_later(self, name, row, attempts, error, exc, context) -> bool:
        """Schedule the next try (True), or dead-letter the delivery if it is time to give
        up (False): `give_up_after` counts from its first failure, not from when it was
        queued, so a backlog that waited out an outage is not dropped on one failure."""
        policy = self.policies[name]
        now = self.clock()
        first_failed = row.get("first_failed_at") or iso(now)
        failing_for = (now - datetime.fromisoformat(first_failed)).total_seconds()
        if failing_for >= policy.give_up_after or (
            policy.max_attempts and attempts >= policy.max_attempts
        ):
            self._dead(name, row, attempts, f"gave up after {attempts} attempts: {error}")
            log.error("%s: giving up after %d attempts: %s", context, attempts, error)
            return False
        delay = retry_delay(attempts, self.rng, getattr(exc, "retry_after", None))
        with self.store.batch():
            self.store.delivery_failed(
                row["id"],
                attempts=attempts,
                last_error=error,
                first_failed_at=first_failed,
                next_attempt=iso(now + timedelta(seconds=delay)),
            )
            self.store.update_destination_state(name, last_error=error, last_error_at=iso(now))
        log.warning(
            "%s: failed (attempt %d), retrying in %.0fs: %s", context, attempts, delay, error
        )
        return True

    def _dead(self, name: str, row: dict, attempts: int, error: str) -> None:
        now = iso(self.clock())
        with self.store.batch():
            self.store.delivery_failed(
                row["id"],
                attempts=attempts,
                last_error=error,
                dead=True,
                next_attempt=None,
                dead_at=now,
            )
            self.store.update_destination_state(name, last_error=error, last_error_at=now)
