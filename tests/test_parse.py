"""Feed bytes → talks: the seed feed's quirks, other dialects, and golden files.

Set WATCHER_REGENERATE=1 to rewrite the `*.expected.json` golden files after a
change that is meant; review their diff before committing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from feedparser.encodings import convert_to_utf8
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES, SEED_FEED, watcher_command
from watcher.encoding import utf8_as_feedparser_would
from watcher.feed import parse_feed
from watcher.talk import split_title
from watcher.text import shorten

FEEDS = sorted(p for p in (FIXTURES / "feeds").iterdir() if p.suffix in (".xml", ".rdf"))


def seed_talks():
    parsed = parse_feed(SEED_FEED.read_bytes())
    assert parsed.error is None and parsed.warnings == []
    return parsed.talks


def test_seed_feed_first_talk_matches_the_contract():
    talk = seed_talks()[0].to_dict()
    assert talk == {
        "guid": "https://blog.randomdomain.co.za/youtube/too9j5nkg0c/",
        "title": "WWDC26: Optimize custom machine learning operations with Metal tensors",
        "speaker": "Apple",
        "event": None,
        "raw_title": "WWDC26: Optimize custom machine learning operations with Metal tensors"
        " | Apple",
        "url": "https://blog.randomdomain.co.za/youtube/too9j5nkg0c/",
        "video_id": "toO9j5NKg0c",
        "video_url": "https://www.youtube.com/watch?v=toO9j5NKg0c",
        "published": "2026-06-08T00:00:00Z",
        "slide_count": 64,
        "slides_present": 64,
        "duration": 15 * 60 + 54,
        "duration_is_partial": False,
        "thumbnail": "https://blog.randomdomain.co.za/youtube/toO9j5NKg0c/slide_000.png",
        "first_lines": talk["first_lines"],
    }
    lines = talk["first_lines"]
    assert len(lines) == 3
    assert lines[0] == "Hello, my name is Xiao, and I am a GPU software engineer."
    assert all(len(line) <= 300 for line in lines)
    assert lines[2].endswith("…") and lines[2].startswith("Apple platforms offer robust support")


def test_truncated_item_reports_claimed_and_present_slides():
    talk = seed_talks()[1]
    assert (talk.speaker, talk.event) == ("Frank McSherry", "Bug Bash")
    assert talk.slide_count == 151
    assert talk.slides_present == 2
    assert talk.duration == 1 * 60 + 54
    assert talk.video_id == "47lCIKzc58U"
    assert talk.first_lines[1].startswith("Building confidence is an ongoing process")


def test_three_part_title_with_year_in_event():
    talk = seed_talks()[2]
    assert (talk.title, talk.speaker, talk.event) == (
        "Nothing has changed about software engineering",
        "Ben Eggers",
        "Bug Bash 2026",
    )
    assert talk.slides_present == talk.slide_count == 110
    assert talk.duration == 26 * 60 + 10


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Only a title", ("Only a title", None, None)),
        ("Title | Channel", ("Title", "Channel", None)),
        ("Title | Speaker | Event", ("Title", "Speaker", "Event")),
        ("A|B without spaces", ("A|B without spaces", None, None)),
    ],
)
def test_split_title(raw, expected):
    assert split_title(raw) == expected


def test_shorten_cuts_on_a_word_boundary():
    text = "word " * 100
    cut = shorten(text, 50)
    assert len(cut) <= 50 and cut.endswith("word…")
    assert shorten("short", 50) == "short"


def test_other_dialects_give_title_link_date_and_first_sentences():
    atom = parse_feed((FIXTURES / "feeds" / "atom.xml").read_bytes()).talks[0]
    assert atom.published == "2026-03-02T07:30:00Z"
    assert atom.first_lines == [
        "Slow tests rot.",
        "This talk shows how to make them fast!",
        "Does it work?",
    ]
    assert (atom.slide_count, atom.duration, atom.thumbnail) == (None, None, None)
    rdf = parse_feed((FIXTURES / "feeds" / "rss1.rdf").read_bytes()).talks[0]
    assert (rdf.title, rdf.url) == ("Semantic feeds", "https://talks.example.org/rdf-talk")


def test_identity_fallbacks_and_duplicate_guids():
    talks = parse_feed((FIXTURES / "feeds" / "rss2-plain.xml").read_bytes()).talks
    assert [t.guid for t in talks[:1]] == ["https://blog.example.org/no-guid"]
    assert talks[1].guid.startswith("sha256:") and talks[1].published is None
    # Two items, one guid, two titles: two talks, each named after the guid and itself.
    assert [t.title for t in talks[2:]] == ["Duplicate guid", "Duplicate guid again"]
    assert all(re.fullmatch(r"same#[0-9a-f]{12}", t.guid) for t in talks[2:])
    assert talks[2].guid != talks[3].guid
    assert talks[2].url is None, "a javascript: link never becomes a talk URL"
    assert talks[0].video_id == "dQw4w9WgXcQ"


@pytest.mark.parametrize(
    "body", [b"/etc/passwd", b"http://127.0.0.1:9/feed.xml", str(SEED_FEED).encode()]
)
def test_a_body_that_looks_like_a_location_is_never_opened(body):
    parsed = parse_feed(body)
    assert parsed.talks == [] and parsed.error.startswith("not a feed")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML page"),
        (b'{"items": []}', "JSON"),
    ],
)
def test_not_a_feed_says_why(body, reason):
    assert reason in parse_feed(body).error


def test_malformed_feed_whose_items_can_be_read_is_used():
    broken = SEED_FEED.read_bytes().replace(b"</channel></rss>", b"")
    parsed = parse_feed(broken)
    assert len(parsed.talks) == 3 and parsed.error is None
    assert parsed.warnings and parsed.warnings[0].startswith("malformed feed")


@pytest.mark.parametrize("feed", FEEDS, ids=lambda p: p.name)
def test_inspect_json_matches_golden_file(feed: Path, tmp_path):
    result = watcher_command("inspect", str(feed), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    talks = json.loads(result.stdout)
    golden = feed.with_suffix(".expected.json")
    if os.environ.get("WATCHER_REGENERATE"):
        golden.write_text(json.dumps(talks, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert talks == json.loads(golden.read_text("utf-8"))
    assert list(tmp_path.iterdir()) == [], "inspect touches no state"


def test_inspect_fetches_over_http(feed_host, tmp_path):
    result = watcher_command("inspect", feed_host.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 talks in YouTube on Random Domain")
    assert "Speaker: Frank McSherry" in result.stdout


def test_inspect_reports_a_dead_source_in_one_line(tmp_path):
    result = watcher_command("inspect", str(tmp_path / "missing.xml"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr


def test_paragraphs_of_a_plain_description_do_not_run_together():
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item>'
        b"<title>t</title><guid>g</guid><description>&lt;p&gt;First one.&lt;/p&gt;"
        b"&lt;p&gt;Second one&lt;/p&gt;&lt;p&gt;third.&lt;/p&gt;</description>"
        b"</item></channel></rss>"
    )
    assert parse_feed(body).talks[0].first_lines == ["First one.", "Second one third."]


def test_a_relative_slide_image_is_resolved_against_the_items_xml_base():
    slide = (
        "&lt;h2&gt;Slide 1 — 0:05&lt;/h2&gt;&lt;table&gt;&lt;tr&gt;"
        '&lt;td&gt;&lt;img src="img/slide_001.png"&gt;&lt;/td&gt;&lt;td&gt;Hello.&lt;/td&gt;'
        "&lt;/tr&gt;&lt;/table&gt;"
    )
    document = (
        '<rss version="2.0"><channel><title>t</title>'
        '<item xml:base="https://talks.example/2026/"><title>T | S</title><guid>g</guid>'
        f"<description>{slide}</description></item></channel></rss>"
    ).encode()
    [talk] = parse_feed(document).talks
    assert talk.thumbnail == "https://talks.example/2026/img/slide_001.png"
    assert talk.slides_present == 1 and talk.first_lines == ["Hello."]


def test_the_thumbnail_is_the_first_slides_image_and_the_lines_its_words():
    """A picture before the slides (the speaker's) is not the thumbnail while a slide has
    one; in a slide's table, an image cell that is not a safe URL gives way to the next,
    and the words are those of the cells without an image, slide after slide."""

    def slide(number: int, *cells: str) -> str:
        row = "".join(f"<td>{cell}</td>" for cell in cells)
        return f"<h2>Slide {number} — 0:0{number}</h2><table><tr>{row}</tr></table>"

    site = "https://talks.example"
    content = (
        f'<p><img src="{site}/speaker.jpg"></p>'
        + slide(1, '<img src="javascript:alert(1)">', f'<img src="{site}/s1.png">', "First words.")
        + slide(2, f'<img src="{site}/s2.png"> (a picture)', "Second words.")
        + slide(3, "Third words, no image.")
    )
    document = (
        '<rss version="2.0"><channel><title>t</title><link>https://talks.example/</link>'
        "<item><title>T | S</title><guid>g</guid><link>https://talks.example/t/</link>"
        f"<description><![CDATA[{content}]]></description></item></channel></rss>"
    ).encode()
    [talk] = parse_feed(document).talks
    assert talk.thumbnail == "https://talks.example/s1.png"
    assert talk.first_lines == ["First words.", "Second words.", "Third words, no image."]
    assert (talk.slides_present, talk.duration) == (3, 3)


def _utf8_documents():
    fixtures = sorted((FIXTURES / "feeds").glob("*.*")) + sorted((FIXTURES / "hostile").glob("*"))
    return [path.read_bytes() for path in fixtures if not path.name.endswith(".json")]


@given(
    st.sampled_from(_utf8_documents())
    | st.binary(max_size=200)
    | st.builds(
        lambda head, body: (head + body).encode("utf-8", "surrogatepass"),
        st.sampled_from(
            [
                "",
                '<?xml version="1.0"?>',
                "<?xml version='1.0' encoding='UTF-8'?>",
                '<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n',
                '<?xml version="1.0" encoding="latin-1"?>',
                "<?xml encoding='utf-8'",
            ]
        ),
        st.text(max_size=60),
    )
)
@settings(max_examples=300, deadline=None)
def test_the_utf8_shortcut_gives_what_feedparser_would(data):
    shortcut = utf8_as_feedparser_would(data)
    if shortcut is not None:
        result: dict = {}
        assert shortcut == convert_to_utf8({}, data, result)
        assert "bozo_exception" not in result


def test_the_utf8_shortcut_is_taken_for_the_seed_feed():
    assert utf8_as_feedparser_would(SEED_FEED.read_bytes()) is not None
