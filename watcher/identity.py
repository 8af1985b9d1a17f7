"""Which items of one document are distinct talks, and what each is called (pure).

An item is named by its `<guid>`, else its link, else a hash of title and date
(`talk.identity_from_entry`). Publishers get this wrong in two ways, and both
used to hide real talks:

- several items share one guid or, lacking guids, one link (a homepage link on
  every item). Items that also share their title and link are one item listed
  twice and stay one talk. Items with another title or link are distinct talks:
  the oldest keeps the shared name, so that what was seen before stays seen, and
  each of the others is named by the shared name plus a hash of its title, date
  and link, which is the same on every poll;
- an item has nothing to show (no title, no link, no video): it is no talk, and
  is skipped with a warning. In a document read by recovering from broken XML, an
  item with no guid and no link is skipped too: its name would be a hash of
  whatever part of it survived, and change once the document is whole again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

from watcher.talk import Talk

Numbered = tuple[int, Talk]  # a talk and the index of its entry in the document


def distinct_talks(
    numbered: Sequence[Numbered], entries: Sequence[Mapping], degraded: bool = False
) -> tuple[list[Numbered], list[str]]:
    """The distinct talks of a document, in document order, each with a name of its own;
    and a warning for each item skipped."""
    warnings: list[str] = []
    shown: list[Numbered] = []
    for number, talk in numbered:
        if reason := _not_a_talk(talk, entries[number], degraded):
            warnings.append(f"item {number + 1} skipped: {reason}")
        else:
            shown.append((number, talk))
    groups: dict[str, list[Numbered]] = {}
    for number, talk in shown:
        same = groups.setdefault(talk.guid, [])
        if not any(_listed_twice(other, talk) for _, other in same):
            same.append((number, talk))  # else the same item listed twice: kept once
    renamed = {}
    for guid, group in groups.items():
        if len(group) > 1:
            oldest = min(group, key=lambda pair: (pair[1].published or "", -pair[0]))
            for number, talk in group:
                if number != oldest[0]:
                    renamed[number] = f"{guid}#{_digest(talk)}"
    talks = [
        (number, replace(talk, guid=renamed[number]) if number in renamed else talk)
        for group in groups.values()
        for number, talk in group
    ]
    talks.sort(key=lambda pair: pair[0])
    return talks, warnings


def _listed_twice(one: Talk, other: Talk) -> bool:
    return (one.raw_title, one.url) == (other.raw_title, other.url)


def _not_a_talk(talk: Talk, entry: Mapping, degraded: bool) -> str | None:
    if not (talk.raw_title or talk.url or talk.video_url):
        return "no title, link or video"
    if degraded and talk.url is None and not _has_guid(entry):
        return "read from broken XML, with no guid or link to know it by"
    return None


def _has_guid(entry: Mapping) -> bool:
    guid = entry.get("id")
    return isinstance(guid, str) and bool(guid.strip())


def _digest(talk: Talk) -> str:
    named = f"{talk.raw_title}\n{talk.published or ''}\n{talk.url or ''}"
    return hashlib.sha256(named.encode()).hexdigest()[:12]
