"""Which video is a talk's own, and which picture shows it (pure).

A talk's video is, in this order of trust:

1. the entry's `yt:videoId` (YouTube channel and playlist feeds, and their
   Invidious mirrors);
2. the entry's own link, when it is a video page: YouTube (`watch?v=`, `youtu.be/`,
   `shorts/`, `live/`, `embed/`, `v/`), an Invidious-style `/watch?v=` on any host,
   or Vimeo;
3. an embed (`<iframe>` or `<embed>`) of a YouTube or Vimeo video in the content;
4. the entry's audio or video file (`<enclosure>`, `media:content`), for podcasts;
5. only then the first YouTube or Vimeo link in the content's text, which is often
   another video (credits, "watch part 1"), so it comes last.

Every pattern here runs on untrusted text: each run is bounded and stops at the
next `<`, so a scan is linear in the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from watcher.urls import safe_url

YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
# Bounded digit runs, and a watch?-query that stops at the next "/" or "?": each
# unbounded form took minutes on ~100 KB of digits or of repeated "youtube.com/watch?".
_YOUTUBE_LINK = (
    r"(?:youtube(?:-nocookie)?\.com/(?:embed/|v/|shorts/|live/"
    r"|watch\?(?:[^\s\"'<>/?]*?&(?:amp;)?)?v=)|youtu\.be/)(?P<youtube>[A-Za-z0-9_-]{11})"
    r"(?![A-Za-z0-9_-])"
)
_VIMEO_LINK = (
    r"vimeo\.com/(?:video/|channels/[A-Za-z0-9_-]{1,100}/|groups/[A-Za-z0-9_-]{1,100}/videos/)?"
    r"(?P<vimeo>\d{4,12})(?![\d])"
)
VIDEO_LINK = re.compile(f"{_YOUTUBE_LINK}|{_VIMEO_LINK}")
_EMBED = re.compile(
    r"<(?:iframe|embed)\b[^<>]{0,4000}?\s(?:data-)?src\s*=\s*[\"']?(?P<src>[^\"'\s<>]{1,2000})",
    re.IGNORECASE,
)
_YOUTUBE_HOSTS = frozenset(
    {"youtube.com", "m.youtube.com", "music.youtube.com", "youtube-nocookie.com", "youtu.be"}
)
_PLAYABLE = ("audio/", "video/")
_PLAYABLE_MEDIUMS = frozenset({"audio", "video"})


@dataclass(frozen=True)
class Video:
    url: str
    youtube_id: str | None = None


def youtube(video_id: str) -> Video:
    return Video(f"https://www.youtube.com/watch?v={video_id}", video_id)


def vimeo(video_id: str) -> Video:
    return Video(f"https://vimeo.com/{video_id}")


def entry_video(entry: Mapping[str, Any], content: str) -> Video | None:
    """The talk's own video (see the module docstring); `content` is the entry's HTML."""
    declared = entry.get("yt_videoid")
    if isinstance(declared, str) and YOUTUBE_ID.fullmatch(declared.strip()):
        return youtube(declared.strip())
    for link in own_links(entry):
        if video := video_page(link):
            return video
    if video := embedded_video(content):
        return video
    if url := playable_file(entry):
        return Video(url)
    return video_in_text(content)


def own_links(entry: Mapping[str, Any]) -> Iterator[str]:
    """The entry's link, then its other `alternate` links."""
    link = entry.get("link")
    if isinstance(link, str):
        yield link
    for link in entry.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel", "alternate") == "alternate":
            href = link.get("href")
            if isinstance(href, str):
                yield href


def video_page(url: str) -> Video | None:
    """The video a page URL shows: YouTube (any of its URL shapes), an Invidious-style
    `/watch?v=` on another host, or Vimeo."""
    if not ("youtu" in url or "vimeo" in url or "/watch" in url):
        return None  # most links are not video pages: no need to take them apart
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    host = (parts.hostname or "").removeprefix("www.")
    if host in _YOUTUBE_HOSTS or host.endswith("vimeo.com"):
        return video_in_text(url)
    if parts.path.rstrip("/") == "/watch":
        ids = parse_qs(parts.query).get("v") or [""]
        if YOUTUBE_ID.fullmatch(ids[0]):
            return youtube(ids[0])
    return None


def embedded_video(content: str) -> Video | None:
    """The first YouTube or Vimeo video embedded in the HTML."""
    for match in _EMBED.finditer(content):
        if video := video_in_text(match.group("src")):
            return video
    return None


def video_in_text(text: str) -> Video | None:
    """The first YouTube or Vimeo video link in the text."""
    match = VIDEO_LINK.search(text)
    if match is None:
        return None
    return youtube(match["youtube"]) if match["youtube"] else vimeo(match["vimeo"])


def content_video_stand_in(content: str, files: bool) -> str | None:
    """A short text from which `entry_video` reads the same video as from this content.
    Where the entry has `files` (an enclosure or media content), an embed stays an embed:
    it comes before them, a link after; else either reads the same as a bare link."""
    for match in _EMBED.finditer(content):
        if link := VIDEO_LINK.search(match.group("src")):
            return f'<iframe src="{link.group()}"></iframe>' if files else link.group()
    link = VIDEO_LINK.search(content)
    return link.group() if link else None


def playable_file(entry: Mapping[str, Any]) -> str | None:
    """The entry's audio or video file: an enclosure, else a `media:content`."""
    files = [*(entry.get("enclosures") or []), *(entry.get("media_content") or [])]
    for media in files:
        if isinstance(media, Mapping) and _is_playable(media):
            url = safe_url(media.get("href") or media.get("url"))
            if url:
                return url
    return None


def entry_pictures(entry: Mapping[str, Any]) -> Iterator[object]:
    """Candidate thumbnails the entry declares beside its content, best first:
    `media:thumbnail`, then an image `media:content`."""
    for thumbnail in entry.get("media_thumbnail") or []:
        if isinstance(thumbnail, Mapping):
            yield thumbnail.get("url")
    for media in entry.get("media_content") or []:
        if isinstance(media, Mapping) and _is_image(media):
            yield media.get("url")


def enclosure_pictures(entry: Mapping[str, Any]) -> Iterator[object]:
    """The last resorts: an image enclosure, then the item's `itunes:image`."""
    for enclosure in entry.get("enclosures") or []:
        if isinstance(enclosure, Mapping) and _is_image(enclosure):
            yield enclosure.get("href") or enclosure.get("url")
    image = entry.get("image")
    if isinstance(image, Mapping):
        yield image.get("href") or image.get("url")


def _media_type(media: Mapping[str, Any]) -> tuple[str, str]:
    kind = media.get("type")
    medium = media.get("medium")
    return (
        kind.strip().lower() if isinstance(kind, str) else "",
        medium.strip().lower() if isinstance(medium, str) else "",
    )


def _is_playable(media: Mapping[str, Any]) -> bool:
    kind, medium = _media_type(media)
    return kind.startswith(_PLAYABLE) or medium in _PLAYABLE_MEDIUMS


def _is_image(media: Mapping[str, Any]) -> bool:
    kind, medium = _media_type(media)
    return kind.startswith("image/") or medium == "image"
