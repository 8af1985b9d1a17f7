"""Real feeds from public repositories (tests/fixtures/wild/) against plain feedparser.

For every document in the corpus, `watcher.feed.parse_feed` must not raise and must agree
with `feedparser.parse` on the items (count, titles, links, dates), its text must be clean
(no mojibake, no markup in first_lines, dates in one form), YouTube ids must be YouTube's,
and the fast read (`watcher.skim`) must give what the full parse gives.

A (file, check) pair that fails on today's code is listed in KNOWN_FAILURES with the class
of bug it shows; it is then a strict xfail, so an entry must be removed when the bug is
fixed. Do not add entries to make a new failure pass: fix it, or say why here.
"""

from __future__ import annotations

import calendar
import io
import json
import re
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import feedparser
import lxml.html
import pytest

from watcher.feed import ParsedFeed, parse_feed
from watcher.skim import read_feed
from watcher.talk import Talk

WILD = Path(__file__).parent / "fixtures" / "wild"
FILES = sorted(p.name for p in WILD.iterdir() if p.name not in ("MANIFEST.json", "README.md"))

# Reason classes, so that a fix can clear every entry of its class at once.
MARKUP = (
    "markup left in first_lines: a broken document's CDATA, which feedparser's loose parser "
    "escapes as text (a reader of feedparser's text sees the same)"
)
SOURCE_MOJIBAKE = "the document's own bytes are double-encoded UTF-8 ('userâ€™s')"
UNDECLARED_LEGACY = (
    "an undeclared legacy encoding (EUC-JP, EUC-KR) read as cp1252: only charset detection "
    "(chardet, which feedparser uses when installed) could tell; not a dependency of ours"
)
LITERAL_LT = "first_lines quote '<' as text (escaped markup, IRC nicks, e-mail): not markup"

# file name -> {check name -> reason}: each is a strict xfail of that check on that file.
KNOWN_FAILURES: dict[str, dict[str, str]] = {
    "feeder--rss_diskuse.xml": {"text": LITERAL_LT},
    "feedjira--AtomEscapedHTMLInPreTag.xml": {"text": LITERAL_LT},
    "feedjira--AtomWithITunesInCDATA.xml": {"text": LITERAL_LT},
    "feedparser--eucjp.xml": {"text": UNDECLARED_LEGACY},
    "feedparser--euckr.xml": {"text": UNDECLARED_LEGACY},
    "lissy93--stackoverflow.atom": {"text": LITERAL_LT},
    "miniflux--encoding_WINDOWS-1251.xml": {"text": LITERAL_LT},
    "miniflux--small_atom.xml": {"text": LITERAL_LT},
    "picofeed--ibash.ru.xml": {"text": LITERAL_LT},
    "picofeed--lincoln_loop.xml": {"text": LITERAL_LT},
    "rome--issue137-rss.xml": {"text": MARKUP},
    "rss2email--feed-3.rss": {"text": LITERAL_LT},
    "simplepie--feed_rss-2.0_for_file_mock.xml": {"text": SOURCE_MOJIBAKE},
}

_MOJIBAKE = re.compile(
    "â€|[ÃÂ][\u00a0-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)
_MARKUP = re.compile(r"<[A-Za-z/]")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_FIELDS = ("guid", "url", "video_id", "published", "raw_title")


@dataclass(frozen=True)
class Case:
    name: str
    parsed: ParsedFeed
    reference: feedparser.FeedParserDict
    identities: list[Talk]
    skim_error: str | None
    skim_talks: list[Talk]


@cache
def case(name: str) -> Case:
    data = (WILD / name).read_bytes()
    parsed = parse_feed(data)
    reference = feedparser.parse(io.BytesIO(data))
    read = read_feed(data)
    talks = read.talks({talk.guid for talk in read.identities})
    return Case(name, parsed, reference, read.identities, read.error, talks)


def collapse(text: object) -> str:
    return " ".join(text.split()) if isinstance(text, str) else ""


_MOJIBAKE_RUN = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152-\u2122]{1,3}")


def unmojibake(text: str) -> str:
    """`text` as it was before UTF-8 was decoded as cp1252 or Latin-1, run by run
    (feedparser mends some elements of such a document and not others)."""
    return _MOJIBAKE_RUN.sub(_unmojibake_run, text)


def _unmojibake_run(match: re.Match[str]) -> str:
    for codec in ("cp1252", "latin-1"):
        try:
            return match.group().encode(codec).decode("utf-8")
        except UnicodeError:
            continue
    return match.group()


