"""Drain the outbox: send each queued delivery; remove it only once it was accepted.

Each destination drains on its own (one's outage or slowness never delays
another), in queue order, which is publication order within a feed.

Two kinds of transient failure are told apart, because they call for opposite
answers:

- **The destination is down** (it does not answer at all, answers with
  `Retry-After`, fails the probe of an outage, or fails two deliveries in a row):
  it is backed off as a whole. Its drain stops, and it is probed
  again after a delay that follows the outage (a quarter of how long it has been
  down, from 2 s to 30 s, jittered; at least `Retry-After`). The deliveries that
  failed wait for that probe, in queue order, so order is kept through an outage,
  and the queue flows again within seconds of the destination's return.
- **One delivery keeps failing** while others are accepted (a receiver that chokes
  on one payload): it steps aside. It is retried on its own schedule (a delay that
  grows with how long it has been failing, from 30 s to 1 h, jittered) while the
  deliveries after it go on; so a delivery that keeps failing is the one case
  where a later talk of a feed can arrive before an earlier one.

A permanent failure, or one still failing after the destination's
`give_up_after` or `max_attempts`, is dead-lettered: kept in the store, never
silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

import httpx

from watcher.clock import iso
from watcher.config import DeliveryPolicy
from watcher.digest import send_digest
from watcher.events import DeliveryEvent, DeliveryOutcome, Observers
from watcher.ledger import Ledger
from watcher.logs import log_context
from watcher.notifiers.base import (
    Delivery,
    Notifier,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnreachableError,
)
from watcher.retry import (
    Attempt,
    DrainResult,
    Outage,
    Outcome,
    probe_delay,
    retry_delay,
)
from watcher.store import OutboxEntry, Store, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

IDLE_WAKE = 60.0
FAILED_PASS_WAIT = 5.0  # after a pass that failed (a full disk, a bug): not a busy loop
MARKS_IN_FLIGHT = 4  # a destination's deliveries sent and still being written (`_marked`)


class Deliverer:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        policies: Mapping[str, DeliveryPolicy],
        client: httpx.AsyncClient,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        observers: Observers | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.clock = clock
        self.rng = rng or random.Random()
        self.ledger = Ledger(store, lambda name: self.policies.get(name), clock, self.rng)
        self.observers = observers or Observers()
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._next_slot: dict[str, float] = {}
        self._outages: dict[str, Outage] = {}
        self._failing: dict[str, dict[str, OutboxEntry]] = {}  # see _drain_one
        self._marking: dict[str, list[tuple[str, asyncio.Future[None]]]] = {}  # see _marked
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self._stopping = False
        self._stopped = asyncio.Event()
        self.reconfigure(notifiers, policies)

    def reconfigure(
        self, notifiers: Mapping[str, Notifier], policies: Mapping[str, DeliveryPolicy]
    ) -> None:
        """Deliver to these destinations from now on. A destination removed keeps its queue
        in the store (its loop ends after the delivery in hand); one added gets a loop; one
        changed is sent to as it is now from its next delivery on."""
        self.notifiers = dict(notifiers)
        self.policies = dict(policies)
        for name in notifiers:
            self._locks.setdefault(name, asyncio.Lock())
            self._wake.setdefault(name, asyncio.Event())
            self._next_slot.setdefault(name, 0.0)
        for name, event in self._wake.items():
            if name not in notifiers:
                event.set()  # its loop sees it is gone
        if self._running:
            self._start_loops()

    async def drain(self, destinations: Iterable[str] | None = None) -> DrainResult:
        """One pass over the queue of each destination, all destinations at once."""
        names = [n for n in dict.fromkeys(destinations or self.notifiers) if n in self.notifiers]
        total = DrainResult()
        for result in await asyncio.gather(*(self._drain_one(name) for name in names)):
            total.add(result)
        return total

    async def deliver_during(self, work: Awaitable[T]) -> T:
        """Deliver while `work` runs (the polls of a `watcher poll`), and once more when it
        is done: each destination's queue is passed over at once, again whenever talks are
        queued for it (`kick`), and a last time at the end. A destination that is down
        after a pass (it did not answer, or failed twice in a row) is not tried again in
        this run, as with one `drain()` after the polls: its queue is left for the next."""
        finished = asyncio.Event()
        followers = [asyncio.create_task(self._follow(n, finished)) for n in self.notifiers]
        try:
            return await work
        except BaseException:
            self._stopping = True  # the polls were interrupted: end after the delivery in hand
            raise
        finally:
            finished.set()
            for event in self._wake.values():
                event.set()
            ended = await asyncio.gather(*followers, return_exceptions=True)
            failures = [e for e in ended if isinstance(e, BaseException)]
            if failures and not self._stopping:
                raise failures[0]

    async def _follow(self, name: str, finished: asyncio.Event) -> None:
        wake = self._wake[name]
        wake.set()  # what earlier runs left queued goes first
        while name in self.notifiers and not self._stopping:
            await wake.wait()
            wake.clear()
            last = finished.is_set()
            try:
                await self._drain_one(name)
            except StoreError as exc:  # a full disk: said now; the run fails at its end
                log.error("destination %s: cannot record a delivery: %s", name, exc)
                raise
            except Exception:
                log.exception("destination %s: delivering failed", name)
                raise
            if last or name in self._outages:
                return

    def kick(self, destinations: Iterable[str]) -> None:
        """Wake the delivery loops of these destinations (new talks were queued)."""
        for name in destinations:
            if name in self._wake:
                self._wake[name].set()

    async def run_forever(self) -> None:
        """One loop per destination, so one's outage or slowness never delays another.

        Returns after `stop()`, once each loop has finished the delivery in hand.
        """
        self._running = True
        self._start_loops()
        await self._stopped.wait()
        await asyncio.gather(*self._loops.values())

    def _start_loops(self) -> None:
        for name in self.notifiers:
            if name not in self._loops or self._loops[name].done():
                self._loops[name] = asyncio.create_task(self._loop(name))

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        for event in self._wake.values():
            event.set()

    async def _loop(self, name: str) -> None:
        while not self._stopping and name in self.notifiers:
            self._wake[name].clear()
            wait = None
            try:
                await self._drain_one(name)
            except StoreError as exc:  # a full disk: say it in one line, and do not spin
                log.error("destination %s: cannot record a delivery: %s", name, exc)
                wait = FAILED_PASS_WAIT
            except Exception:
                log.exception("destination %s: delivery loop failed; trying again", name)
                wait = FAILED_PASS_WAIT
            wait = max(wait or 0.0, self._due_in(name))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake[name].wait(), wait)

    def _due_in(self, name: str) -> float:
        """Seconds until the destination's next delivery is due: its probe when it is down,
        else the soonest of its queued deliveries."""
        outage = self._outages.get(name)
        pending = self.store.pending(name)
        if not pending:
            return IDLE_WAKE
        if outage is not None:
            due = outage.probe_at
        else:
            due = min(self._due(name, entry) or self.clock() for entry in pending)
        wait = (due - self.clock()).total_seconds()
        return min(max(wait, 0.05), IDLE_WAKE)

    async def _drain_one(self, name: str) -> DrainResult:
        """One pass over the destination's queue: each due delivery in order; one that is
        not due (stepped aside) is passed over; the pass ends when the destination is down."""
        result = DrainResult()
        async with self._locks[name], log_context(destination=name):
            try:
                await self._pass(name, result)
            except BaseException:  # what stopped the pass is what is raised
                with contextlib.suppress(Exception):
                    await self._marks_written(name)
                raise
            await self._marks_written(name)
        return result

    async def _pass(self, name: str, result: DrainResult) -> None:
        """The pass itself: its deliveries are sent, and their writes handed over."""
        await self._send_digest(name, result)
        # those failed since the last one accepted, in this pass or an earlier one: two
        # deliveries failing in a row say the destination is down, however they came
        failed = self._failing.setdefault(name, {})
        for entry_id in [i for i in failed if (q := self.store.queued(i)) is None or q.dead]:
            del failed[entry_id]  # delivered or dead-lettered since
        for entry in self.store.pending(name):
            now = self.clock()
            if self._stopping or self._down(name, now) or name not in self.notifiers:
                break  # stopping, down, or removed by a reload
            if self._a_write_failed(name):
                break  # a full disk: said at the end of the pass, as the first failed write
            if ((due := self._due(name, entry)) and due > now) or self._in_digest(name, entry):
                continue
            attempt = await self._attempt(name, entry, result)
            self._tell(name, entry, attempt)
            await self._within_bound(name)
            outcome, retry_after = attempt.outcome, attempt.retry_after
            if outcome in (Outcome.SENT, Outcome.DEAD):  # it answered: it is up
                self._recovered(name)
                self._stepped_aside(name, list(failed.values()))
                failed.clear()
            elif outcome in (Outcome.RETRY, Outcome.DOWN):
                failed[entry.id] = entry
                # Down: it did not answer, asked to wait, failed a probe, or failed two
                # deliveries in a row. Else this one delivery may be the trouble: the
                # next one is tried, and if it goes through, this one steps aside.
                if (
                    outcome is Outcome.DOWN
                    or retry_after is not None
                    or name in self._outages
                    or len(failed) > 1
                ):
                    self._went_down(name, list(failed.values()), retry_after)
                    failed.clear()
                    break

    def _due(self, name: str, entry: OutboxEntry) -> datetime | None:
        """When a delivery may be tried: its retry's time; for a destination with a digest,
        not before the digest's first time after it was queued (an alert does not wait)."""
        retry = datetime.fromisoformat(entry.next_attempt) if entry.next_attempt else None
        policy = self.policies.get(name)
        if policy is None or policy.digest is None or entry.alert is not None:
            return retry
        due = policy.digest.next_after(datetime.fromisoformat(entry.created))
        return max(due, retry) if retry else due

    def _in_digest(self, name: str, entry: OutboxEntry) -> bool:
        """Whether the delivery goes out in a digest (its type can send one), not alone."""
        policy = self.policies.get(name)
        has_digests = hasattr(self.notifiers.get(name), "send_digest")
        return bool(policy and policy.digest) and has_digests and entry.alert is None

    async def _send_digest(self, name: str, result: DrainResult) -> None:
        """The due talks of a digest destination, as one message (`watcher.digest`)."""
        now = self.clock()
        send = getattr(self.notifiers[name], "send_digest", None)
        policy = self.policies.get(name)
        if send is None or policy is None or policy.digest is None:
            return  # every pass of every destination comes here: no queue read without a digest
        due = [
            entry
            for entry in self.store.pending(name)
            if self._in_digest(name, entry) and (self._due(name, entry) or now) <= now
        ]
        if not due or self._down(name, now):
            return
        await self._pace(name, policy)
        outcome, error = await send_digest(send, self.client, name, due)
        for entry in due:
            if outcome is Outcome.SENT:
                self.store.delivered(entry.id)
            elif outcome is Outcome.DEAD:
                self.ledger.dead(name, entry, entry.attempts + 1, error or "")
            self._tell(name, entry, Attempt(outcome, error=error))
        if outcome is Outcome.RETRY:  # the digest stays whole: one time for all its talks
            waited = (now - datetime.fromisoformat(due[0].created)).total_seconds()
            again = iso(now + timedelta(seconds=retry_delay(waited, self.rng)))
            tried = [dataclasses.replace(e, attempts=e.attempts + 1, last_error=error) for e in due]
            self.store.update_deliveries(dataclasses.replace(e, next_attempt=again) for e in tried)
            log.warning("destination %s: digest failed: %s; again at %s", name, error, again)
        elif outcome is Outcome.SENT:
            self.ledger.note(name, last_success=iso(self.clock()))
        result.sent += len(due) if outcome is Outcome.SENT else 0
        result.dead += len(due) if outcome is Outcome.DEAD else 0
        result.failed += len(due) if outcome is Outcome.RETRY else 0

    def _tell(self, name: str, entry: OutboxEntry, attempt: Attempt) -> None:
        said = _SAID.get(attempt.outcome, DeliveryOutcome.RETRIED)
        guid = str(entry.talk.guid)
        event = DeliveryEvent(name, entry.feed, guid, said, self.clock(), attempt.error)
        self.store.note_delivery(event)  # for the status page's recent talks
        self.observers.emit(event)

    def _down(self, name: str, now: datetime) -> bool:
        outage = self._outages.get(name)
        return outage is not None and outage.probe_at > now

    def _recovered(self, name: str) -> None:
        outage = self._outages.pop(name, None)
        if outage is not None:
            down = (self.clock() - outage.since).total_seconds()
            log.info("destination %s: answering again after %.0fs; delivering", name, down)

    def _stepped_aside(self, name: str, failed: list[OutboxEntry]) -> None:
        """These failed while the destination accepts others: their own schedules stand."""
        for entry in failed:
            queued = self.store.queued(entry.id)
            if queued is None or queued.dead:  # delivered since, or dead-lettered
                continue
            due = self._due(name, queued)
            log.warning(
                "destination %s: talk %s fails while others are accepted; it steps aside "
                "and is tried again at %s",
                name,
                entry.talk.guid,
                iso(due) if due else "once due",
            )

    def _went_down(self, name: str, failed: list[OutboxEntry], retry_after: float | None) -> None:
        """Back the destination off as a whole; the deliveries that failed wait for its
        probe, so that they go first, in order, when it answers again."""
        now = self.clock()
        outage = self._outages.get(name) or Outage(since=now, probe_at=now)
        delay = probe_delay((now - outage.since).total_seconds(), self.rng, retry_after)
        outage.probe_at = now + timedelta(seconds=delay)
        if name in self._outages:
            log.debug("destination %s: still down; probing it again in %.0fs", name, delay)
        else:
            log.warning("destination %s: down; probing it again in %.0fs", name, delay)
        self._outages[name] = outage
        probe_at = iso(outage.probe_at)
        current = (self.store.queued(entry.id) for entry in failed)
        self.store.update_deliveries(
            dataclasses.replace(entry, next_attempt=probe_at) for entry in current if entry
        )

    async def _pace(self, name: str, policy: DeliveryPolicy) -> None:
        rate = policy.rate
        if not rate:
            return
        loop = asyncio.get_running_loop()
        wait = self._next_slot[name] - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_slot[name] = max(loop.time(), self._next_slot[name]) + 1.0 / rate

    async def _attempt(self, name: str, entry: OutboxEntry, result: DrainResult) -> Attempt:
        """Try one delivery, and record what came of it."""
        delivery = Delivery(entry.id, entry.feed, name, entry.talk, entry.alert)
        attempts = entry.attempts + 1
        with log_context(
            feed=entry.feed, destination=name, talk=delivery.talk.guid, attempt=attempts
        ):
            return await self._send(name, entry, delivery, attempts, result)

    async def _send(
        self,
        name: str,
        entry: OutboxEntry,
        delivery: Delivery,
        attempts: int,
        result: DrainResult,
    ) -> Attempt:
        context = f"destination {name}: talk {delivery.talk.guid}"
        notifier, policy = self.notifiers[name], self.policies[name]  # as when it began
        await self._pace(name, policy)
        try:
            await notifier.send(delivery, self.client)
        except PermanentDeliveryError as exc:
            self.ledger.dead(name, entry, attempts, str(exc))
            log.error("%s: rejected, dead-lettered: %s", context, exc)
            result.dead += 1
            result.errors.append(f"{name}: {exc}")
            return Attempt(Outcome.DEAD, error=str(exc))
        except Exception as exc:
            if isinstance(exc, TransientDeliveryError):
                error = str(exc)
            else:
                error = f"unexpected {type(exc).__name__}: {exc}"
                log.exception("%s: the notifier failed unexpectedly", context)
            result.errors.append(f"{name}: {error}")
            retry_after = getattr(exc, "retry_after", None)
            if self.ledger.retry_later(
                name, entry, attempts, error, context, quiet=name in self._outages
            ):
                result.failed += 1
                unreachable = isinstance(exc, UnreachableError)
                return Attempt(Outcome.DOWN if unreachable else Outcome.RETRY, retry_after, error)
            result.dead += 1
            return Attempt(Outcome.GAVE_UP, error=error)
        self._marked(name, entry.id)
        self.ledger.note(name, last_success=iso(self.clock()))
        log.info("%s: delivered", context)
        result.sent += 1
        return Attempt(Outcome.SENT)

    def _marked(self, name: str, entry_id: str) -> None:
        """Take a delivery that was sent off the queue: its write (`Store.delivered_async`,
        in the store's writer thread) goes on while the next delivery is sent, and the pass
        waits for it at its end (`_marks_written`). Waiting for each before sending the
        next held a destination to one delivery per write while polls filled the writer's
        queue: 30 ms a delivery, where the send took 20. At most `MARKS_IN_FLIGHT` are
        being written at once (`_within_bound`): after a crash, only those (and the one
        being sent) can arrive twice."""
        mark = asyncio.ensure_future(self.store.delivered_async(entry_id))
        mark.add_done_callback(lambda done: self._written(entry_id, done))
        self._marking.setdefault(name, []).append((entry_id, mark))

    def _written(self, entry_id: str, mark: asyncio.Future[None]) -> None:
        """A delivery's write is done. One that failed (a full disk) is let go of in memory:
        sent, but not recorded, it is not sent again by this process (at most once more,
        after a restart, with the same id for the receiver to drop). Done here, not by who
        waits for it, so that it holds for a write no one waits for (a shutdown)."""
        if not mark.cancelled() and mark.exception() is not None:
            self.store.forget_queued(entry_id)

    def _a_write_failed(self, name: str) -> bool:
        """Whether a write of this pass failed already: then it sends no more (each would
        be sent, and not recorded either)."""
        return any(
            mark.done() and not mark.cancelled() and mark.exception() is not None
            for _, mark in self._marking.get(name, [])
        )

    async def _within_bound(self, name: str) -> None:
        """Wait for the oldest writes until at most `MARKS_IN_FLIGHT` are in hand (or one
        failed: it is kept, for `_marks_written` to raise)."""
        marks = self._marking.get(name, [])
        while len(marks) > MARKS_IN_FLIGHT and not self._a_write_failed(name):
            oldest = marks[0][1]
            await asyncio.wait([oldest])
            if oldest.cancelled() or oldest.exception() is None:
                marks.pop(0)

    async def _marks_written(self, name: str) -> None:
        """Wait for the writes of the deliveries sent in this pass (a pass stopped by a
        shutdown waits too: the writes go on); the first that failed is raised."""
        marks = [mark for _, mark in self._marking.get(name, [])]
        if marks:
            await asyncio.shield(asyncio.gather(*marks, return_exceptions=True))
        self._marking.pop(name, None)
        for mark in marks:
            if not mark.cancelled() and (error := mark.exception()) is not None:
                raise error


_SAID = {  # for events
    Outcome.SENT: DeliveryOutcome.SENT,
    Outcome.DEAD: DeliveryOutcome.DEAD,
    Outcome.GAVE_UP: DeliveryOutcome.DEAD,
}
