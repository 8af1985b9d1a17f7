"""Bytes of a feed document → the talks in it (pure).

Feeds are untrusted: the bytes are made safe for feedparser first (see
`watcher.encoding`), and nothing feedparser raises or returns takes the daemon down.
"""

from __future__ import annotations

import io
import logging
import re
import xml.sax
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import feedparser

import watcher.dates  # noqa: F401 (registers feedparser's handler of the dates it misses)
from watcher.discover import is_html_page
from watcher.encoding import NotAFeed, Refused, prepared
from watcher.entry import talk_from_entry
from watcher.identity import distinct_talks
from watcher.talk import Talk
from watcher.text import clean_text, describe

# feedparser asks xml.sax for libxml2's driver first, which is seldom installed: each parse
# then tried to import it (a search of every folder on the path, 0.1 ms) before taking
# expat. Expat it is, always: it is what the skim is proven equivalent with.
feedparser.api.PREFERRED_XML_PARSERS = []

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParsedFeed:
    """The talks read from a document, in document order, and why any were not.

    `error` is set when the document is not a usable feed (no talks could be
    read); `warnings` note what was wrong with a feed that could still be read.
    `degraded`: the document ends before it is whole (a server that died mid-response,
    a half-written file), and feedparser's loose parser recovered what it could. Other
    malformed XML (a stray `&`, an undefined `&nbsp;`) is only a warning: feeds that are
    always a little broken are common, and are read as well as ever.
    """

    talks: list[Talk]
    title: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    degraded: bool = False
    entry_numbers: list[int] = field(default_factory=list)  # each talk's index in the entries
    entries: list[feedparser.FeedParserDict] = field(default_factory=list, repr=False)


def parse_feed(data: bytes) -> ParsedFeed:
    """Read every talk out of a feed document. Never raises for any input.

    The body goes to feedparser as a stream: given a str or bytes, feedparser
    would treat one that looks like a path or URL as a location to open.
    """
    try:
        document, warnings = prepared(data)
    except Refused as exc:
        return ParsedFeed([], error=refused_error(exc))
    except Exception as exc:  # feedparser's own bugs must not take the daemon down
        return ParsedFeed([], error=unparseable_error(exc))
    return parse_prepared(data, document, warnings)


def parse_prepared(
    data: bytes,
    document: bytes,
    warnings: list[str],
    read: Callable[[Mapping[str, Any]], Talk] = talk_from_entry,
) -> ParsedFeed:
    """`parse_feed` of a document `prepared()` has made safe (`data` is as fetched), each
    talk read out of its entry with `read`."""
    parsed = parsed_entries(data, document, warnings)
    if isinstance(parsed, str):
        return ParsedFeed([], error=parsed)
    numbered, skipped = numbered_talks(parsed.entries, read, parsed.cut)
    return ParsedFeed(
        [talk for _, talk in numbered],
        title=parsed.title,
        warnings=parsed.warnings + skipped,
        degraded=parsed.degraded,
        entry_numbers=[number for number, _ in numbered],
        entries=parsed.entries,
    )


@dataclass(frozen=True)
class Entries:
    """What feedparser made of a prepared document: its entries and what it said."""

    entries: list[feedparser.FeedParserDict]
    title: str | None
    warnings: list[str]
    degraded: bool
    cut: int | None  # the entry a truncated document ends inside


def parsed_entries(data: bytes, document: bytes, warnings: list[str]) -> Entries | str:
    """feedparser over a prepared document: its entries, or (a str) why it is no feed."""
    try:
        parsed = run_feedparser(document)
    except Exception as exc:
        return unparseable_error(exc)
    warnings = list(warnings)
    if parsed.get("bozo"):
        warnings.append(f"malformed feed: {describe(parsed.get('bozo_exception'))}")
    if not parsed.get("version") and not parsed.entries:
        return _not_a_feed(data, parsed)
    degraded = _truncated(parsed.get("bozo_exception"))
    cut = len(parsed.entries) - 1 if degraded and _ends_inside_item(document) else None
    feed_title = parsed.get("feed", {}).get("title")
    title = clean_text(feed_title) if isinstance(feed_title, str) else None
    return Entries(parsed.entries, title, warnings, degraded, cut)


def refused_error(exc: Exception) -> str:
    if isinstance(exc, NotAFeed):
        return f"not a feed: {exc}"
    return f"not a feed: refused: {exc}"


def unparseable_error(exc: Exception) -> str:
    return f"unparseable: {type(exc).__name__}: {describe(exc)}"


