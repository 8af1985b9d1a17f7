"""Known items (watcher/skim.py): an item read before, with the same bytes in the same
context, is not read again. `read_feed(data, known)` must give exactly what
`read_feed(data)` gives (every identity field, the names, the warnings, the error) for
any `known` an earlier read could have kept: over every fixture and wild feed, all of
their items known or some; over documents changed between two reads (items added,
dropped, moved, edited, duplicated); over changes of what surrounds the items (a base
URI, a namespace, a DOCTYPE); and over random RSS and Atom documents. `talks()` of a
read with known items must give the full parse's talks too.
"""

from __future__ import annotations

import os
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import (
    FIXTURES,
    add_talk,
    console_table,
    one_feed,
    seed_bytes,
    watcher_command,
    webhook_table,
    write_config,
)
from tests.test_skim import SETTINGS, atom_document, rss_document
from watcher.feed import parse_feed
from watcher.skim import FeedRead, read_feed

WILD = sorted(p for p in (FIXTURES / "wild").iterdir() if p.suffix != ".json" and p.is_file())
FEEDS = sorted(p for p in (FIXTURES / "feeds").iterdir() if not p.name.endswith(".json"))
HOSTILE = sorted((FIXTURES / "hostile").iterdir())
ALL = {f"{p.parent.name}/{p.name}": p for p in FEEDS + HOSTILE + WILD}
ITEM = re.compile(rb"<item[\s>].*?</item>|<entry[\s>].*?</entry>", re.S)


def same_read(read: FeedRead, expected: FeedRead) -> None:
    assert read.error == expected.error
    assert read.identities == expected.identities  # every field, the names included
    assert read.warnings == expected.warnings
    assert read.degraded == expected.degraded


def assert_known_read_as_unknown(data: bytes, known: dict | None) -> FeedRead:
    """A read of `data` knowing `known` against one knowing nothing; and its talks()
    against the full parse's."""
    expected = read_feed(data)
    read = read_feed(data, known)
    same_read(read, expected)
    if expected.error is None:
        full = parse_feed(data)
        assert read.talks({t.guid for t in full.talks}) == full.talks
    return read


@pytest.mark.parametrize("name", list(ALL))
def test_every_feed_read_knowing_its_items_reads_as_before(name):
    data = ALL[name].read_bytes()
    first = read_feed(data)
    if first.items is None:
        assert assert_known_read_as_unknown(data, {}).items is None
        return
    again = assert_known_read_as_unknown(data, first.items)
    assert again.items == first.items
    some = dict(list(first.items.items())[::2])
    assert_known_read_as_unknown(data, some)


def test_the_feed_fixtures_keep_their_items():
    for path in FEEDS:
        read = read_feed(path.read_bytes())
        assert read.items and len(read.items) == len(read.identities), path.name


def read_counting_entries(monkeypatch, data: bytes, known: dict | None) -> tuple[FeedRead, list]:
    """`read_feed(data, known)`, and how many entries feedparser gave at each of its reads."""
    import watcher.skim

    entries: list[int] = []
    real = watcher.skim.parsed_entries

    def spy(*args):
        parsed = real(*args)
        entries.append(len(parsed.entries))
        return parsed

    monkeypatch.setattr(watcher.skim, "parsed_entries", spy)
    read = read_feed(data, known)
    monkeypatch.undo()
    return read, entries


def test_a_new_talk_on_top_is_the_only_item_read(monkeypatch):
    before = seed_bytes()
    after = add_talk(before, "NEWxTALKxx1", "Brand new | Ada | PyCon", "Thu, 11 Jun 2026")
    read, entries = read_counting_entries(monkeypatch, after, read_feed(before).items)
    assert entries == [1], "the known items were read again"
    same_read(read, read_feed(after))
    new = read.identities[0]
    assert new.video_id == "NEWxTALKxx1"
    assert read.talks({new.guid}) == [t for t in parse_feed(after).talks if t.guid == new.guid]


def edits(data: bytes, rng: random.Random) -> list[bytes]:
    """The document with its items dropped, moved, duplicated, edited, and one made new."""
    items = ITEM.findall(data)
    if not items:
        return []
    start, end = data.index(items[0]), data.rindex(items[-1]) + len(items[-1])
    head, tail = data[:start], data[end:]

    def document(chosen: list[bytes]) -> bytes:
        return head + b"".join(chosen) + tail

    shuffled = items[:]
    rng.shuffle(shuffled)
    edited = [re.sub(rb"<title>", b"<title>Edited ", item, count=1) for item in items]
    return [
        document(items[1:]),
        document(items[:-1]),
        document(shuffled),
        document(items + items[:1]),
        document(edited[:1] + items[1:]),
        document([items[0].replace(b"</title>", b" (new)</title>", 1), *items]),
    ]


