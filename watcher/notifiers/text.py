"""Plain-text pieces every destination shows the same way."""

from __future__ import annotations

from watcher.talk import Talk


def format_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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
        ("Duration", format_duration(talk.duration) if talk.duration is not None else None),
        ("Published", talk.published[:10] if talk.published else None),
    ]
    return [(label, value) for label, value in candidates if value]
