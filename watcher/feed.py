"""Bytes of a feed document → the talks in it (pure).

Feeds are untrusted. Before feedparser sees a document it is converted to UTF-8
(as feedparser would), numeric references to no character are replaced, and a
document that declares XML entities is refused: they are how a feed reads local
files or URLs (XXE) or expands a few KB into gigabytes ("billion laughs").
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import xml.parsers.expat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import feedparser
from feedparser.encodings import (
    EBCDIC_MARKER,
    RE_XML_DECLARATION,
    RE_XML_PI_ENCODING,
    convert_to_utf8,
)
from feedparser.sanitizer import replace_doctype

from watcher.discover import is_html_page
from watcher.talk import Talk, clean_text, talk_from_entry

log = logging.getLogger(__name__)

_UTF8_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"
_FEEDPARSER_DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>"  # as convert_to_utf8 writes it
_XML_DECLARATION_BYTES = re.compile(RE_XML_DECLARATION.pattern.encode())
# Long numeric references may name no character (past U+10FFFF, or a surrogate):
# feedparser's fallback parser calls chr() on them and raises, losing the whole document.
_BIG_CHAR_REF = re.compile(rb"&#(?:[xX]0*([0-9a-fA-F]{4,})|0*([0-9]{5,}));")
# The declared encoding, where feedparser looks (the first line), in ASCII or UTF-16/32.
_DECLARED_ENCODING = re.compile(
    b"\0{0,3}".join(bytes([c]) for c in b"encoding=") + rb"\0{0,3}[\"']([^\"']{0,200})[\"']"
)
_MARKS = (  # UTF-32 before UTF-16: their little-endian BOMs begin alike
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (EBCDIC_MARKER, "cp037"),
    (b"\0\0\0<", "utf-32-be"),
    (b"<\0\0\0", "utf-32-le"),
    (b"\0<", "utf-16-be"),
    (b"<\0", "utf-16-le"),
)
# Python decodes these in quadratic time: a 1 MB punycode feed takes minutes.
_SLOW_CODECS = ("punycode", "idna")


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
    entry_numbers: list[int] = field(default_factory=list)  # each talk's index in the entries
    entries: list = field(default_factory=list, repr=False)  # feedparser's


class Refused(Exception):
    """The document is not read at all: the message says why."""


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
    read: Callable[[Mapping], Talk] = talk_from_entry,
) -> ParsedFeed:
    """`parse_feed` of a document `prepared()` has made safe (`data` is as fetched), each
    talk read out of its entry with `read`."""
    try:
        parsed = run_feedparser(document)
    except Exception as exc:
        return ParsedFeed([], error=unparseable_error(exc))
    warnings = list(warnings)
    if parsed.get("bozo"):
        warnings.append(f"malformed feed: {_describe(parsed.get('bozo_exception'))}")
    if not parsed.get("version") and not parsed.entries:
        return ParsedFeed([], error=_not_a_feed(data, parsed))
    numbered, skipped = numbered_talks(parsed.entries, read)
    feed_title = parsed.get("feed", {}).get("title")
    return ParsedFeed(
        [talk for _, talk in numbered],
        title=clean_text(feed_title) if isinstance(feed_title, str) else None,
        warnings=warnings + skipped,
        entry_numbers=[number for number, _ in numbered],
        entries=parsed.entries,
    )


def refused_error(exc: Exception) -> str:
    return f"not a feed: refused: {exc}"


def unparseable_error(exc: Exception) -> str:
    return f"unparseable: {type(exc).__name__}: {_describe(exc)}"


def numbered_talks(
    entries: list, read: Callable[[Mapping], Talk] = talk_from_entry
) -> tuple[list[tuple[int, Talk]], list[str]]:
    """The talks of feedparser's entries, each with its entry's index; one per GUID."""
    talks: list[tuple[int, Talk]] = []
    warnings: list[str] = []
    seen_guids: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            talk = read(entry)
        except Exception as exc:
            warnings.append(f"item {index + 1} skipped: {type(exc).__name__}: {_describe(exc)}")
            continue
        if talk.guid not in seen_guids:
            seen_guids.add(talk.guid)
            talks.append((index, talk))
    return talks, warnings


def prepared(data: bytes) -> tuple[bytes, list[str]]:
    """The document as feedparser's parsers will see it (UTF-8), made safe to give them."""
    document, warnings = _utf8(data)
    document = _BIG_CHAR_REF.sub(_char_ref, document)
    if b"<!ENTITY" in document and _declares_entities(document):
        raise Refused("it declares XML entities, which can read files or URLs or expand to GBs")
    return document, warnings