@pytest.mark.parametrize("name", [n for n in ALL if not n.startswith("hostile/")])
def test_a_changed_document_read_knowing_the_last_reads_as_before(name):
    data = ALL[name].read_bytes()
    known = read_feed(data).items
    if not known:
        return
    for changed in edits(data, random.Random(name)):
        assert_known_read_as_unknown(changed, known)


RELATIVE = """<?xml version="1.0" encoding="utf-8"?>{doctype}
<rss version="2.0"{namespaces}><channel{base}><title>T</title>
<item><title>One</title><link>one/</link><guid isPermaLink="false">a</guid></item>
<item><title>Two</title><link>two/</link>{thumbnail}<guid isPermaLink="false">b</guid></item>
</channel></rss>"""
MRSS = ' xmlns:media="http://search.yahoo.com/mrss/"'
THUMB = '<media:thumbnail url="https://i.ytimg.com/vi/dQw4w9WgXcQ/1.jpg"/>'


@pytest.mark.parametrize(
    "before, after",
    [
        ({"base": ' xml:base="https://a.example/"'}, {"base": ' xml:base="https://b.example/"'}),
        ({"base": ""}, {"base": ' xml:base="https://b.example/talks/"'}),
        ({"namespaces": MRSS}, {"namespaces": ' xmlns:media="http://example.com/not-mrss"'}),
        ({"namespaces": MRSS}, {"namespaces": ' xmlns:media="http://search.yahoo.com/mrss"'}),
        ({"doctype": ""}, {"doctype": '\n<!DOCTYPE rss PUBLIC "-//Netscape" "x.dtd">'}),
    ],
)
def test_what_surrounds_the_items_is_part_of_their_key(before, after):
    defaults = {"doctype": "", "namespaces": MRSS, "base": "", "thumbnail": THUMB}
    old = RELATIVE.format(**{**defaults, **before}).encode()
    new = RELATIVE.format(**{**defaults, **after}).encode()
    known = read_feed(old).items
    assert known
    read = assert_known_read_as_unknown(new, known)
    if "base" in after:
        assert read.identities[0].url != read_feed(old).identities[0].url


@pytest.mark.parametrize(
    "leak",
    [
        '<item xml:base="https://c.example/"><title>Zero</title><guid>z</guid></item>',
        '<item xmlns:media="http://example.com/x"><title>Zero</title><guid>z</guid></item>',
        '<image xml:base="https://c.example/"><url>x.png</url></image>',
        '<item><title xml:lang="fr">Zéro</title><guid>z</guid></item>',
    ],
)
def test_an_element_that_sets_what_follows_it_makes_every_item_read(leak):
    """feedparser keeps a base URI or a namespace set inside an item (or beside the
    items) in force for what follows: no item of such a document is read on its own."""
    plain = RELATIVE.format(doctype="", namespaces=MRSS, base="", thumbnail=THUMB).encode()
    leaky = plain.replace(b"<item>", leak.encode() + b"<item>", 1)
    assert read_feed(leaky).items is None
    assert_known_read_as_unknown(leaky, read_feed(plain).items)
    moved = plain.replace(b"</channel>", leak.encode() + b"</channel>", 1)
    assert_known_read_as_unknown(moved, read_feed(plain).items)


def linked_item(guid: str, title: str, more: str = "") -> str:
    """An item whose link is relative: what base URI is in force decides its URL."""
    link = f'<link>{guid}/</link><guid isPermaLink="false">{guid}</guid>'
    return f"<item><title>{title}</title>{link}{more}</item>"


ONE, TWO = linked_item("g1", "One"), linked_item("g2", "Two")
MARKED_UP = linked_item("g2", "Two &lt;b&gt;bold&lt;/b&gt; &amp;amp; co")
ATTLIST = '<!DOCTYPE rss [<!ATTLIST cat xml:base CDATA "https://other.example/x/">]>\n'
SET_ELSEWHERE = {
    # feedparser keeps an xml:base past the end of its element: here one around an item
    # before the known one
    "a base URI around some items only": (
        f"<rss version='2.0'><channel><title>T</title>{TWO}</channel></rss>",
        f"<rss version='2.0'><channel><title>T</title><group xml:base='https://g.example/'>"
        f"{ONE}</group>{TWO}</channel></rss>",
    ),
    # a <feed> element sets the version feedparser reads the rest as, where none is set
    "a feed element beside the items": (
        f"<channel><title>T</title>{MARKED_UP}</channel>",
        f"<channel><title>T</title><feed/>{MARKED_UP}</channel>",
    ),
    # expat gives <cat> the xml:base the DTD declares for it; lxml (and so the scan) not
    "a base URI from the DTD's attribute defaults": (
        f"{ATTLIST}<rss version='2.0'><channel><title>T</title>"
        f"{linked_item('g1', 'One', '<cat>c</cat>')}{TWO}</channel></rss>",
        f"{ATTLIST}<rss version='2.0'><channel><title>T</title>{TWO}</channel></rss>",
    ),
}


