"""Golden files of the talk fields for a representative subset of the real corpus
(tests/fixtures/wild/): every YouTube channel and playlist feed in it, podcasts, and
sites made by Hugo, Jekyll and WordPress. `watcher inspect --json` must print exactly
the talks in `tests/fixtures/golden/NAME.expected.json`.

Set WATCHER_REGENERATE=1 to rewrite them after a change that is meant; review the diff.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import FIXTURES, watcher_command
from watcher.feed import parse_feed
from watcher.skim import read_feed

WILD = FIXTURES / "wild"
GOLDEN = FIXTURES / "golden"
YOUTUBE = [
    "capyreader--atom-feed-youtube.xml",
    "feeder--atom_youtube.xml",
    "feedjira--youtube_atom.xml",
    "feedrs--atom_mediarss_youtube_1.xml",
    "lissy93--youtube.atom",
    "podtube--invidious_channel.xml",
    "podtube--invidious_playlist.xml",
    "podtube--youtube.xml",
    "rssfunnel--youtube.xml",
    "rssparserjs--atom-customfields.atom",
    "rssparserkt--atom-feed-youtube.xml",
    "wpfriends--youtube.xml",
]
OTHERS = [
    "feedsmith--atom-ns.xml",  # every namespace of a feed library's docs, yt: and media: too
    "laminas--podcast-complete.xml",  # iTunes podcast: enclosures
    "wpfriends--podcast-feed.rss",  # WordPress podcast
    "feedextractor--podcast.rss",
    "hugo-pankaj--index.xml",  # Hugo
    "hugo-yolo--index.xml",  # Hugo: year-1 dates, a guid listed twice
    "rssparserkt--atom-relative-url.xml",  # Jekyll (jekyll-feed)
    "capyreader--feed-atom-html-title-entities.xml",  # Jekyll, HTML titles
    "capyreader--arstechnica_feed.xml",  # WordPress
    "netnewswire--KatieFloyd.rss",  # a Vimeo link
    "newsboat--atom10_feed_authors.xml",  # ids repeated on items with other links
]
SUBSET = YOUTUBE + OTHERS


def golden(name: str):
    return GOLDEN / f"{name}.expected.json"


@pytest.mark.parametrize("name", SUBSET)
def test_talk_fields_match_the_golden_file(name):
    data = (WILD / name).read_bytes()
    talks = [talk.to_dict() for talk in parse_feed(data).talks]
    assert talks, "each file of the subset has talks"
    if os.environ.get("WATCHER_REGENERATE"):
        text = json.dumps(talks, indent=2, ensure_ascii=False) + "\n"
        golden(name).write_text(text, encoding="utf-8")
    assert talks == json.loads(golden(name).read_text(encoding="utf-8"))
    read = read_feed(data)
    assert [t.to_dict() for t in read.talks({t["guid"] for t in talks})] == talks


@pytest.mark.parametrize("name", YOUTUBE)
def test_youtube_talks_are_their_own_video(name):
    """In a channel or playlist feed every talk is its entry's yt:videoId, with its
    media:thumbnail, never a video its description links to."""
    talks = json.loads(golden(name).read_text(encoding="utf-8"))
    text = (WILD / name).read_text(encoding="utf-8")
    for talk in talks:
        assert talk["video_id"] and f"<yt:videoId>{talk['video_id']}</yt:videoId>" in text
        assert talk["video_url"] == f"https://www.youtube.com/watch?v={talk['video_id']}"
        assert talk["thumbnail"] and talk["video_id"] in talk["thumbnail"]


def test_inspect_json_prints_the_golden_talks(tmp_path):
    name = "podtube--invidious_playlist.xml"
    result = watcher_command("inspect", str(WILD / name), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(golden(name).read_text(encoding="utf-8"))
