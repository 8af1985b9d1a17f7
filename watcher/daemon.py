"""`watcher run`: the scheduler, signals and a clean shutdown."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.app import Watcher
from watcher.clock import utcnow
from watcher.config import Config
from watcher.events import Observers
from watcher.fetch import new_client
from watcher.live import HEARTBEAT_SECONDS, Live
from watcher.metrics import Metrics
from watcher.store import Store

if TYPE_CHECKING:
    from watcher.server import HTTPSide

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0
ACTIVITY_FLUSH_SECONDS = 60.0  # how stale `watcher status` may show a last poll


def jitter(interval: float) -> float:
    """A little spread so feeds with one interval don't all fire together."""
    return min(interval * 0.1, 60.0)


async def run(config: Config, stop: asyncio.Event | None = None) -> int:
    """Poll every feed now, then each at its interval, until SIGINT/SIGTERM (or `stop`)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    store = Store(config.state)
    in_flight: set[asyncio.Task[object]] = set()

    def tracked(job: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[None]]:
        """The job, its task known while it runs (for a clean shutdown), its failure logged."""

        async def wrapper(*args: object) -> None:
            task = asyncio.current_task()
            assert task is not None  # a coroutine run by the scheduler runs in a task
            in_flight.add(task)
            try:
                await job(*args)
            except Exception:
                log.exception("job %s failed", getattr(job, "__name__", job))
            finally:
                in_flight.discard(task)

        return wrapper

    http_side: HTTPSide | None = None
    try:
        async with new_client(config.timeout) as client:
            observers = Observers()
            live = Live(config, store)
            metrics = Metrics(live.snapshot, lambda: [feed.name for feed in live.config.feeds])
            for feed in config.feeds:
                metrics.start_feed(feed.name)
            observers.subscribe(metrics.observe)
            watcher = Watcher(config, store, client, utcnow, observers)
            scheduler = AsyncIOScheduler(timezone=UTC)
            live.scheduled = functools.partial(_next_runs, scheduler)
            scheduler.add_listener(_missed_logger(), EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
            start = utcnow()
            for feed in config.feeds:
                scheduler.add_job(
                    tracked(functools.partial(watcher.poll, respect_backoff=True)),
                    IntervalTrigger(seconds=feed.interval, jitter=jitter(feed.interval)),
                    args=[feed],
                    id=f"feed:{feed.name}",
                    name=f"poll {feed.name}",
                    next_run_time=start,
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=max(1, int(feed.interval)),
                )
            scheduler.add_job(
                tracked(_flusher(store)),
                IntervalTrigger(seconds=ACTIVITY_FLUSH_SECONDS),
                id="flush",
                name="write when each feed was polled",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(ACTIVITY_FLUSH_SECONDS),
            )
            scheduler.add_job(
                live.beat,
                IntervalTrigger(seconds=HEARTBEAT_SECONDS),
                id="heartbeat",
                name="heartbeat",
                max_instances=1,
                coalesce=True,
            )
            if config.listen:
                from watcher.server import build_app, serve  # uvicorn: only with a listen

                http_side = await serve(build_app(live, metrics), *config.listen)
                store.announce(http_side.address)
                log.info("serving /healthz, /metrics, /status.json and / on %s", http_side.address)
            deliveries = asyncio.create_task(watcher.deliverer.run_forever())
            scheduler.start()
            log.info("watching %d feeds; state in %s", len(config.feeds), config.state)
            await stop.wait()
            log.info("stopping: no new polls; waiting up to %gs for work in flight", SHUTDOWN_GRACE)
            scheduler.pause()  # shutdown() would cancel the polls in flight at once
            watcher.deliverer.stop()
            _, pending = await asyncio.wait({deliveries, *in_flight}, timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            scheduler.shutdown(wait=False)
    finally:
        if http_side is not None:
            await http_side.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        store.close()
    log.info("stopped")
    return 0


def _next_runs(scheduler: AsyncIOScheduler) -> dict[str, datetime | None]:
    """When the schedule runs each feed's poll next."""
    runs: dict[str, datetime | None] = {}
    for job in scheduler.get_jobs():
        if job.id.startswith("feed:"):
            runs[job.id.removeprefix("feed:")] = job.next_run_time
    return runs


def _flusher(store: Store) -> Callable[[], Awaitable[None]]:
    async def flush() -> None:  # async: APScheduler would run a plain function in a thread
        store.flush()

    return flush


def _missed_logger() -> Callable[[JobEvent], None]:
    """One line per skipped or missed run: WARNING the first time for a job (a feed slower
    than its interval is worth knowing of), DEBUG after that."""
    reported: set[str] = set()

    def log_missed(event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            what = "missed its run time; it runs at the next one"
        else:
            what = "is still running; skipped this run"
        if event.job_id in reported:
            log.debug("job %s %s", event.job_id, what)
            return
        reported.add(event.job_id)
        log.warning("job %s %s (further skips are logged at debug level)", event.job_id, what)

    return log_missed
