"""The `Talk` record and how one is read out of a feed entry.

Everything here is pure: a feedparser entry (a mapping) in, a `Talk` out. The
field names are a public contract: `watcher inspect --json` prints them and the
webhook payload carries them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from itertools import islice
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html

from watcher.dates import iso_utc

FIRST_LINES_MAX = 3
FIRST_LINE_CHARS = 300

MAX_TAG_ATTRIBUTES = 64
_BLOCK_TAGS = (
    "p",
    "div",
    "br",
    "li",
    "tr",
    "td",
    "th",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "table",
    "ul",
    "ol",
    "hr",
)

# Bounded digit runs, a run matched from its start only, and a watch?-query that stops at
# the next "/" or "?": feed text is untrusted, and each unbounded form took minutes on
# ~100 KB of digits or of repeated "youtube.com/watch?".
_SLIDE_HEADING = re.compile(r"Slide\s+(\d{1,6})\s*[—–-]\s*((?:\d{1,4}:)?\d{1,2}:\d{2})")
_SLIDES_CLAIMED = re.compile(r"(?<!\d)(\d{1,6})\s++slides?\s+extracted", re.IGNORECASE)
_YOUTUBE_ID = re.compile(
    r"(?:youtube(?:-nocookie)?\.com/(?:embed/|watch\?(?:[^\s\"'<>/?]*?&(?:amp;)?)?v=|shorts/)"
    r"|youtu\.be/)([A-Za-z0-9_-]{11})(?![A-Za-z0-9_-])"
)
# A start or end tag as HTML5 tokenizes it, with at most MAX_TAG_ATTRIBUTES attributes and
# no "<" or stray quote inside. libxml2 compares each attribute's name with all before it,
# so one tag with 100,000 attributes (1 MB) takes minutes; a "<" that does not begin such a
# tag becomes "&lt;", i.e. text. Every part excludes "<", so the scan is linear.
_TAG_SPACE = "\t\n\f\r "
_TAG_START = rf"/?[^{_TAG_SPACE}/>!?<]"
_ATTR_VALUE = rf"""(?:"[^"<]*+(?:"|\Z)|'[^'<]*+(?:'|\Z)|[^{_TAG_SPACE}>"'<]++|\Z)"""
_ATTRIBUTE = rf"""[^{_TAG_SPACE}/>=<"']++(?:[{_TAG_SPACE}]*+=[{_TAG_SPACE}]*+{_ATTR_VALUE})?"""
_PLAIN_TAG = (
    rf"""{_TAG_START}[^{_TAG_SPACE}/>=<"']*+"""
    rf"(?:[{_TAG_SPACE}/]++(?:{_ATTRIBUTE})?){{0,{MAX_TAG_ATTRIBUTES}}}+"
    rf"[{_TAG_SPACE}/]*+(?:>|\Z)"
)
_CROWDED_TAG = re.compile(rf"<(?!{_PLAIN_TAG})(?={_TAG_START})")
_BLANK = r"\s\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # what clean_text() makes one space of
# A sentence of the cleaned text: from a kept character to a ".!?…" that a blank follows.
_SENTENCE = re.compile(rf"[^{_BLANK}].*?(?:(?<=[.!?…])(?=[{_BLANK}])|\Z)", re.DOTALL)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_NOT_IN_URL = re.compile(r"[\s<>\"'\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # \s is str.isspace()
_NOT_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # lxml refuses them


@dataclass(frozen=True)
class Talk:
    guid: str
    title: str
    speaker: str | None
    event: str | None
    raw_title: str
    url: str | None
    video_id: str | None
    video_url: str | None
    published: str | None
    slide_count: int | None
    slides_present: int
    duration: int | None
    thumbnail: str | None
    first_lines: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Talk:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Slide:
    seconds: int
    image: str | None
    transcript: str  # as in the page: clean_text() it before use


def talk_from_entry(entry: Mapping) -> Talk:
    """Read one talk out of a feedparser entry (parsed with `sanitize_html=False`)."""
    identity = identity_from_entry(entry)
    description, base = _description_html(entry)
    root = _html_root(description)
    slides = _slides(root, base) if root is not None else []
    claimed = _claimed_slide_count(root)
    if slides:
        lines = list(
            islice((line for s in slides if (line := shorten(s.transcript))), FIRST_LINES_MAX)
        )
    else:
        lines = first_sentences(_plain_text(root))
    return replace(
        identity,
        slide_count=claimed if claimed is not None else (len(slides) or None),
        slides_present=len(slides),
        duration=slides[-1].seconds if slides else None,
        thumbnail=next((s.image for s in slides if s.image), None),
        first_lines=lines[:FIRST_LINES_MAX],
    )


def identity_from_entry(entry: Mapping) -> Talk:
    """A talk with only what names it read: GUID, title, link, video id, date. Its slides
    and first lines are left empty: reading them is most of the work, and a poll needs
    them only for a new talk."""
    raw_title = clean_text(entry.get("title") or "")
    title, speaker, event = split_title(raw_title)
    url = safe_url(entry.get("link"))
    published = _published(entry)
    description, _ = _description_html(entry)
    video_id = _video_id(description, entry)
    return Talk(
        guid=_guid(entry, url, raw_title, published),
        title=title,
        speaker=speaker,
        event=event,
        raw_title=raw_title,
        url=url,
        video_id=video_id,
        video_url=f"https://www.youtube.com/watch?v={video_id}" if video_id else None,
        published=published,
        slide_count=None,
        slides_present=0,
        duration=None,
        thumbnail=None,
    )


def split_title(raw_title: str) -> tuple[str, str | None, str | None]:
    """`Title | Speaker | Event` → its parts; a two-part title's second part is the speaker."""
    parts = [part.strip() for part in raw_title.split(" | ")]
    title = parts[0]
    speaker = parts[1] or None if len(parts) > 1 else None
    event = " | ".join(parts[2:]) or None if len(parts) > 2 else None
    return title, speaker, event


def safe_url(value: object) -> str | None:
    """The URL if it is an absolute http(s) URL, else None: feed links reach readers."""
    if not isinstance(value, str):
        return None
    value = _SURROGATES.sub("\ufffd", value.strip())
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if _NOT_IN_URL.search(value):
        return None
    return value


def clean_text(value: str) -> str:
    """Collapse white space (line breaks included), drop control characters and lone surrogates."""
    value = _SURROGATES.sub("\ufffd", value)
    return " ".join(_CONTROL_CHARS.sub(" ", value).split())


def shorten(text: str, limit: int = FIRST_LINE_CHARS) -> str:
    """Cut `text` to at most `limit` characters on a word boundary, ending with `…`."""
    enough = _enough_text(limit).match(text)  # of a long text, clean only what the cut needs
    text = clean_text(text[: enough.end()] if enough else text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


@lru_cache(maxsize=8)
def _enough_text(limit: int) -> re.Pattern[str]:
    """A prefix holding `limit` + 1 characters that clean_text() keeps (so is over `limit`)."""
    return re.compile(rf"(?:[{_BLANK}]*+[^{_BLANK}]){{{limit + 1}}}")


def first_sentences(text: str, count: int = FIRST_LINES_MAX) -> list[str]:
    """The first sentences of `text` as clean_text() would split them, found lazily: a 10 MB
    description is not cleaned and split whole for three lines."""
    return [shorten(match.group()) for match in islice(_SENTENCE.finditer(text), count)]


def parse_timestamp(value: str) -> int:
    """`m:ss` or `h:mm:ss` → seconds."""
    seconds = 0
    for part in value.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def _guid(entry: Mapping, url: str | None, raw_title: str, published: str | None) -> str:
    guid = entry.get("id")
    if isinstance(guid, str) and guid.strip():
        return clean_text(guid)
    if url:
        return url
    digest = hashlib.sha256(f"{raw_title}\n{published or ''}".encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def _published(entry: Mapping) -> str | None:
    # dict.get: feedparser's own get() maps one key onto the other, with a warning.
    return iso_utc(dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed"))


def _description_html(entry: Mapping) -> tuple[str, str]:
    """The entry's content (else its summary) as HTML, and the URL its relative URLs are
    relative to (its xml:base): feedparser is asked not to rewrite the HTML, which took
    most of its time, so the few URLs read from it are resolved here."""
    for content in entry.get("content") or []:
        value = content.get("value") if isinstance(content, Mapping) else None
        if value:
            return value, _base(content)
    summary = entry.get("summary") or entry.get("description") or ""
    if not isinstance(summary, str):
        return "", ""
    return summary, _base(dict.get(entry, "summary_detail") or {})


def _base(detail: object) -> str:
    base = detail.get("base") if isinstance(detail, Mapping) else None
    return base if isinstance(base, str) else ""


def resolve_url(base: str, value: object) -> str | None:
    """`value` made absolute against `base`, if it is a safe http(s) URL then (see safe_url)."""
    if not isinstance(value, str):
        return None
    if base and not safe_url(value):
        try:
            value = urljoin(base, value.strip())
        except ValueError:
            return None
    return safe_url(value)


def _html_root(markup: str) -> lxml.html.HtmlElement | None:
    try:
        return _fragment(markup.replace("\x00", ""))
    except ValueError:  # a character XML does not allow: lxml refuses the whole string
        pass
    try:
        return _fragment(_NOT_XML_CHARS.sub("", markup))
    except ValueError:
        return None


def _fragment(markup: str) -> lxml.html.HtmlElement | None:
    if _CROWDED_TAG.search(markup):
        markup = _CROWDED_TAG.sub("&lt;", markup)
    if not markup.strip():
        return None
    try:
        return lxml.html.fragment_fromstring(markup, create_parent="div")
    except lxml.etree.ParserError:
        return None


def _plain_text(root: lxml.html.HtmlElement | None) -> str:
    if root is None:
        return ""
    for element in list(root.iter("script", "style")):
        if element.getparent() is not None:
            element.drop_tree()
    for element in root.iter(*_BLOCK_TAGS):
        element.tail = "\n" + (element.tail or "")  # paragraphs must not run together
    return root.text_content()


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
        image, transcript = _slide_table(table, base) if table is not None else (None, "")
        slides.append(Slide(parse_timestamp(match.group(2)), image, transcript))
    return slides


def _slide_table(table: lxml.html.HtmlElement, base: str) -> tuple[str | None, str]:
    image = None
    texts = []
    for cell in _own_cells(table):
        img = next(cell.iter("img"), None)
        if img is not None:
            image = image or resolve_url(base, img.get("src"))
        else:
            texts.append(cell.text_content())
    return image, " ".join(texts)  # cleaned by shorten(), for the few slides it is needed


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


def _video_id(description: str, entry: Mapping) -> str | None:
    """The YouTube id, case preserved: from the description's embed/watch links, then links.

    Never from the GUID, which this feed lower-cases.
    """
    candidates = [description]
    candidates += [
        link.get("href", "") for link in entry.get("links") or [] if hasattr(link, "get")
    ]
    candidates.append(entry.get("link") or "")
    for text in candidates:
        if isinstance(text, str):
            match = _YOUTUBE_ID.search(text)
            if match:
                return match.group(1)
    return None
