"""When a failing feed is polled again (pure): its interval, doubled per failure in a
row, jittered, at least what the server asks, harder for failures that will repeat."""

from __future__ import annotations

from datetime import datetime

from watcher.config import FeedConfig
from watcher.store import FeedState

# A failure that will repeat until something changes (404, not a feed) is backed off as
# this many more failures in a row would be: its first retry is 4 intervals out, not 1.
PERMANENT_HEAD_START = 2


def backoff_delay(
    failures: int, interval: float, cap: float, retry_after: float | None, spread: float = 0.5
) -> float:
    """Seconds until a failing feed is polled again: its interval, doubled for each
    failure in a row after the first, up to `cap`; at least the server's Retry-After.
    `spread` (0 to 1, at random) moves it by up to a quarter either way, so that feeds
    failing together, or one feed and a server that flaps, fall out of step."""
    cap = max(cap, interval)
    doublings = min(max(failures - 1, 0), 60)  # past 60 it is the cap anyway; 2.0**1024 overflows
    delay: float = min(interval * 2.0**doublings * (0.75 + spread / 2), cap)
    return min(max(delay, retry_after), cap) if retry_after is not None else delay


def backing_off(feed: FeedConfig, state: FeedState, now: datetime) -> str | None:
    """Why the daemon should not poll this feed now, if it should not."""
    if state.gone and state.gone_url == feed.url:
        return "gone (HTTP 410); change its url in the config to poll it again"
    if state.retry_at and datetime.fromisoformat(state.retry_at) > now:
        return f"backing off after {state.failures} failures until {state.retry_at}"
    return None
