"""What came of each delivery attempt, written to the store: a retry's schedule, a dead
letter, how the destination fares. `give_up_after` and `max_attempts` are applied here."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from watcher.clock import iso
from watcher.config import DeliveryPolicy
from watcher.retry import retry_delay
from watcher.store import OutboxEntry, Store

log = logging.getLogger("watcher.deliver")


class Ledger:
    def __init__(
        self,
        store: Store,
        policy: Callable[[str], DeliveryPolicy | None],
        clock: Callable[[], datetime],
        rng: random.Random,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.rng = rng

    def note(
        self,
        name: str,
        last_success: str | None = None,
        last_error: str | None = None,
        last_error_at: str | None = None,
    ) -> None:
        """Note how the destination fares (`watcher status` shows it)."""
        state = self.store.destination(name)
        if last_success:
            state = dataclasses.replace(state, last_success=last_success)
        if last_error:
            state = dataclasses.replace(state, last_error=last_error, last_error_at=last_error_at)
        self.store.save_destination(state)

    def retry_later(
        self,
        name: str,
        entry: OutboxEntry,
        attempts: int,
        error: str,
        context: str,
        quiet: bool = False,
    ) -> bool:
        """Schedule the next try (True), or dead-letter the delivery if it is time to give
        up (False): `give_up_after` counts from its first failure, not from when it was
        queued, so a backlog that waited out an outage is not dropped on one failure."""
        policy = self.policy(name) or DeliveryPolicy()  # removed by a reload: defaults
        now = self.clock()
        first_failed = entry.first_failed_at or iso(now)
        failing_for = (now - datetime.fromisoformat(first_failed)).total_seconds()
        if failing_for >= policy.give_up_after or (
            policy.max_attempts and attempts >= policy.max_attempts
        ):
            self.dead(name, entry, attempts, f"gave up after {attempts} attempts: {error}")
            log.error("%s: giving up after %d attempts: %s", context, attempts, error)
            return False
        delay = retry_delay(failing_for, self.rng)
        retry = dataclasses.replace(
            entry,
            attempts=attempts,
            last_error=error,
            first_failed_at=first_failed,
            next_attempt=iso(now + timedelta(seconds=delay)),
        )
        self.store.update_deliveries([retry])
        self.note(name, last_error=error, last_error_at=iso(now))
        # `quiet`: a probe of a destination known to be down; one WARNING said it went down.
        level = logging.DEBUG if quiet else logging.WARNING
        log.log(level, "%s: failed (attempt %d): %s", context, attempts, error)
        return True

    def dead(self, name: str, entry: OutboxEntry, attempts: int, error: str) -> None:
        now = iso(self.clock())
        dead = dataclasses.replace(
            entry, attempts=attempts, last_error=error, dead=True, next_attempt=None, dead_at=now
        )
        self.store.update_deliveries([dead])
        self.note(name, last_error=error, last_error_at=now)
