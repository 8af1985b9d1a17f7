"""A talk's own video, picture and text: the order of trust in `watcher.media`, read
through whole feed documents as `watcher inspect` reads them."""

from __future__ import annotations

import pytest

from watcher.feed import parse_feed
from watcher.media import video_page
from watcher.talk import split_title
from watcher.urls import safe_url

YT = "http://www.youtube.com/xml/schemas/2015"
MEDIA = "http://search.yahoo.com/mrss/"


def rss(item: str, title: str = "A talk") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<rss version="2.0" xmlns:media="{MEDIA}" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
        f"<channel><title>t</title><item><title>{title}</title>{item}</item></channel></rss>"
    ).encode()


def one(data: bytes):
    parsed = parse_feed(data)
    assert parsed.error is None and len(parsed.talks) == 1, parsed
    return parsed.talks[0]


@pytest.mark.parametrize(
    ("url", "video_id"),
    [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/watch?feature=share&v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://m.youtube.com/watch?v=dQw4w9WgXcQ&t=10s", "dQw4w9WgXcQ"),
        ("https://youtu.be/dQw4w9WgXcQ?si=abc", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/shorts/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://www.youtube.com/live/dQw4w9WgXcQ?feature=shared", "dQw4w9WgXcQ"),
        ("https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
        ("https://yewtu.be/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),  # Invidious
        ("https://invidious.example.net/watch?v=dQw4w9WgXcQ&listen=1", "dQw4w9WgXcQ"),
        ("https://example.org/watch?v=tooshort", None),
        ("https://example.org/blog/talk/", None),
        ("https://www.youtube.com/@SomeConf", None),
    ],
)
def test_the_video_page_shapes_people_link_to(url, video_id):
    video = video_page(url)
    assert (video.youtube_id if video else None) == video_id
    if video_id:
        assert video.url == f"https://www.youtube.com/watch?v={video_id}"


def test_vimeo_pages_and_embeds_are_videos_without_a_youtube_id():
    assert video_page("https://vimeo.com/76979871").url == "https://vimeo.com/76979871"
    talk = one(
        rss(
            "<link>https://conf.example.org/t/1</link><description>"
            "&lt;iframe src=&quot;https://player.vimeo.com/video/76979871?h=8272103f6e&quot;"
            "&gt;&lt;/iframe&gt;&lt;p&gt;See https://youtu.be/dQw4w9WgXcQ too.&lt;/p&gt;"
            "</description>"
        )
    )
    assert (talk.video_id, talk.video_url) == (None, "https://vimeo.com/76979871")


def test_yt_video_id_beats_other_videos_linked_in_the_description():
    data = (
        f'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:yt="{YT}" xmlns:media="{MEDIA}">'
        "<title>Chan</title><entry><id>yt:video:AAAAAAAAAAA</id>"
        "<yt:videoId>AAAAAAAAAAA</yt:videoId><title>Part 2 - Jane Doe</title>"
        '<link rel="alternate" href="https://www.youtube.com/watch?v=AAAAAAAAAAA"/>'
        "<author><name>Chan</name></author><published>2024-05-01T10:00:00+00:00</published>"
        "<media:group><media:title>Part 2</media:title>"
        '<media:thumbnail url="https://i1.ytimg.com/vi/AAAAAAAAAAA/hqdefault.jpg"/>'
        "<media:description>Watch part 1 first: https://www.youtube.com/watch?v=BBBBBBBBBBB\n"
        "Slides at example.org</media:description></media:group></entry></feed>"
    ).encode()
    talk = one(data)
    assert (talk.video_id, talk.video_url) == (
        "AAAAAAAAAAA",
        "https://www.youtube.com/watch?v=AAAAAAAAAAA",
    )
    assert talk.thumbnail == "https://i1.ytimg.com/vi/AAAAAAAAAAA/hqdefault.jpg"
    assert talk.first_lines == [
        "Watch part 1 first: https://www.youtube.com/watch?v=BBBBBBBBBBB",
        "Slides at example.org",
    ]
    assert talk.speaker is None, "the channel (author) is not the speaker"


def test_an_embed_beats_a_video_linked_in_the_text():
    talk = one(
        rss(
            "<link>https://conf.example.org/t/1</link><description>"
            "&lt;p&gt;Part 1: https://www.youtube.com/watch?v=BBBBBBBBBBB&lt;/p&gt;"
            "&lt;iframe width=560 src=&quot;//www.youtube.com/embed/AAAAAAAAAAA?rel=0&quot;"
            "&gt;&lt;/iframe&gt;</description>"
        )
    )
    assert talk.video_id == "AAAAAAAAAAA"


def test_a_podcast_episode_is_its_enclosure_not_a_video_its_notes_mention():
    talk = one(
        rss(
            "<link>https://pod.example.org/42</link>"
            '<enclosure url="https://pod.example.org/media/Walt Kujat.mp3" length="1" '
            'type="audio/mpeg"/><itunes:image href="https://pod.example.org/42.jpg"/>'
            "<description>We discuss https://www.youtube.com/watch?v=BBBBBBBBBBB.</description>"
        )
    )
    assert (talk.video_id, talk.video_url) == (
        None,
        "https://pod.example.org/media/Walt%20Kujat.mp3",
    )
    assert talk.thumbnail == "https://pod.example.org/42.jpg"


def test_thumbnail_falls_back_to_media_content_then_an_img():
    talk = one(
        rss(
            '<media:content url="https://cdn.example.org/v.mp4" type="video/mp4"/>'
            '<media:content url="https://cdn.example.org/poster.jpg" medium="image"/>'
            "<description>&lt;img src=&quot;https://cdn.example.org/inline.png&quot;&gt;"
            "</description>"
        )
    )
    assert talk.video_url == "https://cdn.example.org/v.mp4"
    assert talk.thumbnail == "https://cdn.example.org/poster.jpg"
    talk = one(
        rss(
            '<description>&lt;p&gt;Hi.&lt;img src="/i.png"&gt;&lt;/p&gt;</description>'
            "<link>https://conf.example.org/t</link>"
        ).replace(b"<item>", b'<item xml:base="https://conf.example.org/t/">')
    )
    assert talk.thumbnail == "https://conf.example.org/i.png"


def test_first_lines_come_from_media_description_when_the_content_has_no_text():
    talk = one(
        rss(
            '<content:encoded><![CDATA[<img src="https://x.example/a.png">]]></content:encoded>'
            "<media:group><media:description>The abstract. Second sentence."
            "</media:description></media:group>"
        )
    )
    assert talk.first_lines == ["The abstract.", "Second sentence."]


def test_malformed_tags_never_reach_first_lines_as_markup():
    talk = one(
        rss(
            "<description>Intro&lt;BR &lt;a href=&quot;https://x.example/&quot;&gt;"
            "the link text&lt;/a&gt; and more. Next.&lt;br&lt;b&gt;bold&lt;/b&gt; end."
            "</description>"
        )
    )
    assert talk.first_lines == ["Intro the link text and more.", "Next.", "bold end."]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Lightning talks |  | PyData Berlin", ("Lightning talks", None, "PyData Berlin")),
        ("Title | Speaker | ", ("Title", "Speaker", None)),
        ("Title | Speaker |", ("Title", "Speaker", None)),
        ("A | B | C | D", ("A", "B", "C | D")),
        ("Pipes||inside | Speaker", ("Pipes||inside", "Speaker", None)),
    ],
)
def test_titles_with_empty_parts(raw, expected):
    assert split_title(raw) == expected
    talk = one(rss("<link>https://conf.example.org/t</link>", title=raw))
    assert (talk.title, talk.speaker, talk.event) == expected


def test_a_raw_space_in_a_link_is_percent_encoded():
    assert safe_url("http://host/Walt Kujat.mp3") == "http://host/Walt%20Kujat.mp3"
    assert safe_url("http://host/a\tb") is None
    talk = one(rss("<link>https://conf.example.org/Walt Kujat/</link>"))
    assert talk.url == "https://conf.example.org/Walt%20Kujat/"
