"""`watcher run`: the scheduler, signals and a clean shutdown."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.app import Watcher
from watcher.backfill import backfill, selection
from watcher.clock import iso, utcnow
from watcher.config import Config, FeedConfig, load_config
from watcher.events import Observers
from watcher.fetch import new_client
from watcher.live import HEARTBEAT_SECONDS, Live
from watcher.metrics import Metrics
from watcher.reload import plan_reload
from watcher.schema import ConfigError
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
    """Poll every feed now, then each at its interval, until SIGINT/SIGTERM (or `stop`);
    SIGHUP reloads the config."""
    return await Daemon(config).run(stop or asyncio.Event())


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.in_flight: set[asyncio.Task[object]] = set()
        self.scheduler = AsyncIOScheduler(timezone=UTC)

    def tracked(self, job: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[None]]:
        """The job, its task known while it runs (for a clean shutdown), its failure logged."""

        async def wrapper(*args: object) -> None:
            task = asyncio.current_task()
            assert task is not None  # a coroutine run by the scheduler runs in a task
            self.in_flight.add(task)
            try:
                await job(*args)
            except Exception:
                log.exception("job %s failed", getattr(job, "__name__", job))
            finally:
                self.in_flight.discard(task)

        return wrapper

    async def run(self, stop: asyncio.Event) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        store = Store(self.config.state)
        http_side: HTTPSide | None = None
        try:
            async with new_client(self.config.timeout) as client:
                self.live = Live(self.config, store, functools.partial(_next_runs, self.scheduler))
                self.metrics = Metrics(
                    self.live.snapshot, lambda: [feed.name for feed in self.live.config.feeds]
                )
                observers = Observers()
                observers.subscribe(self.metrics.observe)
                self.watcher = Watcher(self.config, store, client, utcnow, observers)
                self._schedule(store)
                if self.config.listen:
                    from watcher.server import build_app, serve  # uvicorn: only with a listen

                    app = build_app(self.live, self.metrics, self.redeliver, self.backfill)
                    http_side = await serve(app, *self.config.listen)
                    store.announce(http_side.address)
                    log.info(
                        "serving /healthz, /metrics, /status.json and / on %s", http_side.address
                    )
                deliveries = asyncio.create_task(self.watcher.deliverer.run_forever())
                self.scheduler.start()
                log.info(
                    "watching %d feeds; state in %s", len(self.config.feeds), self.config.state
                )
                await stop.wait()
                await self._shut_down(deliveries)
        finally:
            if http_side is not None:
                await http_side.stop()
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            store.close()
        log.info("stopped")
        return 0

    def _schedule(self, store: Store) -> None:
        self.scheduler.add_listener(_missed_logger(), EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        start = utcnow()
        for feed in self.config.feeds:
            self._schedule_feed(feed, start)
        self.scheduler.add_job(
            self.tracked(_flusher(store)),
            IntervalTrigger(seconds=ACTIVITY_FLUSH_SECONDS),
            id="flush",
            name="write when each feed was polled",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(ACTIVITY_FLUSH_SECONDS),
        )
        self.scheduler.add_job(
            self.live.beat,
            IntervalTrigger(seconds=HEARTBEAT_SECONDS),
            id="heartbeat",
            name="heartbeat",
            max_instances=1,
            coalesce=True,
        )

    def _schedule_feed(self, feed: FeedConfig, first_run: datetime) -> None:
        self.metrics.start_feed(feed.name)
        self.scheduler.add_job(
            self.tracked(functools.partial(self.watcher.poll, respect_backoff=True)),
            IntervalTrigger(seconds=feed.interval, jitter=jitter(feed.interval)),
            args=[feed],
            id=f"feed:{feed.name}",
            name=f"poll {feed.name}",
            next_run_time=first_run,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(feed.interval)),
            replace_existing=True,
        )

    def reload(self) -> None:
        """Re-read the config (SIGHUP): feeds and destinations added, removed or changed
        take effect now; queued deliveries are kept. A config that fails to load leaves the
        one in force running, and says why in one line (and on /healthz)."""
        self.live.reloads += 1
        try:
            new = load_config(self.config.path)
            plan = plan_reload(self.config, new)
        except ConfigError as exc:
            self.live.reload_error = str(exc)
            log.error("reload failed, the config in force stays: %s", exc)
            return
        now = utcnow()
        for name in plan.feeds_removed:
            self.scheduler.remove_job(f"feed:{name}")
        old_feeds = {feed.name: feed for feed in self.config.feeds}
        for feed in plan.feeds_changed:
            moved = feed.url != old_feeds[feed.name].url
            job = self.scheduler.get_job(f"feed:{feed.name}")
            next_run = now if moved or job is None else job.next_run_time
            self._schedule_feed(feed, next_run)
        for feed in plan.feeds_added:
            self._schedule_feed(feed, now)
        self.watcher.reconfigure(new)
        self.config = self.live.config = new
        self.live.reload_error = None
        self.live.reloaded_at = now
        log.info("reloaded %s: %s", new.path, plan.summary())
        if plan.restart_only:
            keys = ", ".join(f"watcher.{key}" for key in plan.restart_only)
            log.warning("reload: %s changed; it takes effect at the next restart", keys)

    def redeliver(self, destination: str | None) -> int:
        """Put dead letters (of one destination, or all) back in the queue, and deliver."""
        count = self.watcher.store.requeue_dead(destination, iso(utcnow()))
        log.info("re-queued %d dead-lettered deliveries", count)
        self.watcher.deliverer.kick([destination] if destination else self.config.destinations)
        return count

    async def backfill(self, request: Mapping[str, Any]) -> int:
        """Queue seen talks again (`watcher backfill` asks through the HTTP side)."""
        name = request.get("feed") if isinstance(request, Mapping) else None
        feed = next((f for f in self.config.feeds if f.name == name), None)
        if feed is None:
            raise ConfigError(f"no feed named {request.get('feed')!r}")
        chosen = selection(request, feed)
        queued = await backfill(self.watcher.store, self.watcher.client, self.config, feed, chosen)
        log.info("backfill of feed %s: queued %d deliveries", feed.name, len(queued))
        self.watcher.deliverer.kick({delivery.destination for delivery in queued})
        return len(queued)

    async def _shut_down(self, deliveries: asyncio.Task[None]) -> None:
        log.info("stopping: no new polls; waiting up to %gs for work in flight", SHUTDOWN_GRACE)
        self.scheduler.pause()  # shutdown() would cancel the polls in flight at once
        self.watcher.deliverer.stop()
        _, pending = await asyncio.wait({deliveries, *self.in_flight}, timeout=SHUTDOWN_GRACE)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        self.scheduler.shutdown(wait=False)
        self.watcher.close()


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
