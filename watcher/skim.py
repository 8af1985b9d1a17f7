"""A feed read in two steps: who is in it (cheap), then the talks asked for (in full).

feedparser spends about 0.3 s of CPU on a 1.2 MB feed, nearly all of it on the
items' content (HTML), and a poll only needs the content of new talks. So lxml
reads the document once, and feedparser reads a light copy of it in which every
item's content is a stand-in: the video link read from it (embed first), if any, and a token.
That yields each talk's GUID, link, video id and date exactly as the full parse
would. For the talks asked for, the tokens in their feedparser entries are then
replaced by what feedparser would have made of the content (`_as_feedparser_keeps`),
and the talks read from those entries. A document lxml will not read strictly
(malformed, too deep, a text node over 10 MB) takes the full parse, which copes
with anything.

Only content feedparser passes on as it is (text or HTML, as text) is cut down;
markup (which it rebuilds, without comments and some attributes), XHTML and base64
(which it escapes or decodes) are kept whole. The copy keeps the document's prolog
byte for byte (feedparser reads a DOCTYPE by where it stands). Where feedparser read
the copy with its loose parser, which treats text differently, or a token is not
where it should be, `talks()` takes the full parse.

Items read before (`read_feed(data, known)`) are not read again: they are found in
the document's bytes and emptied before lxml parses it, and their identities are the
ones kept, by the key of their bytes in their context (`_Context`).

`read_feed(data).identities` are `Talk`s whose `guid`, `url`, `video_id`,
`published` and `raw_title` are those of the full parse; their other fields are
not read. `talks(guids)` gives the full talks.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import xml.parsers.expat
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import feedparser
from feedparser.mixin import _cp1252
from lxml import etree

from watcher.encoding import Refused, prepared
from watcher.entry import identity_from_entry, talk_from_entry
from watcher.feed import (
    ParsedFeed,
    parse_feed,
    parse_prepared,
    parsed_entries,
    read_entries,
    refused_error,
    sorted_warnings,
    unparseable_error,
)
from watcher.identity import distinct_talks
from watcher.media import content_video_stand_in
from watcher.talk import Talk

# The elements feedparser reads an entry's content or summary from (any namespace).
_CONTENT = frozenset({"description", "summary", "content", "encoded", "body"})
_ITEM_TAGS = ("{*}item", "{*}entry")
# feedparser's short names for text/plain and text/html.
_TEXT_TYPES = frozenset({"text", "plain", "html"})
_TOKEN = "watcher-stand-in-"
_C1_CONTROLS = re.compile("[\x80-\x9f]")


def _strict_parser() -> etree.XMLParser:
    """A parser of its own for each read: lxml lets one parser parse in one thread at a
    time, and with one each, two threads parse at once (lxml lets go of the GIL)."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
    )


@dataclass
class FeedRead:
    """Who is in a feed; `talks()` reads the ones asked for in full."""

    identities: list[Talk]
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    skimmed: bool = False  # whether the cheap path was taken (else everything was parsed)
    degraded: bool = False  # see ParsedFeed.degraded
    # Each item's identity (before the document names it) by the key of its bytes in their
    # context, for the next read of the feed (`read_feed(data, known)`); None: not to keep.
    items: dict[str, Talk] | None = None
    reused: int = 0  # how many items were known, and not read again
    _document: _Document | None = None
    _full: ParsedFeed | None = None
    _data: bytes = b""

    def talks(self, guids: Collection[str]) -> list[Talk]:
        """The full talks with these GUIDs, in document order. Call it once."""
        wanted = set(guids)
        if not wanted:
            return []
        if self._document is not None:
            chosen = [(n, talk) for n, talk in self._document.numbered if talk.guid in wanted]
            talks = self._document.whole(chosen)
            if talks is not None:
                return talks
        full = self._full or parse_feed(self._data)  # not exactly from the light copy: never guess
        return [talk for talk in full.talks if talk.guid in wanted]


