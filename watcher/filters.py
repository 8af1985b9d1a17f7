"""Who gets which talk (pure): rules on a talk's fields, on a destination (who gets it)
and on a feed (dropped for everyone), each decision with the rule that made it.

A rule is `FIELD:PATTERN`. FIELD is one of `title`, `speaker`, `event`, `text` (the
talk's first lines), `url` (its page and its video) and `feed` (the feed's name). A
plain PATTERN is a case-insensitive substring (Unicode case folding); `/…/` is a
case-insensitive regular expression. A talk passes when it matches an `include` rule
(or there is none), no `exclude` rule, and the minimums (`min_slides`,
`min_duration`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from watcher.schema import ConfigError, string_list
from watcher.talk import Talk

FIELDS = ("title", "speaker", "event", "text", "url", "feed")


@dataclass(frozen=True)
class Rule:
    source: str  # as written in the config
    field: str
    needle: str  # casefolded, for a plain pattern
    regex: re.Pattern[str] | None = None

    def matches(self, talk: Talk, feed: str) -> bool:
        values = _values(talk, feed, self.field)
        if self.regex is not None:
            return any(self.regex.search(value) for value in values)
        return any(self.needle in value.casefold() for value in values)


@dataclass(frozen=True)
class Filter:
    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()
    min_slides: int | None = None
    min_duration: float | None = None

    @property
    def empty(self) -> bool:
        return self == Filter()

    def decide(self, talk: Talk, feed: str) -> tuple[bool, str]:
        """Whether the talk passes, and why, in words that name the rule."""
        included = next((rule for rule in self.include if rule.matches(talk, feed)), None)
        if self.include and included is None:
            return False, "no include rule matched"
        if excluded := next((rule for rule in self.exclude if rule.matches(talk, feed)), None):
            return False, f"excluded by {excluded.source}"
        if self.min_slides is not None and (talk.slide_count or 0) < self.min_slides:
            return False, f"fewer than {self.min_slides} slides ({talk.slide_count or 0})"
        if self.min_duration is not None and (talk.duration or 0) < self.min_duration:
            return False, f"shorter than {_clock(self.min_duration)} ({_clock(talk.duration or 0)})"
        if included is not None:
            return True, f"included by {included.source}"
        return True, "no rule drops it"


def rules(value: Any, where: str) -> tuple[Rule, ...]:
    """A list of rules from the config; a bad field or expression names its key."""
    return tuple(
        rule(text, f"{where}[{index}]") for index, text in enumerate(string_list(value, where))
    )


def rule(text: str, where: str) -> Rule:
    field, colon, pattern = text.partition(":")
    if not colon or field not in FIELDS:
        raise ConfigError(
            f"{where}: bad rule {text!r}: expected FIELD:PATTERN with FIELD one of"
            f" {', '.join(FIELDS)}"
        )
    if not pattern:
        raise ConfigError(f"{where}: bad rule {text!r}: the pattern is empty")
    if len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
        try:
            regex = re.compile(pattern[1:-1], re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"{where}: bad regular expression in {text!r}: {exc}") from None
        return Rule(text, field, "", regex)
    return Rule(text, field, pattern.casefold())


def routes(
    talk: Talk, feed: str, feed_filter: Filter, destinations: Iterable[tuple[str, Filter]]
) -> list[tuple[str, bool, str]]:
    """Per destination of the feed: whether the talk goes there, and why."""
    passes, why = feed_filter.decide(talk, feed)
    if not passes:
        return [(name, False, f"the feed's filter: {why}") for name, _ in destinations]
    by_feed = (True, f"the feed's filter: {why}") if not feed_filter.empty else (True, why)
    return [
        (name, *(chosen.decide(talk, feed) if not chosen.empty else by_feed))
        for name, chosen in destinations
    ]


def _values(talk: Talk, feed: str, field: str) -> list[str]:
    if field == "text":
        return list(talk.first_lines)
    if field == "url":
        return [url for url in (talk.url, talk.video_url) if url]
    if field == "feed":
        return [feed]
    value = getattr(talk, field)
    return [value] if value else []


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
