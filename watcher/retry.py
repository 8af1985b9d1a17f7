"""How deliveries are retried (pure): the delay of one delivery that keeps failing, the
probe of a destination that is down, and the records of what came of an attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

RETRY_BASE = 30.0
RETRY_CAP = 3600.0
PROBE_BASE = 2.0
PROBE_CAP = 30.0
RETRY_AFTER_CAP = RETRY_CAP * 6


def retry_delay(failing_for: float, rng: random.Random) -> float:
    """Seconds until one delivery that keeps failing is tried again: as long as it has
    been failing (from RETRY_BASE to RETRY_CAP), jittered. Not a count of attempts, which
    quick retries would inflate."""
    ceiling = min(max(failing_for, RETRY_BASE), RETRY_CAP)
    return ceiling * (0.5 + rng.random() / 2)


def probe_delay(down_for: float, rng: random.Random, retry_after: float | None = None) -> float:
    """Seconds until a destination that is down is probed again: a quarter of how long it
    has been down (from PROBE_BASE to PROBE_CAP), jittered; at least its `Retry-After`."""
    delay = min(max(down_for / 4, PROBE_BASE), PROBE_CAP) * (0.8 + rng.random() * 0.4)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


@dataclass
class Outage:
    """A destination seen down: since when, and when to probe it."""

    since: datetime
    probe_at: datetime


class Outcome(Enum):
    SENT = "sent"
    DEAD = "dead"
    RETRY = "retry"  # a transient failure: the delivery was scheduled again
    DOWN = "down"  # a transient failure that says the destination is down as a whole
    GAVE_UP = "gave_up"  # a transient failure past give_up_after: dead-lettered


@dataclass(frozen=True)
class Attempt:
    """What came of one try: the outcome, the server's `Retry-After`, the error said."""

    outcome: Outcome
    retry_after: float | None = None
    error: str | None = None


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
