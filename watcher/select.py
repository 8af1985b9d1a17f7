"""Which talks of a document are new, given the keys of the talks seen before (pure).

A talk is known by keys (`identity_keys`): its name (`guid:`), the item itself
(`item:`, a hash of its guid, title, link and video), and by default its link
(`link:`) and video (`video:`). It is new when none of its keys was seen.

Matching on link and video id keeps a feed that rewrites its GUIDs (new domain,
http→https, a trailing slash) from re-announcing its back catalogue; a link or
video id shared by several items identifies none of them.

Items that share a guid (`watcher.identity`) are named `GUID#hash`. The item key
is what keeps that stable across polls: a talk seen alone under `GUID` was
recorded with its item key, so when a second item with that guid appears, the
first is still known by its item key and only the second is new. State written
before item keys existed has none: there, one item of such a group (the first in
the document, the one kept before) is taken to be the talk seen as `GUID`, and
the others, hidden until now, are recorded as seen without being announced, as
a first poll records a feed's back catalogue.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from watcher.identity import shared_guid
from watcher.talk import Talk

Keyed = tuple[Talk, set[str]]


@dataclass(frozen=True)
class Diff:
    new: list[Keyed]  # to announce, in publication order, with each talk's keys
    present: set[str]  # the keys of every talk in the document
    quiet: list[Keyed] = field(default_factory=list)  # new to the state, not announced
    # seen talks known by the first key, to be known by the others too from now on
    rekeyed: list[tuple[str, set[str]]] = field(default_factory=list)
    # talks known by a key other than their name (the GUID changed?): (guid, key kinds)
    matched: list[tuple[str, list[str]]] = field(default_factory=list)


def identity_keys(talk: Talk, dedup: Iterable[str]) -> set[str]:
    """The keys a talk is known by: its name and the item's own key, and (by default) its
    link and video id."""
    keys = {f"guid:{talk.guid}", item_key(talk)}
    if "link" in dedup and talk.url:
        keys.add(f"link:{normalize_link(talk.url)}")
    if "video_id" in dedup and talk.video_id:
        keys.add(f"video:{talk.video_id}")
    return keys


def item_key(talk: Talk) -> str:
    base = shared_guid(talk.guid) or talk.guid
    named = f"{base}\n{talk.raw_title}\n{talk.url or ''}\n{talk.video_url or ''}"
    return "item:" + hashlib.sha256(named.encode()).hexdigest()[:24]


def normalize_link(url: str) -> str:
    """Scheme-less, lower-case host, no trailing slash: `http://A.com/x/` ≡ `https://a.com/x`."""
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{parts.path.rstrip('/')}{query}"


def publication_order(talks: list[Talk]) -> list[Talk]:
    """Oldest first. Undated talks and ties keep the feed's order read bottom-up
    (feeds list the newest first)."""
    indexed = list(enumerate(talks))
    indexed.sort(key=lambda pair: (pair[1].published or "", -pair[0]))
    return [talk for _, talk in indexed]


def diff(talks: list[Talk], seen: Set[str], dedup: Iterable[str]) -> Diff:
    """Which talks are new: none of their keys seen before (nor earlier in this document)."""
    keyed = [(talk, identity_keys(talk, dedup)) for talk in talks]
    shared = Counter(key for _, keys in keyed for key in keys if key.startswith(_SHAREABLE))
    keyed = [(talk, {key for key in keys if shared[key] <= 1}) for talk, keys in keyed]
    legacy = bool(seen) and not any(key.startswith("item:") for key in seen)
    claims = _legacy_claims(keyed, seen) if legacy else {}
    claimed = {shared_guid(name) for name in claims}
    known_keys = set(seen)
    new: dict[str, set[str]] = {}
    quiet: list[Keyed] = []
    rekeyed: list[tuple[str, set[str]]] = []
    present: set[str] = set()
    matched: list[tuple[str, list[str]]] = []
    for talk, keys in keyed:
        present |= keys
        claim = claims.get(talk.guid)
        known = claim or keys & known_keys
        if not known:
            if legacy and shared_guid(talk.guid) in claimed:  # hidden by the old state
                quiet.append((talk, keys))
            else:
                new[talk.guid] = keys
            known_keys |= keys
            continue
        if keys - known_keys:
            rekeyed.append((min(known), keys - known_keys))
        if not claim and f"guid:{talk.guid}" not in known:
            matched.append((talk.guid, sorted({key.split(":", 1)[0] for key in known})))
    ordered = publication_order([talk for talk in talks if talk.guid in new])
    present |= {key for keys in claims.values() for key in keys}
    new_talks = [(talk, new[talk.guid]) for talk in ordered]
    return Diff(new_talks, present, quiet, rekeyed, matched)


_SHAREABLE = ("link:", "video:")


def _legacy_claims(keyed: list[Keyed], seen: Set[str]) -> dict[str, set[str]]:
    """Of each group of items sharing a guid that was seen under that guid, the first in
    the document (the one kept before such items were told apart) → the seen guid key."""
    claims: dict[str, set[str]] = {}
    taken: set[str] = set()
    for talk, keys in keyed:
        base = shared_guid(talk.guid)
        if base is None or base in taken or keys & seen:
            continue
        if f"guid:{base}" in seen:
            claims[talk.guid] = {f"guid:{base}"}
            taken.add(base)
    return claims