def _utf8(data: bytes) -> tuple[bytes, list[str]]:
    """What feedparser does first, done here so that the checks see what its parsers see."""
    document = utf8_as_feedparser_would(data)
    if document is not None:
        return document, []
    result: dict = {}
    try:
        _refuse_slow_codecs(data)
        document = convert_to_utf8({}, data, result)
    except (UnicodeError, LookupError) as exc:  # e.g. UTF-7 that decodes to lone surrogates
        encoding = _sniffed(data)
        text = data.decode(encoding, "replace").lstrip("\ufeff")
        document = (_UTF8_DECLARATION + RE_XML_DECLARATION.sub("", text, count=1)).encode()
        return document, [f"unusable encoding ({_describe(exc)}): read as {encoding}"]
    problem = result.get("bozo_exception")
    return document, [f"malformed feed: {_describe(problem)}"] if problem else []


def utf8_as_feedparser_would(data: bytes) -> bytes | None:
    """`convert_to_utf8` of the common case, a third of its time: a UTF-8 document with no
    BOM, declared as UTF-8 or not at all, comes out byte for byte as it went in, but for its
    XML declaration. None for any other document: feedparser's own code handles those."""
    if any(data.startswith(mark) for mark, _ in _MARKS):
        return None
    declared = RE_XML_PI_ENCODING.match(data)
    if declared and declared.group(1).decode("utf-8", "replace").lower() != "utf-8":
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    declaration = _XML_DECLARATION_BYTES.match(data)
    if declaration:
        return _FEEDPARSER_DECLARATION + data[declaration.end() :]
    return _FEEDPARSER_DECLARATION + b"\n" + data


def _refuse_slow_codecs(data: bytes) -> None:
    for value in _DECLARED_ENCODING.findall(_first_line(data)):
        name = value.replace(b"\0", b"").decode("latin-1")
        try:
            codec = codecs.lookup(name).name  # as bytes.decode(name) would find it
        except (LookupError, ValueError):
            continue
        if codec in _SLOW_CODECS:
            raise LookupError(f"{codec} is too slow to decode")


def _sniffed(data: bytes) -> str:
    """The encoding a BOM or the bytes of "<?" imply, as feedparser sniffs it; else UTF-8."""
    return next((encoding for mark, encoding in _MARKS if data.startswith(mark)), "utf-8")


def _first_line(data: bytes) -> bytes:
    if data[:4] == EBCDIC_MARKER:
        data = data.decode("cp037").encode()
    end = data.find(b"\n")
    return data if end < 0 else data[:end]


def _char_ref(match: re.Match[bytes]) -> bytes:
    hex_digits, decimal = match.groups()
    digits, base = (hex_digits, 16) if hex_digits else (decimal, 10)
    code = int(digits, base) if len(digits) <= 7 else -1
    if 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
        return match.group()
    return b"&#xFFFD;"


class _Declared(Exception):
    pass


class _RootReached(Exception):
    pass


def _declares_entities(document: bytes) -> bool:
    """Whether the DTD before the root element declares an entity, in the document or as
    feedparser rewrites it for expat, or feedparser would give its fallback parser one."""
    _, rewritten, loose_entities = replace_doctype(document)
    return bool(loose_entities) or any(map(_expat_declares_entities, (document, rewritten)))


def _expat_declares_entities(document: bytes) -> bool:
    parser = xml.parsers.expat.ParserCreate(None, " ")  # as feedparser's SAX reader makes it
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_UNLESS_STANDALONE)
    parser.EntityDeclHandler = _entity_declared
    parser.StartElementHandler = _root_reached
    try:
        parser.Parse(document, True)
    except _Declared:
        return True
    except (_RootReached, xml.parsers.expat.ExpatError):
        return False
    return False


def _entity_declared(*_: object) -> None:
    raise _Declared


def _root_reached(*_: object) -> None:
    raise _RootReached


def run_feedparser(document: bytes) -> feedparser.FeedParserDict:
    """feedparser with the HTML of entries left as it is: sanitizing is for HTML that is
    shown (the watcher reads text out of it), and resolving relative URLs in it took most
    of feedparser's time (the few URLs the watcher reads from it, it resolves itself)."""
    return feedparser.parse(io.BytesIO(document), sanitize_html=False, resolve_relative_uris=False)


def _not_a_feed(data: bytes, parsed: feedparser.FeedParserDict) -> str:
    head = data[:512].lstrip().lower()
    if not head:
        return "not a feed: empty body"
    if is_html_page(data):
        return "not a feed: got an HTML page"
    if head.startswith((b"{", b"[")):
        return "not a feed: got JSON"
    reason = _describe(parsed.get("bozo_exception"))
    return f"not a feed: {reason}" if reason else "not a feed: no RSS or Atom document found"


def _describe(exc: object) -> str:
    if exc is None:
        return ""
    return clean_text(str(exc))[:200] or type(exc).__name__
