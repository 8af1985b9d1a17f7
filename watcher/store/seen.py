"""The seen talks after a poll or a delivery (pure): new ones added, keys added, which the
feed no longer lists, which are forgotten, and who accepted each."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from watcher.store.records import SeenTalk

if TYPE_CHECKING:
    from watcher.store.repository import FeedCommit


def updated_seen(seen: list[SeenTalk], commit: FeedCommit) -> tuple[list[SeenTalk], int]:
    """The seen talks after a poll, and how many were forgotten: the new ones added, the
    rekeyed ones known by more keys, and, if the feed was read, which it no longer lists
    noted (and those absent since before `prune_before` forgotten; a talk the feed still
    lists is never forgotten)."""
    wanted: dict[str, set[str]] = {}
    for known, keys in commit.rekeyed:
        wanted.setdefault(known, set()).update(keys)
    kept: list[SeenTalk] = []
    forgotten = 0
    for talk in [*seen, *commit.seen]:
        extra = set().union(*(wanted[key] for key in talk.keys if key in wanted))
        if extra - set(talk.keys):
            talk = dataclasses.replace(talk, keys=tuple(sorted(set(talk.keys) | extra)))
        if commit.present is not None:
            listed = not commit.present.isdisjoint(talk.keys)
            if listed and talk.absent_since is not None:
                talk = dataclasses.replace(talk, absent_since=None)
            elif not listed and talk.absent_since is None:
                talk = dataclasses.replace(talk, absent_since=commit.at)
            if talk.absent_since is not None and talk.absent_since < (commit.prune_before or ""):
                forgotten += 1
                continue
        kept.append(talk)
    return kept, forgotten


def delivered_to(destination: str) -> Callable[[MutableMapping[str, Any]], None]:
    def note(row: MutableMapping[str, Any]) -> None:
        if "delivered" in row:  # a row from before it was kept stays unknown
            row["delivered"] = sorted({*row["delivered"], destination})

    return note
