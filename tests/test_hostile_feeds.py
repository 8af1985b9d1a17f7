"""Untrusted feed documents: whatever the bytes, `parse_feed` returns (never raises),
reads no file and fetches no URL, stays fast and small, and lets only http(s) URLs
into a talk.

Hand-made nasty feeds live in tests/fixtures/hostile/, each with the outcome it must
have in HOSTILE below; bigger shapes are generated here; hypothesis covers random
bytes and mutations of the seed feed.
"""

from __future__ import annotations

import io
import json
import re
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES, seed_bytes
from watcher.feed import ParsedFeed, parse_feed
from watcher.text import clean_text, first_sentences, shorten
from watcher.urls import safe_url

HOSTILE_DIR = FIXTURES / "hostile"
REFUSED = "not a feed: refused: it declares XML entities"
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
PASSWD = re.compile(r"root:.*:0:0:")
SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_sane(parsed: ParsedFeed) -> None:
    """What holds for any input: an error means no talks, messages are one clean line,
    URLs are absolute http(s), text has no control characters, the payload is JSON."""
    assert isinstance(parsed, ParsedFeed)
    assert parsed.error is None or parsed.talks == []
    for message in [parsed.error or "", *parsed.warnings]:
        assert "\n" not in message and not CONTROL.search(message), message
    for talk in parsed.talks:
        for url in (talk.url, talk.video_url, talk.thumbnail):
            assert url is None or (
                safe_url(url) == url and urlsplit(url).scheme in ("http", "https")
            )
        texts = [talk.guid, talk.title, talk.raw_title, talk.speaker or "", talk.event or ""]
        assert not any(CONTROL.search(text) for text in [*texts, *talk.first_lines])
        assert talk.published is None or ISO_UTC.fullmatch(talk.published)
        assert len(talk.first_lines) <= 3 and all(len(line) <= 300 for line in talk.first_lines)
        json.dumps(talk.to_dict(), ensure_ascii=False).encode("utf-8")  # no lone surrogates


def everything(parsed: ParsedFeed) -> str:
    return json.dumps([t.to_dict() for t in parsed.talks] + [parsed.title, parsed.warnings])


def rss(items: str, head: str = '<?xml version="1.0" encoding="utf-8"?>\n') -> bytes:
    channel = f"<channel><title>Generated</title>{items}</channel>"
    return f'{head}<rss version="2.0">{channel}</rss>'.encode()


def item(description: str, title: str = "A talk", guid: str = "g") -> str:
    fields = f"<title>{title}</title><guid>{guid}</guid><description>{description}</description>"
    return f"<item>{fields}</item>"


# --- the hand-made fixtures ----------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    what: str  # what must come out, in words
    talks: int
    error: str | None = None  # how the error starts
    warning: str | None = None  # how one warning starts
    check: Callable[[ParsedFeed], object] | None = None  # anything more; a falsy result fails


def titles(parsed: ParsedFeed) -> list[str]:
    return [talk.raw_title for talk in parsed.talks]


def by_guid(parsed: ParsedFeed) -> dict:
    return {talk.guid: talk for talk in parsed.talks}


