"""Untrusted HTML and text → short, clean plain text (pure).

Feed text is untrusted: every pattern here is linear in the text, and HTML is mended
before lxml sees it where lxml would take minutes over it or refuse it whole.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING

from watcher.urls import SURROGATES

if TYPE_CHECKING:  # lxml is imported where HTML is read: most commands read none
    import lxml.html

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
# A tag that runs into the next one (`<BR <a href=…>`, `<a href="…"<img …>`): HTML5 reads
# the second "<" as part of the first tag, libxml2 as text. The run stops at the next "<"
# or ">" (quoted values hold neither): linear.
_UNCLOSED_TAG = re.compile(
    r"(<[A-Za-z](?:[^<>\"']++|\"[^\"<>]*+\"|'[^'<>]*+'){0,200}+)<(?=/?[A-Za-z])"
)
_BLANK = r"\s\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # what clean_text() makes one space of
# A sentence of the cleaned text: from a kept character to a ".!?…" that a blank follows.
_SENTENCE = re.compile(rf"[^{_BLANK}].*?(?:(?<=[.!?…])(?=[{_BLANK}])|\Z)", re.DOTALL)
# The same, where a line break also ends one: text with no markup (YouTube's and podcasts'
# descriptions) is written in lines.
_LINE = re.compile(rf"[^{_BLANK}].*?(?:(?<=[.!?…])(?=[{_BLANK}])|(?=[\n\r])|\Z)", re.DOTALL)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NOT_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # lxml refuses them


def clean_text(value: str) -> str:
    """Collapse white space (line breaks included), drop control characters and lone surrogates."""
    value = SURROGATES.sub("\ufffd", value)
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


def first_sentences(text: str, count: int = FIRST_LINES_MAX, lines: bool = False) -> list[str]:
    """The first sentences of `text` as clean_text() would split them, found lazily: a 10 MB
    description is not cleaned and split whole for three lines. With `lines`, a line break
    ends a sentence too."""
    pattern = _LINE if lines else _SENTENCE
    return [shorten(match.group()) for match in islice(pattern.finditer(text), count)]


def describe(exc: object) -> str:
    """An exception (or None) in a few words, for an error or a warning."""
    if exc is None:
        return ""
    return clean_text(str(exc))[:200] or type(exc).__name__


def html_root(markup: str) -> lxml.html.HtmlElement | None:
    """The markup parsed as the children of a `<div>`; None when it holds nothing or lxml
    cannot read it."""
    try:
        return _fragment(markup.replace("\x00", ""))
    except ValueError:  # a character XML does not allow: lxml refuses the whole string
        pass
    try:
        return _fragment(_NOT_XML_CHARS.sub("", markup))
    except ValueError:
        return None


def _fragment(markup: str) -> lxml.html.HtmlElement | None:
    if "<" in markup:
        markup = _UNCLOSED_TAG.sub(r"\1 ", markup)
    if _CROWDED_TAG.search(markup):
        markup = _CROWDED_TAG.sub("&lt;", markup)
    if not markup.strip():
        return None
    import lxml.etree
    import lxml.html

    try:
        return lxml.html.fragment_fromstring(markup, create_parent="div")
    except lxml.etree.ParserError:
        return None


def plain_text(root: lxml.html.HtmlElement | None) -> str:
    """The text a browser shows of the HTML (its scripts and styles are dropped from it)."""
    if root is None:
        return ""
    for element in list(root.iter("script", "style")):
        if element.getparent() is not None:
            element.drop_tree()
    for element in root.iter(*_BLOCK_TAGS):
        element.tail = "\n" + (element.tail or "")  # paragraphs must not run together
    text: str = root.text_content()
    return text
