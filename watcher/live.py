"""The running daemon as its HTTP side sees it: the config in force, the state in
memory, the schedule, a heartbeat, and how the last reload went; and from these its
health and its status."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from watcher.clock import iso, utcnow
from watcher.config import Config
from watcher.status import collect_status
from watcher.store import Snapshot, Store

HEARTBEAT_SECONDS = 1.0
HEARTBEAT_STALE = 5.0  # a heartbeat older than this: the scheduler is stuck or dead


@dataclass
class Live:
    config: Config
    store: Store
    scheduled: Callable[[], Mapping[str, datetime | None]] = dict
    started: datetime = field(default_factory=utcnow)
    last_beat: float = field(default_factory=time.monotonic)
    reload_error: str | None = None
    reloaded_at: datetime | None = None
    reloads: int = 0  # attempted since start, failed or not: how `watcher reload` sees one end

    async def beat(self) -> None:
        """Run by the scheduler every HEARTBEAT_SECONDS, as a job of its own, on the event
        loop (a plain function would run in a thread): a fresh beat says both run."""
        self.last_beat = time.monotonic()

    def snapshot(self) -> Snapshot:
        return self.store.snapshot()

    def status(self) -> dict[str, Any]:
        report = collect_status(self.config, self.snapshot(), utcnow(), scheduled=self.scheduled())
        report["daemon"] = f"running (pid {os.getpid()}) since {iso(self.started)}"
        report["reload"] = self._reload()
        return report

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy: the scheduler runs its jobs (a fresh heartbeat), the state's folder can
        be written, and a config is in force. A failed reload is said, not unhealthy: the
        config before it still runs."""
        problems = []
        age = time.monotonic() - self.last_beat
        if age > HEARTBEAT_STALE:
            problems.append(f"the scheduler's heartbeat is {age:.0f}s old")
        folder = self.config.state.parent
        if not os.access(folder, os.W_OK):
            problems.append(f"{folder}: the state folder is not writable")
        body: dict[str, Any] = {
            "status": "ok" if not problems else "unhealthy",
            "heartbeat_age_seconds": round(age, 3),
            "config": str(self.config.path),
            "feeds": len(self.config.feeds),
            "reload": self._reload(),
            "reloads": self.reloads,
        }
        if problems:
            body["problems"] = problems
        return not problems, body

    def _reload(self) -> str:
        if self.reload_error:
            return f"the last reload failed: {self.reload_error}"
        if self.reloaded_at:
            return f"reloaded at {iso(self.reloaded_at)}"
        return "as started"
