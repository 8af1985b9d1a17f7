"""The state's schema, in one place: each kind of row as a typed record.

A feed's file holds three tables: `feed` (its `FeedState`, one row), `seen` (a
`SeenTalk` per talk) and `outbox` (an `OutboxEntry` per queued delivery). The
main file holds `meta` (the schema version), `destinations` (a
`DestinationState` each), `activity` (when each feed was last polled and
last succeeded: written each poll, needed by nobody to decide anything, so kept
apart and written with `Store.flush()`) and `recent` (a `RecentTalk` for each of
the last talks queued, and what became of each of its deliveries: for the status
page, deciding nothing, written with `Store.flush()` too).

A field a record does not know (written by a newer watcher of the same schema,
or by hand) is kept in `extra` and written back as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from watcher.notifiers.base import Alert
from watcher.talk import Talk

SCHEMA_VERSION = 2

Row = dict[str, Any]
R = TypeVar("R")


def _split(cls: type[Any], row: Mapping[str, Any]) -> tuple[Row, Row]:
    """A row's fields the record knows, and the others."""
    names = _field_names(cls)
    known = {key: value for key, value in row.items() if key in names}
    return known, {key: value for key, value in row.items() if key not in names}


_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def _field_names(cls: type[Any]) -> frozenset[str]:
    """A record's fields but `extra` (asked for each row read: a feed's file has thousands)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls)) - {"extra"}
    return names


def _row(record: Any, *, leave_out: tuple[str, ...] = ()) -> Row:
    row = {
        f.name: getattr(record, f.name)
        for f in dataclasses.fields(record)
        if f.name != "extra" and f.name not in leave_out
    }
    return {**record.extra, **row}


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the watcher knows of a feed between polls."""

    name: str
    url: str | None = None  # the URL last polled (the config's may have changed since)
    baselined: bool = False  # its first poll is done: talks seen then were not announced
    etag: str | None = None
    last_modified: str | None = None
    body_sha256: str | None = None  # of the body read last, to skip reading it again
    failures: int = 0  # in a row
    retry_at: str | None = None  # backing off until then
    last_error: str | None = None
    last_error_at: str | None = None
    gone: bool = False  # answered 410 at `gone_url`
    gone_url: str | None = None
    degraded: bool = False  # its document could only be read in part
    discovered_url: str | None = None  # the feed advertised by the page at `page_url`
    page_url: str | None = None
    failing_since: str | None = None  # the first of the failures in a row
    alerted: str | None = None  # the alert in force: "failing" or "quiet" (watcher.alerts)
    newest_talk: str | None = None  # the newest talk's publication, as last read
    median_gap: float | None = None  # seconds between its talks, as last read
    last_new_talk: str | None = None  # when a poll (not the first) last queued new talks
    last_poll: str | None = None  # activity: kept in the main file
    last_success: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    ACTIVITY = ("last_poll", "last_success")

    @classmethod
    def from_rows(cls, name: str, row: Mapping[str, Any], activity: Mapping[str, Any]) -> FeedState:
        known, extra = _split(cls, {**row, **activity, "name": name})
        known["failures"] = int(known.get("failures") or 0)
        for flag in ("baselined", "gone", "degraded"):
            known[flag] = bool(known.get(flag))
        return cls(**known, extra=extra)

    def file_row(self) -> Row:
        """Its row in the feed's file: all but the activity."""
        return _row(self, leave_out=self.ACTIVITY)

    def activity_row(self) -> Row:
        return {"name": self.name, "last_poll": self.last_poll, "last_success": self.last_success}

    def same_file_row(self, other: FeedState) -> bool:
        return self.file_row() == other.file_row()


@dataclass(frozen=True, slots=True)
class SeenTalk:
    """A talk recorded as seen, by the keys it is known by (`watcher.select`)."""

    guid: str
    keys: tuple[str, ...]
    first_seen: str | None = None
    absent_since: str | None = None  # when the feed stopped listing it
    # The destinations that accepted it (for backfill); None: seen before this was kept.
    delivered: tuple[str, ...] | None = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    REQUIRED = ("guid", "keys")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SeenTalk:
        known, extra = _split(cls, row)
        known["keys"] = tuple(known["keys"])
        known["delivered"] = tuple(known["delivered"]) if "delivered" in known else None
        return cls(**known, extra=extra)

    def to_row(self) -> Row:
        row = {**_row(self), "keys": list(self.keys)}
        if self.delivered is None:
            del row["delivered"]  # a row from before stays as it was
        else:
            row["delivered"] = list(self.delivered)
        return row