def read_feed(data: bytes, known: Mapping[str, Talk] | None = None) -> FeedRead:
    """Read who is in a feed document. Never raises for any input.

    `known`: the `items` of an earlier read of the feed. An item whose key is among them
    (the same bytes, in the same context, read by the same code) is not read again: its
    identity is the one kept. The others are read as if the document held them alone
    with what surrounds the items, which is how feedparser reads each item anyway."""
    try:
        document, warnings = prepared(data)
    except Refused as exc:
        return FeedRead([], error=refused_error(exc))
    except Exception as exc:
        return FeedRead([], error=unparseable_error(exc))
    skim = _Document.read(data, document, warnings, known or {})
    if skim is None and known:
        skim = _Document.read(data, document, warnings, {})
    if skim is not None:
        return FeedRead(
            [talk for _, talk in skim.numbered],
            warnings=skim.warnings,
            skimmed=True,
            degraded=skim.degraded,
            items=skim.items if skim.items and not skim.troubled else None,
            reused=skim.reused,
            _document=skim,
            _data=data,
        )
    full = parse_prepared(data, document, warnings)
    return FeedRead(
        full.talks, full.error, full.warnings, degraded=full.degraded, _full=full, _data=data
    )


@dataclass
class _Document:
    entries: dict[int, feedparser.FeedParserDict]  # item index → its light entry (if read)
    contents: list[dict[str, str]]  # per item: stand-in text → the original content's text
    numbered: list[tuple[int, Talk]]  # (item index, talk named by the document)
    items: dict[str, Talk]  # item key → the item's identity before it was named
    warnings: list[str]
    # feedparser had something to say of the light copy: it fell back to its loose parser
    # (which decodes text otherwise than _as_feedparser_keeps), or skipped an item
    troubled: bool
    degraded: bool
    reused: int  # items known, not read again

    @classmethod
    def read(
        cls, data: bytes, document: bytes, warnings: list[str], known: Mapping[str, Talk]
    ) -> _Document | None:
        """The light read, or None when only the full parse can be trusted with the document
        (or, with `known` items, when the items read could not be read on their own).

        Known items are found in the document's bytes (`_item_spans`) and emptied before
        lxml reads it: what it parses is what surrounds the items, and the items not known
        (parsing the whole of a 1.2 MB feed took two thirds of its read)."""
        prolog = _prolog(document)
        if prolog is None:
            return None
        # expat gives an element the attributes an <!ATTLIST> declares for it (an xml:base
        # that leaks past it), lxml, reading as it does here, does not: no item is kept
        spans = _item_spans(document, len(prolog)) if b"<!ATTLIST" not in prolog else None
        context = _Context(prolog, warnings)
        keys = [context.key(document, span) for span in spans] if spans is not None else None
        cut = [n for n, key in enumerate(keys) if key in known] if keys and known else []
        try:
            root = etree.fromstring(_emptied(document, spans, cut), parser=_strict_parser())
        except etree.LxmlError:
            return None
        items = _items(root)
        if spans is not None and not _found_as_lxml_does(items, spans):
            if cut:
                return None
            keys = None  # then no item is keyed, known or kept
        reusable = keys is not None and not _leaks(root, items)
        if cut and not reusable:
            return None
        gone = set(cut)
        unread = [n for n in range(len(items)) if n not in gone]
        latin1 = _may_hold_latin1(document, root)
        contents = [{} if n in gone else _stand_ins(item, latin1) for n, item in enumerate(items)]
        cached = {n: known[keys[n]] for n in cut} if keys is not None else {}
        for n in cut:
            _drop(items[n])
        light = parsed_entries(data, prolog + etree.tostring(root, encoding="utf-8"), warnings)
        if isinstance(light, str) or len(light.entries) != len(unread):
            return None
        troubled = len(light.warnings) > len(warnings)
        if cached and (troubled or light.degraded):
            return None
        read, unreadable = read_entries(light.entries, identity_from_entry, unread)
        identities = sorted([*read, *cached.items()])
        cut_at = unread[light.cut] if light.cut is not None else None
        numbered, skipped = distinct_talks(identities, cut_at)
        return cls(
            dict(zip(unread, light.entries, strict=True)),
            contents,
            numbered,
            {keys[n]: talk for n, talk in identities} if keys is not None and reusable else {},
            light.warnings + sorted_warnings(unreadable + skipped),
            troubled,
            light.degraded,
            len(cached),
        )

    def whole(self, chosen: list[tuple[int, Talk]]) -> list[Talk] | None:
        """The full talks of these identities (with their items' indices): their entries get
        their content back. None if that cannot be done exactly (or an item was known, and
        so not read this time)."""
        if self.troubled:
            return None
        talks = []
        for number, identity in chosen:
            entry = self.entries.get(number)
            if entry is None:
                return None
            originals = {
                stand_in: _as_feedparser_keeps(text)
                for stand_in, text in self.contents[number].items()
            }
            if not _put_back(entry, originals):
                return None
            try:
                talk = talk_from_entry(entry)
            except Exception:
                return None
            if not _same_item(talk, identity):
                return None
            talks.append(replace(talk, guid=identity.guid))  # the name the document gave it
        return talks


