"""Plain-text pieces every destination shows the same way."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from watcher.talk import Talk
from watcher.text import clean_text
from watcher.urls import SURROGATES


def format_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def duration_text(talk: Talk) -> str | None:
    """The talk's length; of a truncated item, the time of its last slide in the feed, which
    the talk lasts at least."""
    if talk.duration is None:
        return None
    length = format_duration(talk.duration)
    return (
        f"at least {length} (the feed carries only some slides)"
        if talk.duration_is_partial
        else length
    )


def slides_text(talk: Talk) -> str | None:
    if talk.slide_count is None:
        return None
    if talk.slides_present and talk.slides_present < talk.slide_count:
        return f"{talk.slide_count} ({talk.slides_present} in the feed)"
    return str(talk.slide_count)


def facts(talk: Talk) -> list[tuple[str, str]]:
    """The talk's labelled facts that are known, in display order."""
    candidates = [
        ("Speaker", talk.speaker),
        ("Event", talk.event),
        ("Slides", slides_text(talk)),
        ("Duration", duration_text(talk)),
        ("Published", talk.published[:10] if talk.published else None),
    ]
    return [(label, value) for label, value in candidates if value]


# Control characters (C0 but tab and line breaks, DEL, C1) and the invisible direction
# controls that can make a reader see text in another order than it is.
_UNSEEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """`text` without control or direction characters; `\\n` and tab stay."""
    return _UNSEEN.sub("", SURROGATES.sub("\ufffd", text.replace("\r\n", "\n")))


def one_line(text: str) -> str:
    """Feed text as one line: white space collapsed, control characters dropped."""
    return clean_text(visible(text))


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: never less than in code points, so a service that
    counts either way accepts it."""
    return len(text.encode("utf-16-le")) // 2


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def fit(
    text: str,
    limit: int,
    escapes: Mapping[str, str] | None = None,
    measure: Callable[[str], int] = len,
) -> str:
    """`text` escaped (each character by `escapes`) and cut, never inside an escape, to at
    most `limit` as `measure` counts, ending with `…` when cut."""
    table = escapes or {}
    escaped = "".join(table.get(ch, ch) for ch in text)
    if measure(escaped) <= limit:
        return escaped
    pieces: list[str] = []
    used = 0
    budget = limit - measure("…")
    for ch in text:
        piece = table.get(ch, ch)
        size = measure(piece)
        if used + size > budget:
            break
        pieces.append(piece)
        used += size
    return "".join(pieces).rstrip() + "…" if budget >= 0 else ""