def reference_date(entry: dict) -> str | None:
    moment = dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
    if not isinstance(moment, time.struct_time) or moment.tm_year < 1900:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(calendar.timegm(moment)))


def is_web_url(value: object) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^/\s]", value) is not None


def has_substance(entry: dict) -> bool:
    """Whether a feedparser entry has a title or a web link to show: an item with neither
    (and no video) is no talk, and is skipped (a date alone shows nothing)."""
    return bool(collapse(entry.get("title")) or is_web_url(entry.get("link")))


def html_text(entry: dict) -> str | None:
    """The title as a browser shows it, where feedparser reads it as HTML."""
    detail = dict.get(entry, "title_detail") or {}
    title = entry.get("title")
    if not title or detail.get("type") not in ("text/html", "application/xhtml+xml"):
        return None
    return collapse(lxml.html.fragment_fromstring(title, create_parent="div").text_content())


def shown(talk: Talk) -> bool:
    """The talks compared with feedparser's entries: those with a title or a link."""
    return bool(talk.raw_title or talk.url)


def is_blank(talk: Talk) -> bool:
    return not (talk.raw_title or talk.url or talk.video_url)


def expected_entries(reference: feedparser.FeedParserDict) -> list[dict]:
    """feedparser's entries that should become talks: those with a title, a link or a date,
    and an entry repeated exactly (same id, title, link and date) once."""
    entries, seen = [], set()
    for entry in reference.entries:
        if not has_substance(entry):
            continue
        key = (
            collapse(entry.get("id")),
            collapse(entry.get("title")),
            entry.get("link"),
            reference_date(entry),
        )
        if key not in seen:
            seen.add(key)
            entries.append(entry)
    return entries


# Each check returns what is wrong (empty: nothing).


def check_items(c: Case) -> list[str]:
    """Same items as feedparser: count, titles, links, dates."""
    if not c.reference.entries or c.parsed.error:
        return []
    expected = expected_entries(c.reference)
    talks = [talk for talk in c.parsed.talks if shown(talk)]
    if len(talks) != len(expected):
        return [f"{len(talks)} talks for {len(expected)} entries"]
    problems = []
    for number, (talk, entry) in enumerate(zip(talks, expected, strict=True), 1):
        title = collapse(entry.get("title"))
        mended = collapse(unmojibake(entry.get("title") or ""))
        if talk.raw_title not in (title, mended, html_text(entry)):
            problems.append(f"item {number}: title {talk.raw_title!r} != {title!r}")
        link = entry.get("link")
        if is_web_url(link) and talk.url != link:
            problems.append(f"item {number}: url {talk.url!r} != {link!r}")
        date = reference_date(entry)
        if date and talk.published != date:
            problems.append(f"item {number}: published {talk.published!r} != {date!r}")
    return problems


def check_no_blank_talks(c: Case) -> list[str]:
    """An item with no title, no link and no video is skipped, not read as a talk."""
    return [f"blank talk {talk.guid!r}" for talk in c.parsed.talks if is_blank(talk)]


def check_text(c: Case) -> list[str]:
    """No mojibake in titles or first lines, no markup in first lines."""
    problems = []
    for talk in c.parsed.talks:
        for text in (talk.raw_title, *talk.first_lines):
            if _MOJIBAKE.search(text):
                problems.append(f"mojibake {text[:80]!r}")
        for line in talk.first_lines:
            if _MARKUP.search(line):
                problems.append(f"markup in first_lines {line[:80]!r}")
    return problems


def check_dates(c: Case) -> list[str]:
    """published is None or an ISO instant in UTC, of a year from 1900."""
    problems = []
    for talk in c.parsed.talks:
        if talk.published is None:
            continue
        if not _ISO.match(talk.published) or int(talk.published[:4]) < 1900:
            problems.append(f"published {talk.published!r} ({talk.raw_title[:40]!r})")
    return problems


def check_video_ids(c: Case) -> list[str]:
    """video_id is a YouTube id; in a YouTube feed, the entry's yt:videoId."""
    problems = []
    for talk in c.parsed.talks:
        if talk.video_id is not None and not _VIDEO_ID.match(talk.video_id):
            problems.append(f"video_id {talk.video_id!r}")
    by_guid = {
        collapse(entry.get("id")): entry["yt_videoid"]
        for entry in c.reference.entries
        if entry.get("yt_videoid") and entry.get("id")
    }
    for talk in c.parsed.talks:
        if talk.guid in by_guid and talk.video_id != by_guid[talk.guid]:
            problems.append(f"{talk.guid}: video_id {talk.video_id!r} != {by_guid[talk.guid]!r}")
    return problems


