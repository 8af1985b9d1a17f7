"""Synthetic feeds in the format of the seed fixture (tests/fixtures/feeds/talks-feed.xml).

Each talk is an RSS item whose HTML description carries an embedded video, an
`N slides extracted.` claim and one `<h2>Slide K — m:ss</h2>` + table (image and
transcript) per slide, escaped into the XML exactly as the seed does it. The
transcripts are real lines taken from the seed, so their lengths follow it
(mean about 210 characters, from a few words to about 700).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

SEED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "feeds" / "talks-feed.xml"
BASE_DATE = datetime(2026, 6, 8, tzinfo=UTC)
VIDEO_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
# One transcript cell, on one line, holding no markup (the seed's truncated item has
# a cell cut short: a lazy `.*?` over line breaks would swallow the next item).
_TRANSCRIPT_CELL = re.compile(r'&lt;td width="42%" valign="top"&gt;((?:(?!&lt;)[^\n])*)&lt;/td&gt;')

WORDS = (  # noqa: SIM905
    "Building Scaling Debugging Testing Observing Shipping Securing Profiling Caching "
    "Streaming Designing Measuring Migrating Rethinking Simplifying"
).split()
TOPICS = (  # noqa: SIM905
    "distributed systems|async Python|GPU kernels|feed readers|property-based tests|"
    "SQLite in production|memory allocators|HTTP caches|type checkers|build systems|"
    "the Linux page cache|incident reviews|web performance|compilers|data pipelines"
).split("|")
SPEAKERS = "Ada Park|Ben Ito|Chloe Dube|Dev Rao|Eva Moss|Femi Ade|Gus Lind".split("|")  # noqa: SIM905
EVENTS = "PyCon|Bug Bash 2026|Strange Loop|WWDC26|FOSDEM|GopherCon|RustConf".split("|")  # noqa: SIM905


@dataclass(frozen=True)
class Shape:
    """How big the talks are: slides per talk drawn from triangular(low, high, mode)."""

    slides_low: int = 40
    slides_high: int = 150
    slides_mode: int = 60  # most talks are short: mean about 83 slides, ~60 KB per talk


REALISTIC = Shape()
SMALL = Shape(slides_low=2, slides_high=6, slides_mode=3)


def seed_transcripts(seed: Path = SEED) -> list[str]:
    """The seed's transcript cells, still escaped as they appear in the XML."""
    cells = [c for c in _TRANSCRIPT_CELL.findall(seed.read_text(encoding="utf-8")) if c.strip()]
    if not cells:
        raise SystemExit(f"bench: no transcript lines found in the seed feed {seed}")
    return cells


def feed_name(index: int) -> str:
    return f"feed-{index:04d}"


class FeedWriter:
    """Writes feed `index` with `talks` talks, and can add a newer talk at the top."""

    def __init__(self, folder: Path, shape: Shape, transcripts: list[str]) -> None:
        self.folder = folder
        self.shape = shape
        self.transcripts = transcripts

    def path(self, index: int) -> Path:
        return self.folder / f"{feed_name(index)}.xml"

    def write(self, index: int, talks: int) -> int:
        """Write the feed file; return its size in bytes."""
        rng = random.Random(index)
        items = [self._item(rng, index, number, talks - number) for number in range(talks)]
        items.reverse()  # newest first, as feeds list them
        text = _header(index) + "".join(items) + "</channel></rss>"
        data = text.encode("utf-8")
        _replace(self.path(index), data)
        return len(data)

    def add_newer_talk(self, index: int, number: int) -> None:
        """Insert talk `number` (newer than every other) before the first item."""
        path = self.path(index)
        text = path.read_text(encoding="utf-8")
        item = self._item(random.Random(index * 100_003 + number), index, number, -1)
        at = text.index("<item>")
        _replace(path, (text[:at] + item + text[at:]).encode("utf-8"))

    def _item(self, rng: random.Random, feed: int, number: int, age_days: int) -> str:
        video = "".join(rng.choice(VIDEO_ID_CHARS) for _ in range(11))
        link = f"https://talks.example.test/{feed_name(feed)}/{video.lower()}-{number}/"
        slides = round(
            rng.triangular(self.shape.slides_low, self.shape.slides_high, self.shape.slides_mode)
        )
        published = format_datetime(BASE_DATE - timedelta(days=age_days), usegmt=True)
        title = f"{rng.choice(WORDS)} {rng.choice(TOPICS)} | {rng.choice(SPEAKERS)}"
        title += f" | {rng.choice(EVENTS)}" if rng.random() < 0.7 else ""
        description = (
            f'&lt;iframe width="720" height="405" src="https://www.youtube.com/embed/{video}" '
            'frameborder="0" allowfullscreen&gt;&lt;/iframe&gt;\n'
            f"&lt;p&gt;&lt;em&gt;{slides} slides extracted.&lt;/em&gt;&lt;/p&gt;\n&lt;hr&gt;\n"
            + self._slides(rng, video, slides)
        )
        return (
            f"<item><title>{title}</title><link>{link}</link><pubDate>{published}</pubDate>"
            f"<guid>{link}</guid><description>{description}</description></item>"
        )

    def _slides(self, rng: random.Random, video: str, count: int) -> str:
        parts = []
        seconds = rng.randint(2, 8)
        for number in range(1, count + 1):
            minutes, secs = divmod(seconds, 60)
            stamp = f"{minutes}:{secs:02d}"
            watch = f"https://www.youtube.com/watch?v={video}"
            parts.append(
                f'&lt;h2 id="slide-{number}--{minutes}{secs:02d}-watch"&gt;Slide {number} — '
                f'{stamp} (&lt;a href="{watch}&amp;amp;t={seconds}s"&gt;watch&lt;/a&gt;)'
                "&lt;/h2&gt;\n"
                "&lt;table&gt;&lt;tr&gt;\n"
                f'&lt;td width="58%" valign="top"&gt;&lt;a href="{watch}&amp;t={seconds}s"&gt;'
                f'&lt;img src="https://talks.example.test/img/{video}/slide_{number:03d}.png" '
                f'width="100%" alt="Slide {number}"&gt;&lt;/a&gt;&lt;/td&gt;\n'
                f'&lt;td width="42%" valign="top"&gt;{rng.choice(self.transcripts)}&lt;/td&gt;\n'
                "&lt;/tr&gt;&lt;/table&gt;\n&lt;hr&gt;\n"
            )
            seconds += rng.randint(6, 22)
        return "".join(parts)


def _header(index: int) -> str:
    name = feed_name(index)
    return (
        '<?xml version="1.0" encoding="utf-8" standalone="yes"?><rss version="2.0" '
        'xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>Talks {name}</title><link>https://talks.example.test/{name}/</link>"
        f"<description>Recent talks in {name}</description><generator>Hugo</generator>"
        "<language>en-us</language>"
        f"<lastBuildDate>{format_datetime(BASE_DATE, usegmt=True)}</lastBuildDate>"
        f'<atom:link href="https://talks.example.test/{name}/index.xml" rel="self" '
        'type="application/rss+xml"/>'
    )


def _replace(path: Path, data: bytes) -> None:
    """Write atomically, so a server never serves half a file."""
    temp = path.with_suffix(".tmp")
    temp.write_bytes(data)
    temp.replace(path)