@pytest.mark.parametrize("case", list(SET_ELSEWHERE))
def test_what_an_element_elsewhere_sets_makes_the_items_read_again(case):
    before, after = (f'<?xml version="1.0"?>{text}'.encode() for text in SET_ELSEWHERE[case])
    assert_known_read_as_unknown(after, read_feed(before).items)


def talk_item(guid: str, title: str, inside: str = "", tag: str = "item") -> str:
    return (
        f"<{tag}><title>{title}</title><link>https://talks.example/{guid}/</link>"
        f'<guid isPermaLink="false">{guid}</guid>{inside}</{tag}>'
    )


FAKE_ITEMS = "</item><item><title>Fake</title><guid>fake</guid></item><item>"
# Markup a scan of the bytes must pass over as lxml does: each shape holds item "a", whose
# title comes after the markup in question (an edit of it must change the item's key).
SCANNED = {
    "a CDATA section holding tags": f"<description><![CDATA[{FAKE_ITEMS}]]></description>",
    "a comment holding tags": f"<!-- {FAKE_ITEMS} -->",
    "a processing instruction holding tags": f"<?note {FAKE_ITEMS} ?>",
    "a '/>' in an attribute value": "<category domain=\"a/>b\" label='c>d'>x</category>",
    "white space in the tags": '<category\n  domain = "x" >y</category >',
}


@pytest.mark.parametrize("shape", list(SCANNED))
def test_an_item_read_before_is_found_in_the_bytes_as_lxml_finds_it(shape):
    """A known item is cut out of the document's bytes before lxml reads it: its bytes must
    be the element's, wherever an `</item>` seems to stand. Knowing the last read, a new
    document (a new item on top, and item a's title edited after the markup) reads as
    one read knowing nothing, and the unchanged item b is not read again."""

    def document(title: str, *more: str) -> bytes:
        a = talk_item("a", "", SCANNED[shape]).replace("<title></title>", "", 1)
        a = a.replace("</item>", f"<title>{title}</title></item>")
        items = "".join([*more, a, talk_item("b", "Bee")])
        channel = f"<channel><title>T</title>{items}</channel>"
        return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'.encode()

    old = document("Ay")
    known = read_feed(old).items
    assert known and len(known) == 2
    new = document("Ay, edited", talk_item("n", "New"))
    read = assert_known_read_as_unknown(new, known)
    assert [t.raw_title for t in read.identities] == ["New", "Ay, edited", "Bee"]
    assert read.reused == 1, "item b was read again"


@pytest.mark.parametrize(
    "document",
    [
        # RSS 1.0: items beside the channel, in a default namespace
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns="http://purl.org/rss/1.0/"><channel rdf:about="x"><title>T</title></channel>'
        "{items}</rdf:RDF>",
        # RSS 1.0 with a prefix for its elements
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        ' xmlns:rss="http://purl.org/rss/1.0/"><rss:channel rdf:about="x"><rss:title>T'
        "</rss:title></rss:channel>{items}</rdf:RDF>",
        # an empty item among them
        '<rss version="2.0"><channel><title>T</title><item/>{items}</channel></rss>',
        # Atom, entries in its namespace
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>{items}</feed>',
    ],
)
def test_items_of_any_shape_read_before_are_not_read_again(document):
    def entry(guid: str, title: str) -> str:
        if "Atom" in document:
            return f"<entry><id>{guid}</id><title>{title}</title></entry>"
        if "rss:channel" in document:
            link = f"<rss:link>https://talks.example/{guid}/</rss:link>"
            return f'<rss:item rdf:about="{guid}"><rss:title>{title}</rss:title>{link}</rss:item>'
        return talk_item(guid, title)

    old = document.format(items=entry("a", "Ay") + entry("b", "Bee")).encode()
    new = document.format(items=entry("n", "New") + entry("a", "Ay") + entry("b", "Bee")).encode()
    known = read_feed(old).items
    assert known
    read = assert_known_read_as_unknown(new, known)
    assert read.reused == len(known)


def test_a_document_that_is_one_item_is_read_whole():
    old = b'<entry xmlns="http://www.w3.org/2005/Atom"><id>a</id><title>Ay</title></entry>'
    new = old.replace(b"Ay", b"Ay, edited")
    assert_known_read_as_unknown(new, read_feed(old).items)


EXAMPLES = int(os.environ.get("WATCHER_SKIM_EXAMPLES", "100"))