HOSTILE = {
    "xxe-file.xml": Outcome("entity from file:///etc/passwd: refused, nothing read", 0, REFUSED),
    "xxe-file-one-line.xml": Outcome(
        "the same on one line (feedparser's regexes miss it)", 0, REFUSED
    ),
    "xxe-http.xml": Outcome("entity from http://127.0.0.1: refused, never fetched", 0, REFUSED),
    "xxe-parameter-entity.xml": Outcome(
        "external parameter entity: refused, never fetched", 0, REFUSED
    ),
    "billion-laughs.xml": Outcome("10^9 lols: refused before any expansion", 0, REFUSED),
    "billion-laughs-one-line.xml": Outcome("the same on one line", 0, REFUSED),
    "entity-lines-without-doctype-subset.xml": Outcome(
        "ENTITY lines feedparser would move into a DOCTYPE of its own: refused", 0, REFUSED
    ),
    "external-dtd.xml": Outcome(
        "a DOCTYPE naming an external DTD and declaring nothing: read, DTD never fetched",
        1,
        check=lambda p: titles(p) == ["A talk | A speaker | An event"],
    ),
    "xinclude.xml": Outcome(
        "XInclude and an xml-stylesheet PI are inert text: nothing read or fetched",
        1,
        check=lambda p: "passwd" in p.talks[0].title and not PASSWD.search(everything(p)),
    ),
    "nul-bytes.xml": Outcome(
        "NUL bytes: 1 talk, title and text without NUL",
        1,
        warning="malformed feed",
        check=lambda p: (
            (p.talks[0].title, p.talks[0].first_lines) == ("Talk with NUL", ["Beforeafter."])
        ),
    ),
    "control-characters.xml": Outcome(
        "ESC, BEL, BS, FF, SOH: 1 talk, each a space in the title, the text still read",
        1,
        warning="malformed feed",
        check=lambda p: (
            (p.talks[0].raw_title, p.talks[0].first_lines)
            == ("Red [31m alert | Bell Speaker", ["Tab here.", "Form feed."])
        ),
    ),
    "declared-utf8-is-latin1.xml": Outcome(
        "Latin-1 bytes declared UTF-8: read as windows-1252, with a warning",
        1,
        warning="malformed feed: document declared as utf-8, but parsed as windows-1252",
        check=lambda p: titles(p) == ["Café talk"],
    ),
    "utf8-one-bad-byte.xml": Outcome(
        "UTF-8 with one cp1252 byte (It\\x92s): read as UTF-8, that byte U+FFFD, a warning",
        3,
        warning="1 byte that is not UTF-8 replaced",
        check=lambda p: (
            titles(p)[0].startswith("Résumé des travaux — café …")
            and titles(p)[2] == "It\ufffds a talk | Renée | Bug Bash"
        ),
    ),
    "undeclared-latin1.xml": Outcome(
        "undeclared Latin-1, accents throughout (none a UTF-8 sequence): windows-1252",
        2,
        warning="malformed feed: document declared as utf-8, but parsed as windows-1252",
        check=lambda p: titles(p) == ["Économie de l'été | Hélène", "Café à Genève | Jérôme"],
    ),
    "utf16le-no-bom-newline-first.xml": Outcome(
        "UTF-16LE without a BOM, a line break before <?xml: read, with a warning",
        1,
        warning="UTF-16 text without a byte-order mark: read as utf-16-le",
        check=lambda p: titles(p) == ["Ünïcödé talk | Zoë"],
    ),
    "utf16be-no-bom-cut-in-a-character.xml": Outcome(
        "UTF-16BE without a BOM, cut inside its last character: refused, named",
        0,
        "not a feed: UTF-16 text without a byte-order mark that does not decode as utf-16-be",
    ),
    "gzip-compressed.xml.gz": Outcome(
        "a gzip-compressed feed handed over as it is", 0, "not a feed: a gzip-compressed file"
    ),
    "utf16-with-bom.xml": Outcome(
        "UTF-16 with a BOM: read", 1, check=lambda p: titles(p) == ["Ünïcödé talk | Zoë"]
    ),
    "mixed-encodings.xml": Outcome(
        "one UTF-8 and one Latin-1 é: a tie, so windows-1252 as before (loses nothing)",
        1,
        warning="malformed feed: document declared as utf-8",
    ),
    "utf7-lone-surrogate.xml": Outcome(
        "UTF-7 that decodes to a lone surrogate (feedparser raises): read as UTF-8",
        1,
        warning="unusable encoding (",
        check=lambda p: titles(p) == ["+2AA-"],
    ),
    "punycode-declared.xml": Outcome(
        "punycode, which Python decodes in quadratic time: never used, read as UTF-8",
        1,
        warning="unusable encoding (punycode is too slow to decode): read as utf-8",
        check=lambda p: titles(p) == ["Puny talk"],
    ),
    "char-refs.xml": Outcome(
        "references past U+10FFFF or to surrogates (feedparser raises): U+FFFD instead",
        1,
        warning="malformed feed",
        check=lambda p: titles(p) == ["Refs \ufffd \ufffd \ufffd A end"],
    ),
    "html-char-ref-5000-digits.xml": Outcome(
        "a 5,000-digit &#...; in the HTML (feedparser's HTML pass, now off, raised on it)",
        1,
        check=lambda p: p.talks[0].first_lines == ["See \ufffd here."],
    ),
    "missing-fields.xml": Outcome(
        "items without link, guid or date: a titled one is a talk with a sha256 guid and "
        "nulls; one with no title, link or video is no talk, and skipped with a warning",
        1,
        warning="item 1 skipped: no title, link or video",
        check=lambda p: (
            all(
                t.guid.startswith("sha256:") and (t.url, t.published) == (None, None)
                for t in p.talks
            )
            and titles(p) == ["Only a title"]
        ),
    ),
    "odd-dates.xml": Outcome(
        "year 9999 kept; words, a huge year, an empty date: published is null",
        5,
        check=lambda p: (
            [by_guid(p)[g].published for g in ("future", "words", "huge-year", "empty")]
            == ["9999-06-01T10:00:00Z", None, None, None]
        ),
    ),
    "undated-and-localised-dates.xml": Outcome(
        "Hugo's year 1: null; French and German names, no space after the comma, zone "
        "names: read (tests/test_dates.py checks each)",
        15,
        check=lambda p: (
            by_guid(p)["hugo"].published is None
            and all(t.published for t in p.talks if t.guid != "hugo")
        ),
    ),
    "hostile-urls.xml": Outcome(
        "javascript:, data:, file:, vbscript:, relative, protocol-relative, host-less, "
        "quoted links and slide images: all null; the one https talk keeps both, and a raw "
        "space in an image URL is percent-encoded",
        11,
        check=lambda p: (
            [(t.url, t.thumbnail) for t in p.talks if t.guid not in ("good", "bad-quotes")]
            == [(None, None)] * 9
            and (by_guid(p)["bad-quotes"].url, by_guid(p)["bad-quotes"].thumbnail)
            == (None, "https://ok.example/a%20b.png")
            and (by_guid(p)["good"].url, by_guid(p)["good"].thumbnail)
            == ("https://talks.example.org/good", "https://talks.example.org/good/slide_000.png")
        ),
    ),
    "xml-base-file.xml": Outcome(
        'xml:base="file:///etc/" resolves a relative link to file:///etc/passwd: null',
        1,
        check=lambda p: p.talks[0].url is None,
    ),
    "not-well-formed.xml": Outcome(
        "unclosed and mismatched tags: the 2 items read, with a warning (a broken document, "
        "not a truncated one: no degraded poll); the third, of which the loose parser kept "
        "nothing, is skipped and said so",
        2,
        warning="malformed feed",
        check=lambda p: not p.degraded and "item 3 skipped: no title, link or video" in p.warnings,
    ),
    "truncated.xml": Outcome(
        "cut off inside the last item: the whole one read, the cut one skipped until it is "
        "whole, and the poll degraded",
        1,
        warning="malformed feed",
        check=lambda p: (
            [t.guid for t in p.talks] == ["whole"]
            and p.degraded
            and "item 2 skipped: the document ends inside it" in " ".join(p.warnings)
        ),
    ),
    "html-page.html": Outcome("an HTML page", 0, "not a feed: got an HTML page"),
    "json-body.json": Outcome("JSON", 0, "not a feed: got JSON"),
    "empty.xml": Outcome("nothing", 0, "not a feed: empty body"),
    "whitespace-only.xml": Outcome("only white space", 0, "not a feed: empty body"),
}