def check_youtube_thumbnail(c: Case) -> list[str]:
    """In a YouTube feed, a talk's thumbnail is its entry's media:thumbnail."""
    thumbnails = {
        collapse(entry.get("id")): entry["media_thumbnail"][0].get("url")
        for entry in c.reference.entries
        if entry.get("yt_videoid") and entry.get("id") and entry.get("media_thumbnail")
    }
    return [
        f"{talk.guid}: thumbnail {talk.thumbnail!r} != {thumbnails[talk.guid]!r}"
        for talk in c.parsed.talks
        if talk.guid in thumbnails and talk.thumbnail != thumbnails[talk.guid]
    ]


def check_refusal(c: Case) -> list[str]:
    """A document that is refused gets one line that names what it is, not the position
    where expat gave up on it."""
    error = c.parsed.error
    if error is None:
        return []
    if "\n" in error or re.search(r"<unknown>:\d+", error) or not error.startswith("not a feed: "):
        return [f"refused as {error!r}"]
    return []


def check_skim(c: Case) -> list[str]:
    """read_feed gives the full parse's identities, and its talks() the full talks."""
    problems = []
    if c.skim_error != c.parsed.error:
        problems.append(f"skim error {c.skim_error!r} != {c.parsed.error!r}")
    ours = [tuple(getattr(t, f) for f in _FIELDS) for t in c.identities]
    full = [tuple(getattr(t, f) for f in _FIELDS) for t in c.parsed.talks]
    if ours != full:
        problems.append(f"identities differ: {_first_difference(ours, full)}")
    if c.skim_talks != c.parsed.talks:
        problems.append(f"talks() differ: {_first_difference(c.skim_talks, c.parsed.talks)}")
    return problems


def _first_difference(ours: list, full: list) -> str:
    for number, (a, b) in enumerate(zip(ours, full, strict=False), 1):
        if a != b:
            return f"item {number}: {a!r} != {b!r}"[:300]
    return f"{len(ours)} items != {len(full)}"


CHECKS = {
    "items": check_items,
    "no_blank_talks": check_no_blank_talks,
    "text": check_text,
    "dates": check_dates,
    "video_ids": check_video_ids,
    "youtube_thumbnail": check_youtube_thumbnail,
    "skim": check_skim,
}


def cases(check: str) -> list:
    params = []
    for name in FILES:
        reason = KNOWN_FAILURES.get(name, {}).get(check)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def test_corpus_is_listed_in_the_manifest():
    manifest = json.loads((WILD / "MANIFEST.json").read_text())
    assert sorted(entry["file"] for entry in manifest["files"]) == FILES
    assert all(name in FILES for name in KNOWN_FAILURES)


@pytest.mark.parametrize("name", cases("never_raises"))
def test_parse_never_raises(name):
    c = case(name)  # parse_feed, feedparser and read_feed of the document
    assert isinstance(c.parsed, ParsedFeed)


@pytest.mark.parametrize("name", cases("items"))
def test_items_match_feedparser(name):
    assert check_items(case(name)) == []


@pytest.mark.parametrize("name", cases("no_blank_talks"))
def test_no_blank_talks(name):
    assert check_no_blank_talks(case(name)) == []


@pytest.mark.parametrize("name", cases("text"))
def test_text_is_clean(name):
    assert check_text(case(name)) == []


@pytest.mark.parametrize("name", cases("dates"))
def test_dates_are_iso_utc(name):
    assert check_dates(case(name)) == []


@pytest.mark.parametrize("name", cases("video_ids"))
def test_video_ids(name):
    assert check_video_ids(case(name)) == []


@pytest.mark.parametrize("name", cases("youtube_thumbnail"))
def test_youtube_thumbnail(name):
    assert check_youtube_thumbnail(case(name)) == []


@pytest.mark.parametrize("name", cases("refusal"))
def test_refusals_name_the_input(name):
    assert check_refusal(case(name)) == []


@pytest.mark.parametrize("name", cases("skim"))
def test_skim_matches_full_parse(name):
    assert check_skim(case(name)) == []