def delivery_id(feed: str, guid: str, destination: str) -> str:
    """A delivery's id: stable across retries and restarts (a receiver may drop repeats)."""
    return hashlib.sha256(f"{feed}\n{guid}\n{destination}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A talk to send to a destination: an `OutboxEntry` once the store queues it."""

    id: str
    feed: str
    destination: str
    talk: Talk
    created: str
    alert: Alert | None = None  # an operational message instead of a talk (`talk` names it)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A queued delivery: removed once the destination accepted it; dead-lettered (kept,
    `dead`) when it never will."""

    id: str
    seq: int  # the order of queueing: publication order within a feed
    feed: str
    destination: str
    talk: Talk
    created: str
    attempts: int = 0
    next_attempt: str | None = None  # not to be tried before then
    last_error: str | None = None
    first_failed_at: str | None = None  # where `give_up_after` counts from
    dead: bool = False
    dead_at: str | None = None
    alert: Alert | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    REQUIRED = ("id", "seq", "feed", "destination", "talk", "created", "attempts")

    @classmethod
    def queued(cls, delivery: NewDelivery, seq: int) -> OutboxEntry:
        return cls(
            **{f.name: getattr(delivery, f.name) for f in dataclasses.fields(delivery)}, seq=seq
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OutboxEntry:
        known, extra = _split(cls, row)
        known["talk"] = Talk.from_dict(known.get("talk") or {})
        known["alert"] = Alert.from_dict(known["alert"]) if known.get("alert") else None
        known["attempts"] = int(known.get("attempts") or 0)
        known["dead"] = bool(known.get("dead"))
        return cls(**known, extra=extra)

    def to_row(self) -> Row:
        row = {**_row(self), "talk": self.talk.to_dict()}
        if self.alert is None:
            del row["alert"]  # the rows of talks stay as they were
        else:
            row["alert"] = self.alert.to_dict()
        return row


@dataclass(frozen=True, slots=True)
class DestinationState:
    """How a destination fares: shown by `watcher status`, deciding nothing."""

    name: str
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    alerted_dead: bool = False  # its dead-lettering was reported (until it accepts again)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DestinationState:
        known, extra = _split(cls, row)
        return cls(**known, extra=extra)

    def to_row(self) -> Row:
        return _row(self)


RECENT_TALKS = 50  # how many recent talks the main file keeps


class Fate(StrEnum):
    """What became of a recent talk's delivery to one destination."""

    QUEUED = "queued"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DEAD = "dead-lettered"


@dataclass(frozen=True, slots=True)
class DeliveryFate:
    """A recent talk's delivery to one destination: its state, since when (delivered or
    dead-lettered at, or the last failure), and the last error."""

    state: Fate = Fate.QUEUED
    at: str | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeliveryFate:
        try:
            state = Fate(str(row.get("state")))
        except ValueError:  # written by a newer watcher, or by hand
            state = Fate.QUEUED
        return cls(state, row.get("at"), row.get("error"))

    def to_row(self) -> Row:
        return {"state": str(self.state), "at": self.at, "error": self.error}


@dataclass(frozen=True, slots=True)
class RecentTalk:
    """A talk queued lately, kept after its deliveries leave the outbox: what the status
    page lists. Deciding nothing, it is written with `Store.flush()`."""

    feed: str
    talk: Talk
    queued_at: str
    destinations: Mapping[str, DeliveryFate] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    REQUIRED = ("feed", "talk", "queued_at")

    @property
    def key(self) -> tuple[str, str]:
        return self.feed, self.talk.guid

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RecentTalk:
        known, extra = _split(cls, row)
        known["talk"] = Talk.from_dict(known.get("talk") or {})
        fates = known.get("destinations") or {}
        known["destinations"] = {
            str(name): DeliveryFate.from_row(fate)
            for name, fate in fates.items()
            if isinstance(fate, Mapping)
        }
        return cls(**known, extra=extra)

    def to_row(self) -> Row:
        return {
            **_row(self),
            "talk": self.talk.to_dict(),
            "destinations": {name: fate.to_row() for name, fate in self.destinations.items()},
        }


# The fields each table's rows must have, checked on reading a file.
MAIN_FIELDS = {
    "meta": ("schema_version",),
    "destinations": ("name",),
    "activity": ("name",),
    "recent": RecentTalk.REQUIRED,
}
FEED_FIELDS = {
    "feed": ("name",),
    "seen": SeenTalk.REQUIRED,
    "outbox": OutboxEntry.REQUIRED,
    "items": ("key", "guid"),
}

# What names a talk (`watcher.entry.identity_from_entry`): all a known item keeps.
_IDENTITY = ("guid", "title", "speaker", "event", "raw_title", "url", "video_id", "video_url")
_IDENTITY_FIELDS = (*_IDENTITY, "published")


def known_item_row(key: str, talk: Talk) -> Row:
    """A known item (see `watcher.skim`): its key and the identity read from it."""
    return {"key": key, **{name: getattr(talk, name) for name in _IDENTITY_FIELDS}}


def known_item(row: Mapping[str, Any]) -> tuple[str, Talk]:
    """A known item as `known_item_row` wrote it: the talk as an identity is read (its
    slides and first lines not read)."""
    fields = {name: row.get(name) for name in _IDENTITY_FIELDS}
    talk = Talk.from_dict({**fields, "slide_count": None, "slides_present": 0, "duration": None})
    return str(row["key"]), talk
