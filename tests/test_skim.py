"""The fast read of a feed (watcher/skim.py) against the full parse (watcher/feed.py).

`read_feed(data).identities` must carry the full parse's guid, url, video_id, published
and raw_title, talk for talk and in order, and `talks(guids)` must return exactly the
full parse's talks for those GUIDs, in document order: over every fixture, a big feed
built here, random RSS 2.0 and Atom documents, and hostile documents. Where the fast
path is taken, the tests check that it was (`skimmed`), so that they cannot pass with it
turned off.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
import time
from html import escape as html_escape
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import watcher.skim
from tests.conftest import FIXTURES, SEED_FEED
from watcher.feed import Entries, parse_feed
from watcher.skim import FeedRead, read_feed
from watcher.talk import Talk

FEEDS = sorted(p for p in (FIXTURES / "feeds").iterdir() if not p.name.endswith(".expected.json"))
HOSTILE = sorted((FIXTURES / "hostile").iterdir())
FIXTURE_FILES = {f"{p.parent.name}/{p.name}": p for p in FEEDS + HOSTILE}
SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def identity(talk: Talk) -> tuple:
    return (talk.guid, talk.url, talk.video_id, talk.published, talk.raw_title)


def assert_reads_as_full(
    data: bytes, subsets: list[set[str]] | None = None, alone: bool = True
) -> FeedRead:
    """read_feed(data) against parse_feed(data): the same error, the identities' fields,
    talks(all), each talk alone (if `alone`), and each of `subsets` (default: every other
    talk, both ways), each talks() call on a fresh read (it is one-shot)."""
    full = parse_feed(data)
    read = read_feed(data)
    assert read.error == full.error
    assert [identity(t) for t in read.identities] == [identity(t) for t in full.talks]
    guids = [talk.guid for talk in full.talks]
    assert read.talks(set(guids)) == full.talks
    for talk in full.talks if alone else []:
        assert read_feed(data).talks({talk.guid}) == [talk], talk.guid
    for subset in [set(guids[::2]), set(guids[1::2])] if subsets is None else subsets:
        expected = [talk for talk in full.talks if talk.guid in subset]
        assert read_feed(data).talks(subset) == expected, sorted(subset)
    return read


# --- every fixture ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FIXTURE_FILES))
def test_every_fixture_reads_as_the_full_parse(name):
    assert_reads_as_full(FIXTURE_FILES[name].read_bytes())


@pytest.mark.parametrize("path", FEEDS, ids=lambda p: p.name)
def test_the_feed_fixtures_take_the_fast_path(path):
    read = read_feed(path.read_bytes())
    assert read.skimmed is True
    assert read.error is None and read.identities


def test_guids_not_in_the_feed_give_no_talks():
    data = SEED_FEED.read_bytes()
    assert read_feed(data).talks({"no such guid"}) == []
    assert read_feed(data).talks(set()) == []


# --- a big feed -------------------------------------------------------------------------


def replicated_seed(copies: int) -> bytes:
    """The seed feed with its items repeated `copies` times, each copy with its own video
    id (and so its own GUID and link, which hold the id lower-cased)."""
    text = SEED_FEED.read_text(encoding="utf-8")
    start, end = text.index("<item>"), text.rindex("</item>") + len("</item>")
    items = re.findall(r"<item>.*?</item>", text[start:end], flags=re.S)
    made = []
    for copy in range(copies):
        for item in items:
            old = re.search(r"embed/([A-Za-z0-9_-]{11})", item).group(1)
            new = f"C{copy:02d}{old[3:]}"
            made.append(item.replace(old, new).replace(old.lower(), new.lower()))
    return (text[:start] + "".join(made) + text[end:]).encode()


def test_a_big_feed_takes_the_fast_path_and_reads_as_the_full_parse(monkeypatch):
    data = replicated_seed(20)
    seen: list[int] = []
    real = watcher.skim.parsed_entries

    def spy(fetched: bytes, document: bytes, *rest) -> Entries | str:
        seen.append(len(document))
        return real(fetched, document, *rest)

    monkeypatch.setattr(watcher.skim, "parsed_entries", spy)
    read = read_feed(data)
    assert read.skimmed is True
    assert len(seen) == 1 and seen[0] < len(data) / 10, "feedparser did not get a light copy"
    monkeypatch.undo()

    full = parse_feed(data)
    assert len(full.talks) == 60
    assert len({t.guid for t in full.talks}) == len({t.video_id for t in full.talks}) == 60
    guids = [t.guid for t in full.talks]
    subsets = [set(guids[::2]), set(guids[1::7]), {guids[0]}, {guids[31]}, {guids[-1]}]
    read = assert_reads_as_full(data, subsets, alone=False)
    assert read.skimmed is True


# --- random RSS 2.0 and Atom documents ----------------------------------------------------

IDS = ["dQw4w9WgXcQ", "toO9j5NKg0c", "AbC_dEf-GhI", "zz9-ZZ9_zz9"]
YOUTUBE_FORMS = [
    "https://www.youtube.com/embed/{}",
    "https://www.youtube-nocookie.com/embed/{}?rel=0",
    "https://www.youtube.com/watch?v={}",
    "https://www.youtube.com/watch?v={}&t=2s",
    "https://www.youtube.com/watch?feature=share&v={}",
    "https://youtu.be/{}",
    "https://youtu.be/{}?t=9",
    "https://www.youtube.com/shorts/{}",
    "https://www.youtube.com/live/{}?si=x",
    "https://yewtu.be/watch?v={}",
    "//www.youtube.com/embed/{}",
    "embed/{}",  # relative
    "watch?v={}",
    "{}",
    "https://blog.example.org/youtube/{}/slide_000.png",
]
NOT_YOUTUBE = [
    "https://vimeo.com/76979871",
    "https://player.vimeo.com/video/123456789?h=ab",
    "https://media.example.org/Episode 12.mp3",
    "https://www.youtube.com/user/somebody",
    "https://youtube.com/watch?v=tooShort",
    "https://talks.example.org/t/1",
    "talks/2/",
    "../up/",
    "/rooted/path",
    "mailto:x@example.org",
    "javascript:alert(1)",
    "https://日本.example/ü?q=é",
]
BASES = [
    "https://blog.example.org/posts/",
    "https://blog.example.org/a/b",
    "https://www.youtube.com/",
    "https://youtu.be/",
    "sub/dir/",
    "",
]
DATES = [
    "Mon, 08 Jun 2026 00:00:00 +0000",
    "Sun, 01 Feb 2026 08:00:00 GMT",
    "2026-03-02T09:30:00+02:00",
    "2026-03-02",
    "Mon, 31 Feb 2026 25:61:00 +9900",
    "not a date",
    "9999-12-31T23:59:59Z",
    "0000-00-00T00:00:00Z",
    "1969-12-31T23:59:59-23:59",
    "",
]
# An undefined entity (&nbsp;) where a DOCTYPE lets lxml read it, else a space: feedparser
# reads it one way or another by whether the DOCTYPE begins a line (it drops it then).
NBSP = "⟨nbsp⟩"
PROLOGS = [
    "",
    "<!-- a comment -->",
    '<!DOCTYPE {root} SYSTEM "http://feeds.example.org/{root}.dtd">',
    '\n<!DOCTYPE {root} SYSTEM "http://feeds.example.org/{root}.dtd">',
    '<!DOCTYPE {root} PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
    ' "http://my.netscape.com/publish/formats/rss-0.91.dtd">',
]
TITLE_WORDS = [
    NBSP,
    "Talk",
    "A & B",
    "<b>bold</b>",
    "Ünïcödé",
    "日本語",
    "🎤",
    " | ",
    "x\u00a0y",
    "\u2028",
]

words = st.lists(
    st.sampled_from(
        [*"ab cdéü日本🎤.!?,-&<>\"'\u00a0\u2028\x85\x96", "youtube", "youtu.be/", NBSP]
    ),
    max_size=24,
).map("".join)


@st.composite
def youtube_url(draw) -> str:
    form = draw(st.sampled_from(YOUTUBE_FORMS + NOT_YOUTUBE))
    return form.format(draw(st.sampled_from(IDS))) if "{}" in form else form


@st.composite
def html_piece(draw) -> str:
    """One piece of well-formed XHTML (so that it can also be put in a feed unescaped)."""
    url = quoteattr(draw(youtube_url()))
    text = html_escape(draw(words))
    return draw(
        st.sampled_from(
            [
                text,
                f"<p>{text}</p>",
                f'<iframe width="720" src={url} frameborder="0"></iframe>',
                f"<a href={url}>{text}</a>",
                f'<img src={url} alt="a slide"/>',
                f"<!-- {html_escape(draw(youtube_url()))} -->",
                f"<p>{html_escape(draw(youtube_url()))} {text}</p>",
                "<br/>",
                "<em>12 slides extracted.</em>",
                f"<h2>Slide 1 — 0:04</h2><table><tr><td><img src={url}/></td>"
                f"<td>{text} First words.</td></tr></table>",
            ]
        )
    )


html = st.lists(html_piece(), max_size=5).map("".join)


@st.composite
def base_attribute(draw) -> str:
    if draw(st.integers(0, 5)) != 0:
        return ""
    return f" xml:base={quoteattr(draw(st.sampled_from(BASES)))}"


@st.composite
def rss_content(draw) -> str:
    markup = draw(html)
    form = draw(st.sampled_from(["escaped", "cdata", "inline", "encoded", "body", "plain"]))
    base = draw(base_attribute())
    if form == "escaped":
        return f"<description{base}>{escape(markup)}</description>"
    if form == "cdata":
        return f"<description{base}><![CDATA[{markup}]]></description>"
    if form == "inline":  # XHTML as child elements of the description
        return f"<description{base}>{markup}</description>"
    if form == "encoded":
        return f"<content:encoded{base}><![CDATA[{markup}]]></content:encoded>"
    if form == "body":
        return f'<body xmlns="http://www.w3.org/1999/xhtml"{base}>{markup}</body>'
    return f"<description{base}>{escape(draw(words) + ' ' + draw(youtube_url()))}</description>"


@st.composite
def rss_item(draw) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append(
            f"<title>{escape(''.join(draw(st.lists(st.sampled_from(TITLE_WORDS)))))}</title>"
        )
    if draw(st.booleans()):
        permalink = draw(st.sampled_from(["", ' isPermaLink="true"', ' isPermaLink="false"']))
        guid = draw(st.sampled_from(["g1", "g2", "https://talks.example.org/g", "tag:x,2026:1"]))
        parts.append(f"<guid{permalink}>{escape(guid)}</guid>")
    if draw(st.booleans()):
        parts.append(f"<link>{escape(draw(youtube_url()))}</link>")
    if draw(st.booleans()):
        parts.append(f"<pubDate>{draw(st.sampled_from(DATES))}</pubDate>")
    parts += draw(st.lists(rss_content(), max_size=2))
    parts += draw(st.lists(media_element(), max_size=2))
    if draw(st.integers(0, 19)) == 0:  # a name expat refuses, lxml not: feedparser reads loosely
        parts.append("<x\u0870/>")
    parts = draw(st.permutations(parts))
    # a base URI set in the item stays in force after it in feedparser, and so does a namespace
    # declared on it (see rss_document): talks() must not drop such an item before one it reads
    return f"<item{draw(base_attribute())}>{''.join(parts)}</item>"


@st.composite
def media_element(draw) -> str:
    """What podcasts and YouTube put beside the content: a file, a picture, a video id."""
    url = quoteattr(draw(youtube_url()))
    kind = quoteattr(draw(st.sampled_from(["audio/mpeg", "video/mp4", "image/jpeg", ""])))
    return draw(
        st.sampled_from(
            [
                f'<enclosure url={url} length="1" type={kind}/>',
                f"<media:content url={url} type={kind}/>",
                f"<media:thumbnail url={url}/>",
                f"<yt:videoId>{draw(st.sampled_from([*IDS, 'bad']))}</yt:videoId>",
                f"<media:group><media:description>{escape(draw(words))}</media:description>"
                "</media:group>",
            ]
        )
    )


@st.composite
def rss_document(draw) -> bytes:
    declaration = (
        ' xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:media="http://search.yahoo.com/mrss/"'
        ' xmlns:yt="http://www.youtube.com/xml/schemas/2015"'
    )
    on_root = draw(st.booleans())  # else on each item that uses it (or, at random, not)
    items = []
    for item in draw(st.lists(rss_item(), max_size=5)):
        uses = ("content:encoded", "media:", "yt:")
        if not on_root and (any(name in item for name in uses) or draw(st.booleans())):
            item = item.replace("<item", "<item" + declaration, 1)
        items.append(item)
    channel = f"<channel{draw(base_attribute())}><title>Random</title>{''.join(items)}</channel>"
    namespaces = declaration if on_root else ""
    return finished(draw, "rss", f'<rss version="2.0"{namespaces}>{channel}</rss>')


@st.composite
def atom_content(draw) -> str:
    tag = draw(st.sampled_from(["summary", "content"]))
    markup = draw(html)
    kind = draw(
        st.sampled_from(
            ["html", "text/html", "HTML", "text", "none", "xhtml", "base64", "octet-stream"]
        )
    )
    base = draw(base_attribute())
    if kind == "xhtml":
        body = f'<div xmlns="http://www.w3.org/1999/xhtml">{markup}</div>'
        return f'<{tag} type="xhtml"{base}>{body}</{tag}>'
    if kind in ("base64", "octet-stream"):
        encoded = base64.b64encode(markup.encode()).decode()
        attribute = 'mode="base64"' if kind == "base64" else 'type="application/octet-stream"'
        return f"<{tag} {attribute}{base}>{encoded}</{tag}>"
    if kind in ("text", "none"):
        text = escape(draw(words) + " " + draw(youtube_url()))
        return f"<{tag}{' type=' + quoteattr(kind) if kind == 'text' else ''}{base}>{text}</{tag}>"
    return f"<{tag} type={quoteattr(kind)}{base}>{escape(markup)}</{tag}>"


@st.composite
def atom_entry(draw) -> str:
    parts = []
    if draw(st.booleans()):
        parts.append(
            f"<title>{escape(''.join(draw(st.lists(st.sampled_from(TITLE_WORDS)))))}</title>"
        )
    if draw(st.booleans()):
        parts.append(
            f"<id>{draw(st.sampled_from(['urn:uuid:1', 'urn:uuid:2', 'tag:x,2026:3']))}</id>"
        )
    for _ in range(draw(st.integers(0, 3))):
        rel = draw(st.sampled_from(["", ' rel="alternate"', ' rel="related"', ' rel="enclosure"']))
        parts.append(f"<link{rel} href={quoteattr(draw(youtube_url()))}/>")
    for tag in ("published", "updated"):
        if draw(st.booleans()):
            parts.append(f"<{tag}>{draw(st.sampled_from(DATES))}</{tag}>")
    parts += draw(st.lists(atom_content(), max_size=2))
    if draw(st.integers(0, 19)) == 0:
        parts.append("<x\u0870/>")
    parts = draw(st.permutations(parts))
    return f"<entry{draw(base_attribute())}>{''.join(parts)}</entry>"


@st.composite
def atom_document(draw) -> bytes:
    entries = "".join(draw(st.lists(atom_entry(), max_size=5)))
    feed = (
        f'<feed xmlns="http://www.w3.org/2005/Atom"{draw(base_attribute())}>'
        f"<title>Random</title><id>urn:feed</id>{entries}</feed>"
    )
    return finished(draw, "feed", feed)


def finished(draw, root: str, body: str) -> bytes:
    """The document: a declaration, a prolog (a DOCTYPE on its line, or not), the body."""
    prolog = draw(st.sampled_from(PROLOGS)).format(root=root)
    body = body.replace(NBSP, "&nbsp;" if "DOCTYPE" in prolog else " ")
    return f'<?xml version="1.0" encoding="utf-8"?>{prolog}\n{body}'.encode()


def assert_random_document_reads_as_full(data: bytes, chosen: st.DataObject) -> None:
    full = parse_feed(data)
    assert full.error is None, data
    guids = [talk.guid for talk in full.talks]
    subset = chosen.draw(st.sets(st.sampled_from(guids))) if guids else set()
    read = assert_reads_as_full(data, subsets=[subset])
    assert read.skimmed is True  # every document made here is one lxml reads


@settings(SETTINGS, max_examples=int(os.environ.get("WATCHER_SKIM_EXAMPLES", "100")))
@given(rss_document(), st.data())
def test_random_rss_reads_as_the_full_parse(data, chosen):
    assert_random_document_reads_as_full(data, chosen)


@settings(SETTINGS, max_examples=int(os.environ.get("WATCHER_SKIM_EXAMPLES", "100")))
@given(atom_document(), st.data())
def test_random_atom_reads_as_the_full_parse(data, chosen):
    assert_random_document_reads_as_full(data, chosen)


# --- hostile documents --------------------------------------------------------------------


def nested(depth: int, inside: str = "Deep.") -> str:
    return "<div>" * depth + inside + "</div>" * depth


def rss(items: str, prolog: str = "") -> bytes:
    channel = f"<channel><title>t</title>{items}</channel>"
    return f'<?xml version="1.0"?>{prolog}<rss version="2.0">{channel}</rss>'.encode()


HOSTILE_SHAPES = {
    "2,000-deep elements in a description": lambda: rss(
        f"<item><guid>g</guid><description>{nested(2000)}</description></item>"
    ),
    "2,000-deep elements in the channel": lambda: rss(
        nested(2000) + "<item><guid>g</guid><title>after</title></item>"
    ),
    "2,000-deep elements around the items": lambda: rss(
        nested(2000, "<item><guid>g</guid><title>inside</title></item>")
    ),
    "2,000-deep escaped HTML": lambda: rss(
        f"<item><guid>g</guid><description>{escape(nested(2000))}</description></item>"
    ),
    "items nested 500 deep": lambda: rss("<item><guid>g</guid>" * 500 + "</item>" * 500),
    "a gzip body": lambda: gzip.compress(SEED_FEED.read_bytes()),
    "a gzip bomb body": lambda: gzip.compress(b"\0" * 20_000_000),
    "billion laughs": lambda: (FIXTURES / "hostile" / "billion-laughs.xml").read_bytes(),
    "external entity": lambda: (FIXTURES / "hostile" / "xxe-file.xml").read_bytes(),
    "an Atom entry as the whole document": lambda: (
        b'<entry xmlns="http://www.w3.org/2005/Atom"><id>g</id><title>t</title></entry>'
    ),
}


@pytest.mark.parametrize("shape", list(HOSTILE_SHAPES))
def test_hostile_documents_never_raise_and_read_quickly(shape):
    data = HOSTILE_SHAPES[shape]()
    started = time.monotonic()
    read = read_feed(data)
    assert isinstance(read, FeedRead)
    read.talks({"g", "no such guid"})
    assert time.monotonic() - started < 5
    assert_reads_as_full(data)


@pytest.mark.parametrize("name", [n for n in FIXTURE_FILES if n.startswith("hostile/")])
def test_hostile_fixtures_read_quickly(name):
    data = FIXTURE_FILES[name].read_bytes()
    started = time.monotonic()
    read = read_feed(data)
    read.talks({talk.guid for talk in read.identities})
    assert time.monotonic() - started < 2


# --- shapes the light copy once read otherwise --------------------------------------------


def one_item(content: str, more: str = "") -> bytes:
    """An RSS document whose one item (then `more`) has this content."""
    return rss(f"<item><title>T</title><guid>g</guid>{content}</item>{more}")


def described(markup: str, attributes: str = "") -> bytes:
    return one_item(f"<description{attributes}>{escape(markup)}</description>")


def atom_content_of(attributes: str, content: str) -> bytes:
    entry = f"<entry><id>g</id><content {attributes}>{content}</content></entry>"
    return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>{entry}</feed>'.encode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


V = "AAAAAAAAAAA"
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
DTD = '<!DOCTYPE rss SYSTEM "https://feeds.example/rss.dtd">'
TITLE_NBSP = "<item><title>A&nbsp;B</title><guid>g</guid></item><item><guid>g2</guid></item>"
NEXT_ITEM_RELATIVE = '<item><guid isPermaLink="false">g2</guid><link>rel/x</link></item>'
SHAPES = {
    # feedparser maps C1 characters through cp1252 (NEL → …) and mends Latin-1 mojibake:
    # the link is read in the text as it keeps it
    "a C1 character in a watch?-query": one_item(
        f"<description>youtube.com/watch?t=1\x85&amp;v={V}</description>"
    ),
    "mojibake in a watch?-query": one_item(
        f"<description>youtube.com/watch?t=\u00e2\u0080\u00a8&amp;v={V}</description>"
    ),
    "a C1 character by a character reference": one_item(
        f"<description>youtube.com/watch?t=1&#133;&amp;v={V}</description>"
    ),
    # feedparser decodes base64 content: the link is in the decoded text only
    "base64 by mode": atom_content_of('mode="base64"', b64(f"youtu.be/{V}")),
    "base64 by type": atom_content_of('type="application/octet-stream"', b64(f"youtu.be/{V}")),
    # feedparser escapes the text of XHTML content (a '>' in a watch?-query then matches)
    "XHTML text": atom_content_of('type="xhtml"', f"youtube.com/watch?a&gt;b&amp;v={V}"),
    "an XHTML body's text": one_item(f"<body {XHTML}>youtube.com/watch?a&gt;b&amp;v={V}</body>"),
    # feedparser rebuilds markup without these, where the stand-in's link was found
    "a link in a comment in markup": one_item(
        f"<description><p>hi</p><!-- youtu.be/{V} --></description>"
    ),
    "a link in a processing instruction": one_item(
        f"<description><p>hi</p><?pi youtu.be/{V}?></description>"
    ),
    "a link in the content element's attribute": one_item(
        f'<description title="youtu.be/{V}"><p>hi</p></description>'
    ),
    "a link in a namespace declaration": one_item(
        f'<description xmlns:y="https://youtu.be/{V}"><p>hi</p></description>'
    ),
    "a link in a wrapping div's attribute": atom_content_of(
        'type="xhtml"', f'<div {XHTML} title="youtu.be/{V}">hi</div>'
    ),
    "text before markup is not escaped": one_item(
        f"<description>youtube.com/watch?a&gt;b&amp;v={V}<b>x</b></description>"
    ),
    # an xml:base or namespace set in one item stays in force in feedparser for the next
    "xml:base in markup, then a relative link": one_item(
        '<description><p xml:base="https://talks.example/a/">x</p></description>',
        NEXT_ITEM_RELATIVE,
    ),
    "xml:base on an item, then a relative link": rss(
        f'<item xml:base="https://talks.example/a/"><guid>g1</guid></item>{NEXT_ITEM_RELATIVE}'
    ),
    "a base attribute, then a relative link": rss(
        f'<item><guid>g1</guid><x base="https://talks.example/a/"/></item>{NEXT_ITEM_RELATIVE}'
    ),
    "a namespace declared on an item": rss(
        '<item xmlns:content="urn:not-content"><guid>g1</guid></item>'
        f'<item xmlns:c="urn:not-content"><guid>g2</guid><c:encoded>youtu.be/{V}</c:encoded></item>'
    ),
    # feedparser drops a DOCTYPE that begins a line, and an undefined entity is an error to
    # expat (then feedparser's loose parser reads the document) only without one
    "a DOCTYPE after the declaration, &nbsp; in a title": rss(TITLE_NBSP, DTD),
    "a DOCTYPE on its own line, &nbsp; in a title": rss(TITLE_NBSP, f"\n{DTD}\n"),
    # a name expat refuses (lxml not) makes feedparser read the whole document with its
    # loose parser; without that item, a copy is read by expat, which drops &nbsp;
    "a name only the loose parser reads, in an item dropped": rss(
        "<item><guid>g1</guid><description>a&nbsp;b.</description></item>"
        "<item><guid>g2</guid><x\u0870/></item>",
        DTD,
    ),
    # shapes feedparser's HTML rewriting (resolve_relative_uris, now off) changed
    "attributes in sorted order": described(
        f'<a href="https://youtu.be/{V}" data-x="https://youtu.be/BBBBBBBBBBB">x</a>'
    ),
    "a lower-cased rel": described('<a rel="https://youtu.be/AbCdEfGhIjK">x</a>'),
    "'>' in a watch?-query attribute": described(
        f'<a href="https://www.youtube.com/watch?a>b&v={V}">x</a>'
    ),
    "a void element's end tag": described(f"youtu</br>.be/{V}"),
    "a relative link against a YouTube base": described(
        f'<a href="embed/{V}">x</a>', ' xml:base="https://www.youtube.com/"'
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_shapes_the_light_copy_once_read_otherwise(shape):
    read = assert_reads_as_full(SHAPES[shape])
    assert read.skimmed is True
