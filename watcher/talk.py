"""The `Talk` record: what the watcher knows of one talk (`watcher.entry` reads one out of
a feed entry). The field names are a public contract: `watcher inspect --json` prints
them and the webhook payload carries them.

It imports nothing heavy: every command loads it, and most never read a feed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any

_TITLE_SEPARATOR = re.compile(r"(?:^|(?<=\s))\|(?=\s|$)")


@dataclass(frozen=True)
class Talk:
    guid: str
    title: str
    speaker: str | None
    event: str | None
    raw_title: str
    url: str | None
    video_id: str | None
    video_url: str | None
    published: str | None
    slide_count: int | None
    slides_present: int
    duration: int | None
    # The feed carries only some of the slides it claims: the talk lasts at least `duration`.
    duration_is_partial: bool = False
    thumbnail: str | None = None
    first_lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """As `dataclasses.asdict`, which copies every value through a recursion that took a
        tenth of a millisecond a talk: the fields are strings, numbers and a list of them."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["first_lines"] = list(self.first_lines)
        return values

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Talk:
        """A talk as `to_dict` wrote it, also by an older version: a field it lacked takes
        its default, or None."""
        values = {
            name: data.get(name)
            for name, spec in cls.__dataclass_fields__.items()
            if name in data or (spec.default is MISSING and spec.default_factory is MISSING)
        }
        return cls(**values)  # type: ignore[arg-type]  # a row written by to_dict()


def split_title(raw_title: str) -> tuple[str, str | None, str | None]:
    """`Title | Speaker | Event` → its parts; a two-part title's second part is the speaker.

    The parts are split on a `|` with a blank (or an end) on each side, so an empty part
    (`Lightning talks |  | PyData Berlin`) keeps its place and reads as "not given"."""
    parts = [part.strip() for part in _TITLE_SEPARATOR.split(raw_title)]
    if len(parts) == 1:
        return raw_title, None, None
    title = parts[0] or raw_title
    speaker = parts[1] or None
    event = " | ".join(part for part in parts[2:] if part) or None
    return title, speaker, event
