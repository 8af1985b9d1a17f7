"""How a `Talk` is read out of a feed entry.

Everything here is pure: a feedparser entry (a mapping) in, a `Talk` out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import chain, islice
from typing import Any

import lxml.html

from watcher.dates import as_stamped_before, iso_utc
from watcher.media import enclosure_pictures, entry_pictures, entry_video
from watcher.talk import Talk, split_title
from watcher.text import (
    FIRST_LINES_MAX,
    clean_text,
    first_sentences,
    html_root,
    plain_text,
    shorten,
)
from watcher.urls import resolve_url, safe_url

# Bounded digit runs, a run matched from its start only, and a watch?-query that stops at
# the next "/" or "?": feed text is untrusted, and each unbounded form took minutes on
# ~100 KB of digits or of repeated "youtube.com/watch?".
_SLIDE_HEADING = re.compile(r"Slide\s+(\d{1,6})\s*[—–-]\s*((?:\d{1,4}:)?\d{1,2}:\d{2})")
_SLIDES_CLAIMED = re.compile(r"(?<!\d)(\d{1,6})\s++slides?\s+extracted", re.IGNORECASE)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_INLINE_TAGS = frozenset(
    {"a", "abbr", "b", "bdi", "br", "cite", "code", "del", "em", "font", "i", "ins", "kbd"}
    | {"mark", "q", "s", "small", "span", "strong", "sub", "sup", "u", "wbr"}
)
_MARKUP = re.compile(r"<[A-Za-z/!?]")


@dataclass(frozen=True)
class Slide:
    """A slide's time, and its table, read only as far as asked: a talk needs the time of
    every slide, but the image of the first and the words of the first few (resolving
    every slide's image and reading every transcript was half of reading a talk)."""

    seconds: int
    table: lxml.html.HtmlElement | None
    base: str

    @property
    def image(self) -> str | None:
        """The first image of the slide's table, made absolute, if it is a safe URL."""
        if self.table is None:
            return None
        for cell in _own_cells(self.table):
            img = next(cell.iter("img"), None)
            if img is not None and (url := resolve_url(self.base, img.get("src"))):
                return url
        return None

    @property
    def transcript(self) -> str:
        """The text of the table's cells that hold no image, as in the page: `shorten()` it
        before use."""
        if self.table is None:
            return ""
        cells = _own_cells(self.table)
        return " ".join(
            cell.text_content() for cell in cells if next(cell.iter("img"), None) is None
        )


def talk_from_entry(entry: Mapping[str, Any]) -> Talk:
    """Read one talk out of a feedparser entry (parsed with `sanitize_html=False`)."""
    identity = identity_from_entry(entry)
    description, base = _description_html(entry)
    root = html_root(description)
    slides = _slides(root, base) if root is not None else []
    claimed = _claimed_slide_count(root)
    slide_count = claimed if claimed is not None else (len(slides) or None)
    if slides:
        lines = list(
            islice((line for s in slides if (line := shorten(s.transcript))), FIRST_LINES_MAX)
        )
    else:
        lines = _first_lines(entry, description, root)
    return replace(
        identity,
        slide_count=slide_count,
        slides_present=len(slides),
        duration=slides[-1].seconds if slides else None,
        duration_is_partial=bool(slides) and slide_count is not None and len(slides) < slide_count,
        thumbnail=_thumbnail(entry, slides, root, base),
        first_lines=lines[:FIRST_LINES_MAX],
    )


def _first_lines(
    entry: Mapping[str, Any], description: str, root: lxml.html.HtmlElement | None
) -> list[str]:
    """The first sentences of the first of the entry's texts that has any: a content that
    is only an image falls back to the summary (or `media:description`, which feedparser
    stores as one or the other)."""
    lines = first_sentences(plain_text(root), lines=not _MARKUP.search(description))
    if lines:
        return lines
    for text, _ in _texts(entry):
        if text is not description:
            lines = first_sentences(plain_text(html_root(text)), lines=not _MARKUP.search(text))
            if lines:
                return lines
    return []


def _thumbnail(
    entry: Mapping[str, Any], slides: list[Slide], root: lxml.html.HtmlElement | None, base: str
) -> str | None:
    """The first slide's image, else the entry's `media:thumbnail` or image `media:content`,
    else the first `<img>` of the content, else an image enclosure or `itunes:image`."""
    content = islice(root.iter("img"), 8) if root is not None else ()
    candidates = chain(
        (slide.image for slide in slides),
        entry_pictures(entry),
        (resolve_url(base, img.get("src")) for img in content),
        enclosure_pictures(entry),
    )
    return next((url for value in candidates if (url := safe_url(value))), None)


def identity_from_entry(entry: Mapping[str, Any]) -> Talk:
    """A talk with only what names it read: GUID, title, link, video id, date. Its slides
    and first lines are left empty: reading them is most of the work, and a poll needs
    them only for a new talk."""
    raw_title = clean_text(_title_text(entry))
    title, speaker, event = split_title(raw_title)
    url = safe_url(entry.get("link"))
    published = _published(entry)
    description, _ = _description_html(entry)
    video = entry_video(entry, description)
    return Talk(
        guid=_guid(entry, url),
        title=title,
        speaker=speaker,
        event=event,
        raw_title=raw_title,
        url=url,
        video_id=video.youtube_id if video else None,
        video_url=video.url if video else None,
        published=published,
        slide_count=None,
        slides_present=0,
        duration=None,
        thumbnail=None,
    )


def _title_text(entry: Mapping[str, Any]) -> str:
    """The title as a reader sees it. A title feedparser reads as HTML (its tags or
    entities) is read as HTML when it holds only inline markup (`<span>₹</span>`,
    `<sup>2</sup>`, `&amp;`); any other tag is more likely a word of the title
    ("Why <div> soup hurts") and the title is kept as written."""
    title = entry.get("title")
    if not isinstance(title, str):
        return ""
    detail = raw_get(entry, "title_detail")
    kind = detail.get("type") if isinstance(detail, Mapping) else None
    if kind not in _HTML_TYPES or not ("<" in title or "&" in title):
        return title
    root = html_root(title)
    if root is None:
        return title
    tags = {element.tag for element in root.iterdescendants()}
    if tags <= _INLINE_TAGS and (tags or "&" in title):
        return str(root.text_content())
    return title


def _guid(entry: Mapping[str, Any], url: str | None) -> str:
    """The item's guid, else its link, else a hash of its title and date. The hash is of
    the title as written (not as `_title_text` reads it) and of the date as it has always
    been written there, placeholders too: a better reading of either must not rename a
    talk seen before."""
    guid = entry.get("id")
    if isinstance(guid, str) and guid.strip():
        return clean_text(guid)
    if url:
        return url
    title = entry.get("title")
    written = clean_text(title) if isinstance(title, str) else ""
    stamp = as_stamped_before(
        raw_get(entry, "published_parsed") or raw_get(entry, "updated_parsed")
    )
    digest = hashlib.sha256(f"{written}\n{stamp or ''}".encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def _published(entry: Mapping[str, Any]) -> str | None:
    return iso_utc(raw_get(entry, "published_parsed") or raw_get(entry, "updated_parsed"))


def _description_html(entry: Mapping[str, Any]) -> tuple[str, str]:
    """The entry's content (else its summary) as HTML, and the URL its relative URLs are
    relative to (its xml:base): feedparser is asked not to rewrite the HTML, which took
    most of its time, so the few URLs read from it are resolved here."""
    return next(_texts(entry), ("", ""))


def _texts(entry: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Each non-empty content of the entry, then its summary, with its xml:base."""
    for content in entry.get("content") or []:
        value = content.get("value") if isinstance(content, Mapping) else None
        if value and isinstance(value, str):
            yield value, _base(content)
    summary = entry.get("summary") or entry.get("description") or ""
    if summary and isinstance(summary, str):
        yield summary, _base(raw_get(entry, "summary_detail") or {})


def raw_get(entry: Mapping[str, Any], key: str) -> object:
    """`entry[key]` or None, without feedparser's get(), which maps one key onto another
    (`published_parsed` onto `updated_parsed`) with a warning."""
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def _base(detail: object) -> str:
    base = detail.get("base") if isinstance(detail, Mapping) else None
    return base if isinstance(base, str) else ""


def _claimed_slide_count(root: lxml.html.HtmlElement | None) -> int | None:
    if root is None:
        return None
    for element in _outermost(root, "em", "p"):
        match = _SLIDES_CLAIMED.search(element.text_content())
        if match:
            return int(match.group(1))
    return None


def _slides(root: lxml.html.HtmlElement, base: str) -> list[Slide]:
    """Each `<h2>Slide K — m:ss</h2>` and the table after it: image and transcript."""
    slides = []
    for heading in _outermost(root, "h2"):
        match = _SLIDE_HEADING.search(heading.text_content())
        if not match:
            continue
        table = heading.getnext()
        while table is not None and table.tag != "table":
            if table.tag == "h2":
                table = None
                break
            table = table.getnext()
        slides.append(Slide(parse_timestamp(match.group(2)), table, base))
    return slides


def _own_cells(table: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """The cells of the table's own rows; with a table nested in it, only those holding none.

    A td nested in another (`<td><div><td>…`) or in a nested table (read after its own
    heading) is not the table's: reading it too would read one text once per level.
    """
    if next(islice(table.iter("table"), 1, None), None) is None:
        return [cell for cell in table.iter("td") if _row_owner(cell) is table]
    own = table.xpath("./tr/td | ./*/tr/td")
    return [cell for cell in own if cell.find(".//table") is None]


def _row_owner(cell: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    row = cell.getparent()
    owner = row.getparent() if row is not None and row.tag == "tr" else None
    if owner is not None and owner.tag in ("tbody", "thead", "tfoot"):
        owner = owner.getparent()
    return owner


def _outermost(root: lxml.html.HtmlElement, *tags: str) -> Iterator[lxml.html.HtmlElement]:
    """The elements with one of `tags` not inside another one: nested 250 deep, reading each
    one's text would read the innermost text 250 times. (The first em or p whose text matches
    is the same either way: an inner element's text is part of the outer one's.)"""
    for element in root.iter(*tags):
        if next(element.iterancestors(*tags), None) is None:
            yield element


def parse_timestamp(value: str) -> int:
    """`m:ss` or `h:mm:ss` → seconds."""
    seconds = 0
    for part in value.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds
