"""Which feeds an HTML page advertises (pure).

People know a channel's or a site's address, not its feed's. Pages advertise their
feeds in the head, as RSS autodiscovery and the HTML standard's `alternate` links say:
`<link rel="alternate" type="application/rss+xml" href="...">` (or `atom+xml`), as
YouTube channel pages, WordPress, Hugo and jekyll-feed write them.

Pages are untrusted. Only the first `MAX_PAGE_BYTES` are read, by lxml's HTML parser
feeding events to a collector (no tree is built, so memory stays flat and time linear);
at most `MAX_FEEDS` links are kept; only http(s) feeds come out of a web page.
"""

from __future__ import annotations

import codecs
import posixpath
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

# A YouTube channel page is 1-3 MB, nearly all of it inline script; its feed link can sit
# after most of it. The parser reads this much at most.
MAX_PAGE_BYTES = 4_000_000
MAX_FEEDS = 100
_CHUNK = 64 * 1024
FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml"})  # JSON Feed: not read
_WEB = ("http", "https")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head")
_SNIFF_BYTES = 64 * 1024
_ASCII_WHITESPACE = " \t\n\f\r"


def is_html_page(data: bytes) -> bool:
    """Whether a body is an HTML page (not a feed): it starts, after a byte order mark,
    white space, comments and an XML declaration, with `<!DOCTYPE html`, `<html` or
    `<head>`. No feed starts so."""
    head = data[:_SNIFF_BYTES].removeprefix(codecs.BOM_UTF8)
    for _ in range(50):  # a page may open with a few comments; never loop on many
        head = head.lstrip()
        if head.startswith(b"<!--"):
            end = head.find(b"-->", 4)
            head = head[end + 3 :] if end >= 0 else b""
        elif head.startswith(b"<?xml"):
            end = head.find(b"?>", 5)
            head = head[end + 2 :] if end >= 0 else b""
        else:
            break
    return head[:16].lower().startswith(_HTML_STARTS)


def advertised_feeds(html: bytes, page_url: str) -> list[str]:
    """The RSS and Atom feeds a page advertises, in document order, without repeats.

    `page_url` is where the page came from (after redirects): an http(s) URL, a file: URL
    or a local path. Each `href` is resolved against the page's first `<base href>`, else
    against `page_url`. A web page yields only http(s) URLs (never a local file); a local
    page may also name local files, resolved as a browser would (file: URLs stay URLs,
    paths stay paths). Never raises.
    """
    links, base = _links_and_base(html[:MAX_PAGE_BYTES])
    local = urlsplit(page_url).scheme.lower() not in _WEB
    allowed = ("file", *_WEB) if local else _WEB
    if base is not None:
        page_url = _join(page_url, base, allowed) or page_url
    feeds: list[str] = []
    for href in links:
        url = _join(page_url, href, allowed)
        if url and url not in feeds:
            feeds.append(url)
    return feeds[:MAX_FEEDS]


class _Collector:
    """lxml parser target: keeps the feed links' hrefs and the first base href."""

    def __init__(self) -> None:
        self.links: list[str] = []
        self.base: str | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if tag == "link" and len(self.links) < MAX_FEEDS * 2 and _is_feed_link(attrib):
            self.links.append(attrib.get("href", ""))
        elif tag == "base" and self.base is None and "href" in attrib:
            self.base = attrib["href"]

    def close(self) -> None:
        return None


def _is_feed_link(attrib: dict[str, str]) -> bool:
    """`rel` holds the token `alternate` (ASCII case-insensitive; a space-separated list)
    and `type` is RSS or Atom, ignoring case and parameters (`; charset=utf-8`)."""
    rel = attrib.get("rel", "").lower().split()
    kind = attrib.get("type", "").split(";", 1)[0].strip(_ASCII_WHITESPACE).lower()
    return "alternate" in rel and kind in FEED_TYPES


def _links_and_base(html: bytes) -> tuple[list[str], str | None]:
    from lxml import etree  # lazily: a poll that reads a feed never needs it here

    collector = _Collector()
    parser = etree.HTMLParser(
        target=collector, recover=True, no_network=True, remove_comments=True, huge_tree=False
    )
    try:
        for start in range(0, len(html), _CHUNK):
            parser.feed(html[start : start + _CHUNK])
        parser.close()
    except (etree.LxmlError, ValueError, UnicodeError):
        pass  # what was collected before the parser gave up still counts
    return collector.links, collector.base


def _join(base: str, href: str, allowed: tuple[str, ...]) -> str | None:
    """`href` resolved against `base`, if the result's scheme is allowed; no fragment."""
    href = href.strip(_ASCII_WHITESPACE)
    if not href:
        return None  # the page itself
    try:
        if urlsplit(base).scheme.lower() in (*_WEB, "file"):
            url = urldefrag(urljoin(base, href)).url
        else:
            url = _join_path(base, href)
        parts = urlsplit(url)
    except ValueError:  # e.g. a bad IPv6 literal
        return None
    if not url:
        return None
    if not parts.scheme:
        return url if "file" in allowed else None  # a local path
    scheme = parts.scheme.lower()
    if scheme not in allowed or (scheme in _WEB) != bool(parts.netloc):
        return None  # a web URL names a host; a file: URL names none (no file://host/)
    return url


def _join_path(page: str, href: str) -> str:
    """A reference resolved against a local path, as a path (a URL if it names a scheme)."""
    parts = urlsplit(href)
    if parts.scheme:
        return urldefrag(href).url
    if parts.netloc:
        return ""  # `//host/path`: no host to take it from
    path = unquote(parts.path)
    if not path:
        return ""
    directory = page if page.endswith("/") else posixpath.dirname(page)
    joined = posixpath.normpath(posixpath.join(directory, path))  # an absolute path stays
    return joined + "/" if path.endswith("/") and joined != "/" else joined
