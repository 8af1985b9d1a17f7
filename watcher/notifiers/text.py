"""Plain-text pieces every destination shows the same way."""

from __future__ import annotations

from watcher.talk import Talk


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