class _Context:
    """The key of an item: a digest of its bytes and of all they are read in: the prolog
    (a DOCTYPE), what the encoding sniffing said, the start tags of the elements it is in
    as written (their namespaces, xml:base, xml:lang, the version), and the code that
    reads it (`READER_CODE`: any change of it is a new key for every item). What stands
    beside the items cannot change how one is read, unless it leaks (`_leaks`): then no
    item is kept."""

    def __init__(self, prolog: bytes, warnings: list[str]) -> None:
        self._head = hashlib.sha256(READER_CODE + prolog)
        self._head.update(repr(warnings).encode())

    def key(self, document: bytes, span: _Span) -> str:
        digest = self._head.copy()
        digest.update(len(span.around).to_bytes(8, "big") + span.around)
        digest.update(memoryview(document)[span.start : span.end])
        return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _Span:
    """Where an item stands in the document's bytes."""

    start: int
    end: int
    name: bytes  # its tag as written (with a prefix, if any)
    around: bytes  # the start tags of the elements it is in, as written


_START_TAG = re.compile(rb"<([^\s/>!?]+)(?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*(/?)>")
_END_TAG = re.compile(rb"</([^\s>]+)\s*>")
_SKIPPED = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))
_ITEM_NAMES = (b"item", b"entry")


def _item_spans(document: bytes, root_at: int) -> list[_Span] | None:
    """The items as `_items` finds them (an element named item or entry, of any namespace,
    not inside another), from the markup alone: comments, CDATA sections and processing
    instructions are passed over whole; a tag ends at the first `>` outside its quoted
    attribute values. In a well-formed document (lxml says whether it is) no other `<`
    begins markup. None where the markup is not read so simply; an item that is the root
    is not among them (it cannot be cut out). Each step finds the next `<`, or the end of
    what it opens: one pass, whatever the document holds."""
    spans: list[_Span] = []
    open_tags: list[tuple[bytes, int, int]] = []  # each open element: name, its start tag
    item: tuple[int, int, bytes, bytes] | None = None  # the open item: depth, start, name, around
    at = root_at
    while True:
        at = document.find(b"<", at)
        if at < 0:
            return None
        kind = document[at + 1 : at + 2]
        if kind in (b"!", b"?"):
            skipped = next((pair for pair in _SKIPPED if document.startswith(pair[0], at)), None)
            if skipped is None:
                return None
            opening, closing = skipped
            at = document.find(closing, at + len(opening))
            if at < 0:
                return None
            at += len(closing)
            continue
        if kind == b"/":
            end_tag = _END_TAG.match(document, at)
            if end_tag is None:
                return None
            if not open_tags or open_tags[-1][0] != end_tag.group(1):
                return None
            open_tags.pop()
            if item is not None and len(open_tags) == item[0]:
                spans.append(_Span(item[1], end_tag.end(), item[2], item[3]))
                item = None
            if not open_tags:
                return spans
            at = end_tag.end()
            continue
        start_tag = _START_TAG.match(document, at)
        if start_tag is None:
            return None
        name = start_tag.group(1)
        if item is None and open_tags and name.rpartition(b":")[2] in _ITEM_NAMES:
            around = b"".join(document[start:end] for _, start, end in open_tags)
            if start_tag.group(2):
                spans.append(_Span(at, start_tag.end(), name, around))
            else:
                item = (len(open_tags), at, name, around)
        if not start_tag.group(2):
            open_tags.append((name, at, start_tag.end()))
        elif not open_tags:
            return spans
        at = start_tag.end()


def _emptied(document: bytes, spans: list[_Span] | None, cut: list[int]) -> bytes:
    """The document with each of these items emptied: its bytes become an empty element of
    the same tag, which stands where it stood (for `_leaks`) and is dropped once read."""
    if not cut or spans is None:
        return document
    pieces = []
    at = 0
    for n in cut:
        pieces += [document[at : spans[n].start], b"<", spans[n].name, b"/>"]
        at = spans[n].end
    pieces.append(document[at:])
    return b"".join(pieces)


def _found_as_lxml_does(items: list[etree._Element], spans: list[_Span]) -> bool:
    """Whether the items lxml found are the spans, in order (a check of the scan)."""
    return len(spans) == len(items) and all(
        etree.QName(item).localname.encode() == span.name.rpartition(b":")[2]
        for item, span in zip(items, spans, strict=True)
    )