def test_every_hostile_fixture_has_a_stated_outcome():
    assert sorted(p.name for p in HOSTILE_DIR.iterdir()) == sorted(HOSTILE)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_fixture(name, httpserver):
    """Entities and DTDs point at this test's server: it must see no request."""
    outcome = HOSTILE[name]
    data = (HOSTILE_DIR / name).read_bytes().replace(b"__PORT__", str(httpserver.port).encode())
    httpserver.expect_request(re.compile(".*")).respond_with_data("LEAKED-OVER-HTTP")

    parsed = parse_feed(data)

    assert_sane(parsed)
    assert len(parsed.talks) == outcome.talks, outcome.what
    if outcome.error:
        assert parsed.error and parsed.error.startswith(outcome.error), outcome.what
    else:
        assert parsed.error is None, outcome.what
    if outcome.warning:
        assert any(w.startswith(outcome.warning) for w in parsed.warnings), parsed.warnings
    assert outcome.check is None or outcome.check(parsed), outcome.what
    assert httpserver.log == []
    assert "LEAKED" not in everything(parsed) and not PASSWD.search(everything(parsed))


# --- XML attacks, generated -----------------------------------------------------------


@pytest.mark.parametrize("declared", ["punycode", " IDNA\t", "-_punycode_-"])
@pytest.mark.parametrize("codec", ["utf-8", "utf-16", "utf-32-be", "cp037"])
def test_codecs_python_decodes_in_quadratic_time_are_never_used(declared, codec):
    """Spelt any way codecs.lookup() accepts, in any encoding feedparser sniffs."""
    head = f'<?xml version="1.0" encoding="{declared}"?>\n'
    parsed = parse_feed(rss(item("x"), head).decode().encode(codec))
    assert "is too slow to decode): read as " in parsed.warnings[0]
    assert [t.title for t in parsed.talks] == ["A talk"]


