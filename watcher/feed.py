"""Bytes of a feed document → the talks in it (pure)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import feedparser

from watcher.talk import Talk, talk_from_entry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParsedFeed:
    """The talks read from a document, in document order, and why any were not.

    `error` is set when the document is not a usable feed (no talks could be
    read); `warnings` note what was wrong with a feed that could still be read.
    """

    talks: list[Talk]
    title: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def parse_feed(data: bytes) -> ParsedFeed:
    """Read every talk out of a feed document. Never raises for any input.

    The body goes to feedparser as a stream: given a str or bytes, feedparser
    would treat one that looks like a path or URL as a location to open.
    """
    try:
        parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False)
    except Exception as exc:  # feedparser's own bugs must not take the daemon down
        return ParsedFeed([], error=f"unparseable: {type(exc).__name__}: {exc}")
    warnings = []
    if parsed.get("bozo"):
        warnings.append(f"malformed feed: {_describe(parsed.get('bozo_exception'))}")
    if not parsed.get("version") and not parsed.entries:
        return ParsedFeed([], error=_not_a_feed(data, parsed))
    talks: list[Talk] = []
    seen_guids: set[str] = set()
    for index, entry in enumerate(parsed.entries):
        try:
            talk = talk_from_entry(entry)
        except Exception as exc:
            warnings.append(f"item {index + 1} skipped: {type(exc).__name__}: {exc}")
            continue
        if talk.guid not in seen_guids:
            seen_guids.add(talk.guid)
            talks.append(talk)
    feed_title = parsed.get("feed", {}).get("title")
    return ParsedFeed(
        talks, title=feed_title if isinstance(feed_title, str) else None, warnings=warnings
    )


def _not_a_feed(data: bytes, parsed: feedparser.FeedParserDict) -> str:
    head = data[:512].lstrip().lower()
    if not head:
        return "not a feed: empty body"
    if head.startswith((b"<!doctype html", b"<html")):
        return "not a feed: got an HTML page"
    if head.startswith((b"{", b"[")):
        return "not a feed: got JSON"
    reason = _describe(parsed.get("bozo_exception"))
    return f"not a feed: {reason}" if reason else "not a feed: no RSS or Atom document found"


def _describe(exc: object) -> str:
    if exc is None:
        return ""
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
