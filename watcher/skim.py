"""A feed read in two steps: who is in it (cheap), then the talks asked for (in full).

feedparser spends about 0.3 s of CPU on a 1.2 MB feed, nearly all of it on the
items' content (HTML), and a poll only needs the content of new talks. So lxml
reads the document once; feedparser first reads a light copy in which every
item's content is cut down to the one thing an identity needs from it (its first
YouTube link), which yields each talk's GUID, link, video id and date exactly as
the full parse would; then, only for the talks asked for, a copy holding just
those items, whole. A document lxml will not read strictly (malformed, too deep,
a text node over 10 MB) takes the full parse, which copes with anything.

`read_feed(data).identities` are `Talk`s whose `guid`, `url`, `video_id`,
`published` and `raw_title` are those of the full parse; their other fields are
not read. `talks(guids)` gives the full talks.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from lxml import etree

from watcher.feed import (
    ParsedFeed,
    Refused,
    parse_feed,
    parse_prepared,
    prepared,
    refused_error,
    unparseable_error,
)
from watcher.talk import _YOUTUBE_ID, Talk

# The elements feedparser reads an entry's content or summary from (any namespace).
_CONTENT = frozenset({"description", "summary", "content", "encoded", "body"})
_ITEM_TAGS = ("{*}item", "{*}entry")
_STRICT = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
)


@dataclass
class FeedRead:
    """Who is in a feed; `talks()` reads the ones asked for in full."""

    identities: list[Talk]
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    skimmed: bool = False  # whether the cheap path was taken (else everything was parsed)
    _document: _Document | None = None
    _full: ParsedFeed | None = None
    _data: bytes = b""

    def talks(self, guids: Collection[str]) -> list[Talk]:
        """The full talks with these GUIDs, in document order. Call it once."""
        wanted = set(guids)
        if not wanted:
            return []
        if self._document is not None:
            chosen = [(n, talk.guid) for n, talk in self._document.numbered if talk.guid in wanted]
            talks = self._document.whole([n for n, _ in chosen])
            if [talk.guid for talk in talks] == [guid for _, guid in chosen]:
                return talks
        full = self._full or parse_feed(self._data)  # alone, the items read otherwise: never guess
        return [talk for talk in full.talks if talk.guid in wanted]


def read_feed(data: bytes) -> FeedRead:
    """Read who is in a feed document. Never raises for any input."""
    try:
        document, warnings = prepared(data)
    except Refused as exc:
        return FeedRead([], error=refused_error(exc))
    except Exception as exc:
        return FeedRead([], error=unparseable_error(exc))
    skim = _Document.read(data, document, warnings)
    if skim is not None:
        return FeedRead(
            [talk for _, talk in skim.numbered],
            warnings=skim.warnings,
            skimmed=True,
            _document=skim,
            _data=data,
        )
    full = parse_prepared(data, document, warnings)
    return FeedRead(full.talks, full.error, full.warnings, _full=full, _data=data)


@dataclass
class _Document:
    root: etree._Element
    items: list[etree._Element]
    contents: list[list[tuple[etree._Element, etree._Element]]]  # (stand-in, original) per item
    numbered: list[tuple[int, Talk]]
    warnings: list[str]

    @classmethod
    def read(cls, data: bytes, document: bytes, warnings: list[str]) -> _Document | None:
        """The light read, or None when only the full parse can be trusted with the document."""
        try:
            root = etree.fromstring(document, parser=_STRICT)
        except etree.LxmlError:
            return None
        items = _items(root)
        contents = [_stand_ins(item) for item in items]
        light = parse_prepared(data, etree.tostring(root.getroottree(), encoding="utf-8"), warnings)
        if light.error or light.entry_count != len(items):
            return None
        numbered = list(zip(light.entry_numbers, light.talks, strict=True))
        return cls(root, items, contents, numbered, light.warnings)

    def whole(self, numbers: list[int]) -> list[Talk]:
        """The full talks of the items with these indices: the others are dropped, and
        these get their content back."""
        keep = set(numbers)
        for number, item in enumerate(self.items):
            if number in keep:
                for stand_in, original in self.contents[number]:
                    item.replace(stand_in, original)
            else:
                item.getparent().remove(item)
        document = etree.tostring(self.root.getroottree(), encoding="utf-8")
        return parse_prepared(b"", document, []).talks


def _items(root: etree._Element) -> list[etree._Element]:
    """The item elements as feedparser finds them: not inside another item."""
    items = []
    for element in root.iter(*_ITEM_TAGS):
        if next(element.iterancestors(*_ITEM_TAGS), None) is None:
            items.append(element)
    return items


def _stand_ins(item: etree._Element) -> list[tuple[etree._Element, etree._Element]]:
    """Swap each content element of the item for a light copy: same tag and attributes,
    its text only the first YouTube link in it (or a dash, so an empty one stays empty and
    a full one full). Returns (stand-in, original) pairs."""
    swapped = []
    for child in item:
        if not isinstance(child.tag, str) or etree.QName(child).localname not in _CONTENT:
            continue
        text = "".join(child.itertext())
        if not text.strip():
            continue
        if len(child):  # markup, not text: feedparser keeps it, attributes and all
            text = etree.tostring(child, encoding="unicode", with_tail=False)
        match = _YOUTUBE_ID.search(text)
        stand_in = etree.Element(child.tag, attrib=dict(child.attrib), nsmap=child.nsmap)
        stand_in.text = match.group() if match else "-"
        stand_in.tail = child.tail
        item.replace(child, stand_in)
        swapped.append((stand_in, child))
    return swapped