def test_an_external_entity_naming_a_local_file_is_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    for head in (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY x SYSTEM "{secret.as_uri()}">\n]>\n',
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "{secret}">]>',
    ):
        parsed = parse_feed(rss(item("&x;", title="&x;"), head))
        assert parsed.error.startswith(REFUSED)
        assert "TOP-SECRET-MARKER" not in everything(parsed)


@pytest.mark.parametrize(
    "name", ["xxe-file.xml", "xxe-file-one-line.xml", "xxe-http.xml", "xxe-parameter-entity.xml"]
)
def test_feedparser_alone_does_not_resolve_external_entities_either(name, httpserver):
    """Defence in depth: were the refusal removed, feedparser's expat still loads nothing."""
    data = (HOSTILE_DIR / name).read_bytes().replace(b"__PORT__", str(httpserver.port).encode())
    httpserver.expect_request(re.compile(".*")).respond_with_data("LEAKED-OVER-HTTP")
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False)
    text = json.dumps(parsed.entries, default=str)
    assert httpserver.log == [] and "LEAKED" not in text and not PASSWD.search(text)


def test_a_quadratic_entity_blowup_is_refused_at_once():
    """A 100 KB entity used 20,000 times (2 GB): feedparser took 53 s and 6 GB on it."""
    head = f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "{"A" * 100_000}">\n]>\n'
    data = rss(item("&a;" * 20_000), head)
    tracemalloc.start()
    started = time.monotonic()
    try:
        parsed = parse_feed(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed.error.startswith(REFUSED)
    assert time.monotonic() - started < 1 and peak < 10 * len(data)


# --- big and deep shapes ------------------------------------------------------------------


def parse_within(data: bytes, seconds: float) -> ParsedFeed:
    started = time.monotonic()
    parsed = parse_feed(data)
    assert time.monotonic() - started < seconds
    assert_sane(parsed)
    return parsed


def test_thousands_of_items_are_all_read():
    data = rss("".join(item(f"Talk {n}.", title=f"Talk {n}", guid=f"g{n}") for n in range(5000)))
    parsed = parse_within(data, 20)
    assert len(parsed.talks) == 5000 and parsed.talks[-1].title == "Talk 4999"


def test_a_single_10_mb_item_is_read():
    description = "&lt;p&gt;This sentence is part of a very long transcript.&lt;/p&gt; " * 140_000
    parsed = parse_within(rss(item(description)), 20)
    assert len(parsed.talks) == 1
    assert parsed.talks[0].first_lines[0].startswith("This sentence is part of")


def test_a_10_mb_description_of_short_sentences_is_not_split_whole():
    """Three lines are wanted: cleaning and splitting all 3.3 million took 250 MB."""
    data = rss(item("A. " * 3_300_000))
    tracemalloc.start()
    try:
        parsed = parse_within(data, 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed.talks[0].first_lines == ["A.", "A.", "A."]
    assert peak < 10 * len(data), f"peak {peak / 1e6:.0f} MB"


def test_100k_nested_divs_are_read():
    description = "<![CDATA[" + "<div>" * 100_000 + "Deep." + "</div>" * 100_000 + "]]>"
    parsed = parse_within(rss(item(description)), 20)
    assert len(parsed.talks) == 1 and parsed.talks[0].title == "A talk"


SLOW_BEFORE = {
    # each took minutes before (libxml2 compares every attribute with all before it; the
    # regexes backtracked over digit runs and watch?-queries; nested text was read per level)
    "100k attributes in one tag": "<![CDATA[<a "
    + " ".join(f'a{n}="x"' for n in range(100_000))
    + ">x</a>]]>",
    "100k attributes with '>' in values": "<![CDATA[<a "
    + " ".join(f'a{n}=">"' for n in range(100_000))
    + ">x</a>]]>",
    "a 200,000-digit number": "<![CDATA[<p>" + "1" * 200_000 + "</p>]]>",
    "youtube.com/watch? 40,000 times": "youtube.com/watch?" * 40_000,
    "tables nested 80 deep over 2 MB": "<![CDATA[<h2>Slide 1 — 0:01</h2>"
    + "<table><tr><td><h2>Slide 1 — 0:01</h2>" * 80
    + "word " * 400_000
    + "]]>",
    "em nested 250 deep over 4 MB": "<![CDATA[<p>" + "<em>" * 250 + "word " * 800_000 + "]]>",
    "td nested 100 deep through divs over 4 MB": "<![CDATA[<h2>Slide 1 — 0:01</h2><table><tr>"
    + "<td><div>" * 100
    + "word " * 800_000
    + "]]>",
}


@pytest.mark.parametrize("shape", list(SLOW_BEFORE))
def test_shapes_that_were_quadratic_are_read_quickly(shape):
    parsed = parse_within(rss(item(SLOW_BEFORE[shape])), 10)
    assert len(parsed.talks) == 1


def test_a_tag_with_too_many_attributes_becomes_text():
    crowded = "<img " + " ".join(f"a{n}" for n in range(65)) + ' src="https://x.example/1.png">'
    fine = "<img " + " ".join(f"a{n}" for n in range(60)) + ' src="https://x.example/1.png">'
    description = (
        "<![CDATA[<h2>Slide 1 — 0:05</h2><table><tr><td>{}</td><td>Hello.</td></tr></table>]]>"
    )
    talks = [parse_feed(rss(item(description.format(tag)))).talks[0] for tag in (crowded, fine)]
    assert [t.thumbnail for t in talks] == [None, "https://x.example/1.png"]


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://talks.example.org/a?b=c&d=e#f", "https://talks.example.org/a?b=c&d=e#f"),
        ("HTTP://TALKS.EXAMPLE.ORG/", "HTTP://TALKS.EXAMPLE.ORG/"),
        ("  https://talks.example.org/padded  ", "https://talks.example.org/padded"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("\x01javascript:alert(1)", None),
        ("java\tscript:alert(1)", None),
        ("data:text/html;base64,PHNjcmlwdD4=", None),
        ("file:///etc/passwd", None),
        ("vbscript:msgbox(1)", None),
        ("/relative/path", None),
        ("relative.png", None),
        ("//evil.example/protocol-relative", None),
        ("http:no-host", None),
        ("https://ok.example/\x00nul", None),
        ("https://ok.example/new\nline", None),
        ('https://ok.example/"onerror="x', None),
        ("https://ok.example/<script>", None),
        ("http://[::1", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_only_absolute_http_urls_are_safe(value, expected):
    assert safe_url(value) == expected


@settings(SETTINGS, max_examples=300)
@given(st.text())
def test_safe_url_lets_through_only_clean_http_urls(value):
    url = safe_url(value)
    if url is not None:
        parts = urlsplit(url)
        assert parts.scheme.lower() in ("http", "https") and parts.netloc
        assert not any(ch.isspace() or ch in "<>\"'" for ch in url) and not CONTROL.search(url)


# --- property-based: never raises, whatever the bytes ------------------------------------------

SEED = seed_bytes()
NASTY = [
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\xc3",
    "é".encode("latin-1"),
    b"]]>",
    b"<![CDATA[",
    b"</item>",
    b"<item>",
    b"<title>",
    b"<!--",
    b"&#99999999999;",
    b"&#xD800;",
    b"&amp;#" + b"9" * 5000 + b";",
    b"&nbsp;&unknown;&",
    b'<!DOCTYPE rss [<!ENTITY a "aaaa">]>',
    b'\n<!ENTITY b SYSTEM "file:///etc/passwd">\n',
    b'<?xml version="1.0" encoding="utf-16"?>',
    b'<?xml version="1.0" encoding="punycode"?>',
    b"<div>" * 300,
    b"<a " + b" ".join(b"a%d" % n for n in range(300)) + b">",
    b"youtube.com/watch?" * 50,
    b"1" * 500,
    b"javascript:alert(1)",
    b"<h2>Slide 1 \xe2\x80\x94 0:01</h2>",
]


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    """The seed feed after 1-3 edits: a byte flip, a truncation, a deletion, a splice of
    another part of the seed, random bytes, or a nasty snippet, each at a random place."""
    data = SEED
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["flip", "truncate", "delete", "splice", "bytes", "nasty"]))
        if edit == "flip" and at < len(data):
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
        elif edit == "truncate":
            data = data[:at]
        elif edit == "delete":
            data = data[:at] + data[draw(st.integers(at, min(len(data), at + 5000))) :]
        elif edit == "splice":
            start = draw(st.integers(0, len(SEED)))
            data = data[:at] + SEED[start : draw(st.integers(start, len(SEED)))] + data[at:]
        elif edit == "bytes":
            data = data[:at] + draw(st.binary(max_size=64)) + data[at:]
        elif edit == "nasty":
            data = data[:at] + draw(st.sampled_from(NASTY)) + data[at:]
    return data


@settings(SETTINGS, max_examples=300)
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(data):
    assert_sane(parse_feed(data))


@settings(SETTINGS, max_examples=120)
@given(mutated_seed())
def test_mutations_of_the_seed_feed_never_raise(data):
    assert_sane(parse_feed(data))


@settings(SETTINGS, max_examples=150)
@given(
    st.text(max_size=200),
    st.text(max_size=200),
    st.text(max_size=2000),
    st.sampled_from(["raw", "escaped", "cdata"]),
)
def test_any_text_in_any_field_never_raises(title, link, description, quoting):
    def put(text: str) -> str:
        if quoting == "escaped":
            return text.replace("&", "&amp;").replace("<", "&lt;")
        return f"<![CDATA[{text}]]>" if quoting == "cdata" else text

    doc = rss(
        f"<item><title>{put(title)}</title><link>{put(link)}</link>"
        f"<description>{put(description)}</description></item>"
    )
    assert_sane(parse_feed(doc))


def plain_first_sentences(text: str) -> list[str]:
    """first_sentences() as it was: clean the whole text, split it all, keep three."""
    sentences = [s for s in re.split(r"(?<=[.!?…])\s+", clean_text(text)) if s]
    return [shorten(s) for s in sentences[:3]]


@settings(SETTINGS, max_examples=500)
@given(
    st.one_of(
        st.text(),
        st.text(alphabet=st.sampled_from(list("ab .!?…,-\t\n\x00\x01\x1c\x7f\x85\u3000\ud800"))),
    ),
    st.integers(1, 400),
)
def test_lazy_sentences_and_cuts_match_cleaning_everything(text, limit):
    assert first_sentences(text) == plain_first_sentences(text)
    assert shorten(text, limit) == shorten(clean_text(text), limit)


def test_the_seed_feed_still_parses_cleanly():
    parsed = parse_feed(Path(FIXTURES / "feeds" / "talks-feed.xml").read_bytes())
    assert parsed.error is None and parsed.warnings == [] and len(parsed.talks) == 3