def _leaks(root: etree._Element, items: list[etree._Element]) -> bool:
    """Whether an element may set what feedparser keeps in force after it, for the items
    that follow: a namespace, a base URI or a language declared in an item, beside the
    items, or on an element around some of them only (feedparser takes any attribute
    named `base`, of any namespace or case, for `xml:base`, and keeps it past the
    element's end), or an `<rss>` or `<feed>` element (which sets the version feedparser
    reads the rest as). Then no item is read on its own (none is known): each is read with
    all that comes before it. (On the elements around every item they are part of each
    item's key.)"""
    around = [set(item.iterancestors()) for item in items]
    ancestors = set.intersection(*around) if around else set()
    for element in root.iter():
        if not isinstance(element.tag, str) or element in ancestors:
            continue
        if etree.QName(element).localname.lower() in ("rss", "feed"):
            return True
        for name in element.attrib:
            if etree.QName(name).localname.lower() in ("base", "lang"):
                return True
        parent = element.getparent()
        if parent is not None and element.nsmap != parent.nsmap:
            return True
    return False


def _drop(item: etree._Element) -> None:
    """Take a known item out of the light copy; the text after it stays where it was."""
    parent = item.getparent()
    if parent is None:
        return
    if item.tail:
        previous = item.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + item.tail
        else:
            parent.text = (parent.text or "") + item.tail
    parent.remove(item)


def _reader_code() -> bytes:
    """A digest of the code an item's identity comes from, and of feedparser's version."""
    import watcher.dates
    import watcher.encoding
    import watcher.entry
    import watcher.feed
    import watcher.media
    import watcher.talk
    import watcher.text
    import watcher.urls

    modules = (
        watcher.dates,
        watcher.encoding,
        watcher.entry,
        watcher.feed,
        watcher.media,
        watcher.talk,
        watcher.text,
        watcher.urls,
    )
    digest = hashlib.blake2b(feedparser.__version__.encode(), digest_size=16)
    digest.update(Path(__file__).read_bytes())
    for module in modules:
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.digest()


READER_CODE = _reader_code()


def _same_item(talk: Talk, identity: Talk) -> bool:
    """Whether the full read of an item names it as its light read did (before the document
    gave it a name of its own, `watcher.identity`)."""
    named = talk.guid == identity.guid or identity.guid.startswith(f"{talk.guid}#")
    return named and (talk.url, talk.video_id, talk.raw_title) == (
        identity.url,
        identity.video_id,
        identity.raw_title,
    )


class _RootReached(Exception):
    pass


def _prolog(document: bytes) -> bytes | None:
    """The document's bytes before its root element (None if expat does not reach it).

    A copy keeps them as they are: feedparser drops a DOCTYPE that begins a line and keeps
    one that does not, and expat reads an undefined entity (&nbsp;) as an error or not by
    whether there is one, which is where feedparser falls back to its loose parser."""
    parser = xml.parsers.expat.ParserCreate()
    start: list[int] = []

    def root_reached(*_: object) -> None:
        start.append(parser.CurrentByteIndex)
        raise _RootReached

    parser.StartElementHandler = root_reached
    with contextlib.suppress(_RootReached, xml.parsers.expat.ExpatError):
        parser.Parse(document, True)
    return document[: start[0]] if start else None


def _items(root: etree._Element) -> list[etree._Element]:
    """The item elements as feedparser finds them: not inside another item."""
    items = []
    for element in root.iter(*_ITEM_TAGS):
        if next(element.iterancestors(*_ITEM_TAGS), None) is None:
            items.append(element)
    return items


def _stand_ins(item: etree._Element, latin1: bool = True) -> dict[str, str]:
    """Swap each content element of the item for a light copy: same tag and attributes,
    its text the video link read from it (if any) and a token unique in the item (so
    that the copy of an item is the same wherever the item stands).
    Returns each stand-in's text → the original's text.

    `latin1`: whether a text in it may hold a character from U+0080 to U+00FF.

    Kept whole: markup (feedparser rebuilds it without comments, processing instructions,
    namespace declarations, the element's own attributes or a wrapping div's, and
    escapes its text), and text feedparser decodes or escapes (see _plain_text)."""
    swapped = {}
    tokens = itertools.count()
    files: bool | None = None  # whether the item has an enclosure or media (found once)
    for child in item:
        if not isinstance(child.tag, str) or etree.QName(child).localname not in _CONTENT:
            continue
        text = child.text or ""
        if len(child) or not text.strip() or not _plain_text(child):
            continue
        # The link as feedparser will see it: its Latin-1 and cp1252 mending can only change
        # text with characters from U+0080 to U+00FF, and those are rare.
        kept = _as_feedparser_keeps(text) if latin1 and _has_latin1(text) else text
        if files is None:
            files = _has_files(item)
        link = content_video_stand_in(kept, files)
        token = f"{_TOKEN}{next(tokens)}"
        stand_in = etree.Element(child.tag, attrib=dict(child.attrib), nsmap=child.nsmap)
        stand_in.text = f"{link} {token}" if link else token
        stand_in.tail = child.tail
        item.replace(child, stand_in)
        swapped[stand_in.text] = text
    return swapped


