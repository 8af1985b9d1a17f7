"""What happened, told to whoever listens: each poll and each delivery attempt is an
event, and observers (metrics, a status page, alerts, a test) subscribe to them. The
pipeline knows nothing of its observers, and an observer that fails never fails it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

log = logging.getLogger(__name__)


class PollOutcome(StrEnum):
    """What a poll came to."""

    SKIPPED = "skipped"  # backing off, or gone: not fetched
    NOT_MODIFIED = "not_modified"  # a 304
    UNCHANGED = "unchanged"  # the body read last time
    CHANGED = "changed"  # a new body was read (new talks or not)
    FAILED = "failed"


class DeliveryOutcome(StrEnum):
    SENT = "sent"
    RETRIED = "retried"  # failed, tried again later
    DEAD = "dead"  # dead-lettered


@dataclass(frozen=True)
class PollEvent:
    feed: str
    outcome: PollOutcome
    at: datetime
    seconds: float  # how long the poll took, waits for a slot excluded
    new_talks: int = 0  # announced (queued for delivery)
    error: str | None = None
    degraded: bool = False
    fetch_seconds: float | None = None  # how long its fetch took, if it fetched


@dataclass(frozen=True)
class DeliveryEvent:
    destination: str
    feed: str
    guid: str
    outcome: DeliveryOutcome
    at: datetime
    error: str | None = None


Event = PollEvent | DeliveryEvent
Observer = Callable[[Event], None]


class Observers:
    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def subscribe(self, observer: Observer) -> None:
        self._observers.append(observer)

    def emit(self, event: Event) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                log.exception("observer %r failed on %s", observer, type(event).__name__)
