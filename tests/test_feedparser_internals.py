"""What the watcher takes from feedparser beyond its documented API, checked by name: if
a new feedparser moves one of these, this file says which, before any talk comes out
wrong. (pyproject.toml pins feedparser to the minor version these were read from.)"""

from __future__ import annotations

import importlib
import io
import re
import sys
import time
import types

import feedparser
import pytest

from watcher.feed import parsed_entries
from watcher.skim import _as_feedparser_keeps

# (module, name, what the watcher uses it for)
INTERNALS = [
    ("feedparser.encodings", "convert_to_utf8", "encoding._utf8: feedparser's own decoding"),
    ("feedparser.encodings", "RE_XML_DECLARATION", "encoding: the declaration it rewrites"),
    ("feedparser.encodings", "RE_XML_PI_ENCODING", "encoding: the declared encoding it reads"),
    ("feedparser.encodings", "EBCDIC_MARKER", "encoding: the EBCDIC sniffing"),
    ("feedparser.sanitizer", "replace_doctype", "encoding: entity declarations refused"),
    ("feedparser.mixin", "_cp1252", "skim._as_feedparser_keeps: its cp1252 mending"),
    ("feedparser.datetimes.rfc822", "_parse_date_rfc822", "dates: what it reads right"),
    ("feedparser.datetimes.rfc822", "timezone_names", "dates: the zones it knows"),
    ("feedparser.datetimes", "_date_handlers", "dates: its handler comes first"),
    ("feedparser.api", "PREFERRED_XML_PARSERS", "feed: expat, never libxml2's driver"),
]


@pytest.mark.parametrize(("module", "name", "use"), INTERNALS, ids=[i[1] for i in INTERNALS])
def test_the_feedparser_internals_the_watcher_uses_are_there(module, name, use):
    found = getattr(importlib.import_module(module), name, None)
    assert found is not None, f"feedparser moved {module}.{name}, used by {use}"


def test_documents_are_read_with_expat_even_where_libxml2s_driver_is_installed(monkeypatch):
    """feedparser would take libxml2's SAX driver if it were installed: not what the skim
    is proven equivalent with; and where it is not, each parse searched the path for it."""
    asked: list[str] = []
    driver = types.ModuleType("drv_libxml2")
    driver.create_parser = lambda: asked.append("drv_libxml2") or pytest.fail("libxml2's driver")
    monkeypatch.setitem(sys.modules, "drv_libxml2", driver)
    document = b"<rss><channel><item><guid>a</guid><title>A</title></item></channel></rss>"
    read = parsed_entries(document, document, [])
    assert not isinstance(read, str) and len(read.entries) == 1
    assert asked == []


def test_feedparser_is_the_minor_version_the_internals_were_read_from():
    assert re.match(r"6\.0\.\d+$", feedparser.__version__), (
        f"feedparser {feedparser.__version__}: re-read the internals above, then the pin"
    )


@pytest.mark.parametrize(
    "text",
    ["  plain text  ", "caf\u00c3\u00a9 (UTF-8 read as Latin-1)", "cp1252 \x93quotes\x94", "日本"],
)
def test_feedparser_stores_a_text_element_as_the_skim_assumes(text):
    """skim swaps an item's content for a stand-in and puts back what feedparser's
    `pop()` would have stored: this is that assumption, on feedparser itself."""
    document = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>x</title><description>{text}</description></item></channel></rss>"
    ).encode()
    entry = feedparser.parse(io.BytesIO(document), sanitize_html=False).entries[0]
    assert entry["summary"] == _as_feedparser_keeps(text), "feedparser's pop() changed"


def test_registered_date_handlers_come_first():
    """dates.parse_date is registered with registerDateHandler, which puts it before
    feedparser's own: it relies on that order to read what feedparser misreads."""
    from feedparser import datetimes

    from watcher.dates import parse_date

    assert datetimes._date_handlers[0] is parse_date, "feedparser's date handlers moved"
    parsed = feedparser.parse(
        io.BytesIO(
            b'<rss version="2.0"><channel><item><title>x</title>'
            b"<pubDate>mer., 16 nov. 2022 00:38:15 +0100</pubDate></item></channel></rss>"
        )
    ).entries[0]["published_parsed"]
    assert time.strftime("%Y-%m-%dT%H:%M:%S", parsed) == "2022-11-15T23:38:15"