def numbered_talks(
    entries: Sequence[Mapping[str, Any]],
    read: Callable[[Mapping[str, Any]], Talk] = talk_from_entry,
    cut_entry: int | None = None,
) -> tuple[list[tuple[int, Talk]], list[str]]:
    """The talks of feedparser's entries, each with its entry's index and a name of its
    own (see `watcher.identity`); `cut_entry` is the one a truncated document ends inside."""
    talks, warnings = read_entries(entries, read)
    distinct, skipped = distinct_talks(talks, cut_entry)
    return distinct, sorted_warnings(warnings + skipped)


def read_entries(
    entries: Sequence[Mapping[str, Any]],
    read: Callable[[Mapping[str, Any]], Talk],
    numbers: Sequence[int] | None = None,
) -> tuple[list[tuple[int, Talk]], list[str]]:
    """Each entry read with `read`, with its number (its index, or `numbers[index]`), and a
    warning for each that could not be read."""
    talks: list[tuple[int, Talk]] = []
    warnings: list[str] = []
    for index, entry in enumerate(entries):
        number = numbers[index] if numbers is not None else index
        try:
            talk = read(entry)
        except Exception as exc:
            warnings.append(f"item {number + 1} skipped: {type(exc).__name__}: {describe(exc)}")
            continue
        talks.append((number, talk))
    return talks, warnings


def sorted_warnings(warnings: list[str]) -> list[str]:
    """Warnings of items (`item N ...`), in the order of the items."""
    return sorted(warnings, key=_item_number)


# What expat says of a document that ends too soon.
_END_OF_INPUT = (
    "no element found",
    "unclosed token",
    "unclosed CDATA section",
    "partial character",
)
_ITEM_START = re.compile(rb"<(?:[\w.-]{1,50}:)?(?:item|entry)[\s/>]")
_ITEM_END = re.compile(rb"</(?:[\w.-]{1,50}:)?(?:item|entry)\s*>")
_TAIL = 1_000_000  # where to look for the last item's start and end


def _truncated(problem: object) -> bool:
    return isinstance(problem, xml.sax.SAXParseException) and problem.getMessage().startswith(
        _END_OF_INPUT
    )


def _ends_inside_item(document: bytes) -> bool:
    """Whether the last item the document begins is not ended."""
    tail = document[-_TAIL:]
    starts = [m.start() for m in _ITEM_START.finditer(tail)]
    ends = [m.start() for m in _ITEM_END.finditer(tail)]
    return bool(starts) and (not ends or starts[-1] > ends[-1])


def _item_number(warning: str) -> int:
    return int(warning.split()[1])


def run_feedparser(document: bytes) -> feedparser.FeedParserDict:
    """feedparser with the HTML of entries left as it is: sanitizing is for HTML that is
    shown (the watcher reads text out of it), and resolving relative URLs in it took most
    of feedparser's time (the few URLs the watcher reads from it, it resolves itself)."""
    return feedparser.parse(io.BytesIO(document), sanitize_html=False, resolve_relative_uris=False)


# A prolog (declaration, comments, processing instructions, a DOCTYPE without an internal
# subset), then the first element, in an ASCII-compatible document.
_PROLOG = rb"(?:\s|<\?[^>]{0,500}\?>|<!--(?:[^-]|-(?!->)){0,2000}-->|<!DOCTYPE[^>\[]{0,500}>)*"
_PROLOG_ONLY = re.compile(_PROLOG)
_ROOT_ELEMENT = re.compile(_PROLOG + rb"<([A-Za-z_][\w:.-]{0,100})")
_FEED_ROOTS = frozenset({b"rss", b"feed", b"rdf", b"channel"})


def _not_a_feed(data: bytes, parsed: feedparser.FeedParserDict) -> str:
    head = data[:512].lstrip().lower()
    if not head:
        return "not a feed: empty body"
    if is_html_page(data):
        return "not a feed: got an HTML page"
    if head.startswith((b"{", b"[")):
        return "not a feed: got JSON"
    if _PROLOG_ONLY.fullmatch(data[:4096]):
        return "not a feed: an XML document with no element in it (only a prolog or comments)"
    root = _ROOT_ELEMENT.match(data[:4096])
    if root and root.group(1).lower().split(b":")[-1] not in _FEED_ROOTS:
        name = root.group(1).decode("ascii", "replace")
        return f"not a feed: an XML document whose root element is <{name}>, not RSS or Atom"
    reason = describe(parsed.get("bozo_exception"))
    return f"not a feed: {reason}" if reason else "not a feed: no RSS or Atom document found"