def _may_hold_latin1(document: bytes, root: etree._Element) -> bool:
    """Whether any text lxml read from the document may hold a character from U+0080 to
    U+00FF: in UTF-8 such a character begins with byte C2 or C3, else it came from a
    character reference. Three byte searches of the whole document cost less than encoding
    one long content's text for `_has_latin1` (a fifth of the stand-ins of a 1.2 MB feed)."""
    if (root.getroottree().docinfo.encoding or "").upper() not in ("UTF-8", "UTF8"):
        return True
    return b"\xc2" in document or b"\xc3" in document or (b"#" in document and b"&#" in document)


def _has_latin1(text: str) -> bool:
    """Whether the text holds a character from U+0080 to U+00FF: in UTF-8, exactly the
    characters whose first byte is C2 or C3. Encoding and two byte searches take a fifth
    of the time of a regex over a text that holds wider characters."""
    if text.isascii():
        return False
    encoded = text.encode("utf-8", "surrogatepass")
    return b"\xc2" in encoded or b"\xc3" in encoded


def _has_files(item: etree._Element) -> bool:
    """Whether feedparser may find an audio or video file in the item (`media.playable_file`):
    an enclosure, an Atom link to one, or anything of Media RSS."""
    for element in item.iter():
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element)
        if (
            name.localname == "enclosure"
            or "search.yahoo.com/mrss" in (name.namespace or "").lower()
        ):
            return True
        if name.localname == "link" and (element.get("rel") or "").strip().lower() == "enclosure":
            return True
    return False


def _as_feedparser_keeps(text: str) -> str:
    """What feedparser's strict parser stores of a text content element (of a UTF-8
    document, HTML left as it is): see `_FeedParserMixin.pop`."""
    output = text.strip()
    with contextlib.suppress(UnicodeError):  # its fix for UTF-8 once decoded as Latin-1
        output = output.encode("iso-8859-1").decode("utf-8")
    if _C1_CONTROLS.search(output):  # translate() is slow, and these are rare
        output = output.translate(_cp1252)
    return output


def _put_back(entry: dict[str, Any], originals: dict[str, str]) -> bool:
    """Put the content back where feedparser stored the stand-ins (an entry's value, and
    the value of its details or content); False if a token is left anywhere."""
    for key, value in list(entry.items()):
        if isinstance(value, str) and value in originals:
            dict.__setitem__(entry, key, originals[value])
        elif isinstance(value, list):
            for part in value:
                if isinstance(part, dict) and part.get("value") in originals:
                    dict.__setitem__(part, "value", originals[part["value"]])
        elif isinstance(value, dict) and value.get("value") in originals:
            dict.__setitem__(value, "value", originals[value["value"]])
    return not _holds_token(entry)


def _holds_token(value: object) -> bool:
    if isinstance(value, str):
        return _TOKEN in value
    if isinstance(value, dict):
        return any(map(_holds_token, value.values()))
    if isinstance(value, list | tuple):
        return any(map(_holds_token, value))
    return False


def _plain_text(element: etree._Element) -> bool:
    """Whether feedparser takes the element's text as text or HTML, as it is: its type is
    text/*; of others it decodes most as base64 (as it does mode="base64") and escapes
    XHTML."""
    types = []
    for name, value in element.attrib.items():
        attribute = etree.QName(name).localname.lower()
        if attribute == "mode" and value.lower() == "base64":
            return False
        if attribute == "type":
            types.append(value.lower())
    if not types:  # feedparser's default type: XHTML for a body, else text or HTML
        localname: str = etree.QName(element).localname
        return localname != "body"
    return all(kind in _TEXT_TYPES or kind.startswith("text/") for kind in types)