def shuffled_items(data: bytes, chosen: st.DataObject) -> bytes:
    """Another document of the same items, some dropped, some twice, in another order."""
    items = ITEM.findall(data)
    if not items:
        return data
    start, end = data.index(items[0]), data.rindex(items[-1]) + len(items[-1])
    picked = chosen.draw(st.lists(st.sampled_from(items), max_size=len(items) + 2))
    return data[:start] + b"".join(picked) + data[end:]


@settings(SETTINGS, max_examples=EXAMPLES)
@given(rss_document(), rss_document(), st.data())
def test_random_rss_read_knowing_another_reads_as_before(first, second, chosen):
    for known in (read_feed(first).items, read_feed(second).items):
        assert_known_read_as_unknown(shuffled_items(first, chosen), known)


@settings(SETTINGS, max_examples=EXAMPLES)
@given(atom_document(), atom_document(), st.data())
def test_random_atom_read_knowing_another_reads_as_before(first, second, chosen):
    for known in (read_feed(first).items, read_feed(second).items):
        assert_known_read_as_unknown(shuffled_items(first, chosen), known)


def test_a_document_feedparser_reads_loosely_has_every_item_read(monkeypatch):
    """Known items were read by feedparser's strict parser; where it falls back to its
    loose one (which reads text otherwise), no identity read strictly is reused."""
    good = RELATIVE.format(doctype="", namespaces=MRSS, base="", thumbnail=THUMB).encode()
    loose = good.replace(
        b"</channel>", "<item><title>Z</title><guid>z</guid><x\u0870/></item></channel>".encode()
    )
    read, entries = read_counting_entries(monkeypatch, loose, read_feed(good).items)
    assert entries[-1] == 3, "identities read strictly were reused in a loose read"
    assert read.items is None
    same_read(read, read_feed(loose))


def test_a_poll_reads_again_only_the_items_it_does_not_know(tmp_path, feed_host, webhook):
    config = one_feed(feed_host.url, webhook_table("hook", webhook.url), feed='notify = ["hook"]')
    write_config(tmp_path, config)
    first = watcher_command("--verbose", "poll", "--config", "watcher.toml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "feed talks: 3 items, 0 of them known from the last read" in first.stderr
    after = add_talk(feed_host.body, "NEWxTALKxx1", "Brand new | Ada | PyCon", "Thu, 11 Jun 2026")
    feed_host.set_body(after)
    second = watcher_command("--verbose", "poll", "--config", "watcher.toml", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "feed talks: 4 items, 3 of them known from the last read" in second.stderr
    expected = [t for t in parse_feed(after).talks if t.video_id == "NEWxTALKxx1"]
    assert [r["talk"] for r in webhook.received] == [t.to_dict() for t in expected]


@pytest.mark.parametrize(
    "attribute", [' base="https://other.example/x/"', ' BASE="https://other.example/x/"']
)
def test_a_base_attribute_of_any_name_space_in_an_item_makes_every_item_read(attribute):
    """feedparser takes any attribute named `base` for xml:base, and keeps it in force
    for what follows (found by review)."""

    def document(inside: str) -> bytes:
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
            f"<item><title{inside}>One</title><link>https://ex.com/one</link><guid>g1</guid>"
            "</item><item><title>Two</title><link>two</link></item></channel></rss>"
        ).encode()

    after = document(attribute)
    read = assert_known_read_as_unknown(after, read_feed(document("")).items)
    assert read.identities[1].url == "https://other.example/x/two"


def test_an_rss_element_in_an_atom_feed_makes_every_item_read():
    """An <rss> element anywhere switches feedparser to reading RSS, which reads a text
    title that looks like HTML otherwise (found by review)."""

    def document(extra: str) -> bytes:
        return (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            '<title>T</title><entry><title>One</title><link href="https://ex.com/one"/>'
            f"<id>g1</id>{extra}</entry>"
            '<entry><title type="text">Two &lt;b&gt;bold&lt;/b&gt;</title>'
            '<link href="https://ex.com/two"/><id>g2</id></entry></feed>'
        ).encode()

    assert_known_read_as_unknown(document('<rss version="2.0"/>'), read_feed(document("")).items)


def test_a_talk_matched_by_another_key_is_logged_once(tmp_path, feed_host):
    write_config(tmp_path, one_feed(feed_host.url, console_table()))
    first = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    renamed = seed_bytes().replace(
        b"<guid>https://blog.randomdomain.co.za/youtube/too9j5nkg0c/</guid>",
        b"<guid>renamed-guid</guid>",
    )
    assert renamed != seed_bytes()
    feed_host.set_body(renamed)
    second = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    lines = [line for line in second.stderr.splitlines() if "matches a seen talk" in line]
    assert len(lines) == 1, second.stderr
