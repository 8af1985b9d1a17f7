"""Which items of one document are distinct talks, and what each is called (pure).

An item is named by its `<guid>`, else its link, else a hash of title and date
(`talk.identity_from_entry`). Publishers get this wrong in two ways, and both
used to hide real talks:

- several items share one guid or, lacking guids, one link (a homepage link on
  every item). Items that also share their title, link and video are one item
  listed twice and stay one talk. Items that differ in any of those are distinct
  talks, each named `GUID#` plus a hash of its title, link and video: the same on
  every poll, whatever else is in the document (`watcher.select` keeps a talk seen
  under the bare guid seen once it has company);
- an item has nothing to show (no title, no link, no video): it is no talk, and is
  skipped with a warning. So is the item a truncated document ends inside: it is
  read in part, and would be announced half-read, or under a name that changes
  once the document is whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace

from watcher.talk import Talk

Numbered = tuple[int, Talk]  # a talk and the index of its entry in the document

_SHARED = re.compile(r"#[0-9a-f]{12}\Z")


def distinct_talks(
    numbered: Sequence[Numbered], cut_entry: int | None = None
) -> tuple[list[Numbered], list[str]]:
    """The distinct talks of a document, in document order, each with a name of its own;
    and a warning for each item skipped. `cut_entry`: the index of the entry a truncated
    document ends inside."""
    warnings: list[str] = []
    groups: dict[str, list[Numbered]] = {}
    for number, talk in numbered:
        if reason := _not_a_talk(talk, number == cut_entry):
            warnings.append(f"item {number + 1} skipped: {reason}")
            continue
        same = groups.setdefault(talk.guid, [])
        if not any(_listed_twice(other, talk) for _, other in same):
            same.append((number, talk))
    talks = [
        (number, replace(talk, guid=f"{guid}#{_digest(talk)}") if len(group) > 1 else talk)
        for guid, group in groups.items()
        for number, talk in group
    ]
    talks.sort(key=lambda pair: pair[0])
    return talks, warnings


def shared_guid(name: str) -> str | None:
    """The guid a talk named by `distinct_talks` shares with other items, if it does."""
    return name[: -len("#0123456789ab")] if _SHARED.search(name) else None


def _listed_twice(one: Talk, other: Talk) -> bool:
    return (one.raw_title, one.url, one.video_url) == (other.raw_title, other.url, other.video_url)


def _not_a_talk(talk: Talk, cut: bool) -> str | None:
    if not (talk.raw_title or talk.url or talk.video_url):
        return "no title, link or video"
    if cut:
        return "the document ends inside it (truncated), so it is read next time, whole"
    return None


def _digest(talk: Talk) -> str:
    named = f"{talk.raw_title}\n{talk.url or ''}\n{talk.video_url or ''}"
    return hashlib.sha256(named.encode()).hexdigest()[:12]
