"""Bytes feedparser reads wrong, read right or named for what they are: UTF-8 with a few bad
bytes (feedparser made every title mojibake), UTF-16/32 without a byte-order mark, and
gzip (a `.xml.gz` file, or a server that gzips without a Content-Encoding), archives,
PDFs and images (feedparser said "not well-formed (invalid token)").

The hand-made documents are in tests/fixtures/hostile/ (their outcomes are in
tests/test_hostile_feeds.py, and tests/test_skim.py reads each both ways); these tests
vary them and go through `parse_feed`, the skim, `fetch` and `watcher inspect`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import socket
import threading
import time
import tracemalloc
import zipfile

import pytest
from werkzeug import Response

from tests.conftest import SEED_FEED, seed_bytes, watcher_command
from tests.test_fetch_limits import CAP, failure, get, zeros_gzip
from tests.test_skim import assert_reads_as_full
from watcher.feed import ParsedFeed, parse_feed
from watcher.skim import read_feed


def rss(titles: list[str], head: str = '<?xml version="1.0" encoding="utf-8"?>\n') -> str:
    items = "".join(
        f"<item><title>{title}</title><guid>g{n}</guid></item>" for n, title in enumerate(titles)
    )
    return f'{head}<rss version="2.0"><channel><title>Feed</title>{items}</channel></rss>\n'


def read_both_ways(data: bytes) -> ParsedFeed:
    """`parse_feed`, after checking that the skim reads the same talks and says the same."""
    assert_reads_as_full(data)
    parsed = parse_feed(data)
    assert read_feed(data).warnings == parsed.warnings
    return parsed


# --- UTF-8 with a few bad bytes -----------------------------------------------------------


def test_the_seed_feed_with_one_bad_byte_keeps_every_other_character():
    good = parse_feed(SEED_FEED.read_bytes())
    title = good.talks[0].raw_title.encode()
    broken = SEED_FEED.read_bytes().replace(title, title.replace(b"Metal", b"M\xe9tal"), 1)

    parsed = read_both_ways(broken)

    assert parsed.warnings == ["1 byte that is not UTF-8 replaced (the rest is UTF-8)"]
    assert parsed.talks[0].raw_title == good.talks[0].raw_title.replace("Metal", "M\ufffdtal")
    assert [t.to_dict() for t in parsed.talks[1:]] == [t.to_dict() for t in good.talks[1:]]
    assert "â€" not in json.dumps([t.to_dict() for t in parsed.talks], ensure_ascii=False)


@pytest.mark.parametrize(
    ("document", "titles", "warning"),
    [
        # valid multi-byte characters outnumber bad bytes: UTF-8, the bad bytes U+FFFD
        (rss(["é è", "BAD"]), ["é è", "\ufffd"], "1 byte that is not UTF-8 replaced"),
        (rss(["— … “”", "BADBAD"]), ["— … “”", "\ufffd\ufffd"], "2 bytes that are not UTF-8"),
        # a tie, or none: windows-1252 as before, which loses nothing (feedparser then
        # decodes as UTF-8 each element that does: "Ã©" becomes "é" again, "â€¦" stays)
        (rss(["é", "BAD"]), ["é", "é"], "malformed feed: document declared as utf-8"),
        (rss(["…", "BAD"]), ["â€¦", "é"], "malformed feed: document declared as utf-8"),
        (rss(["plain", "BAD"]), ["plain", "é"], "malformed feed: document declared as utf-8"),
        # undeclared, or UTF-8 spelt another way, or after a UTF-8 BOM: the same rule
        (rss(["é è", "BAD"], "<?xml version='1.0'?>"), ["é è", "\ufffd"], "1 byte that is"),
        (rss(["é è", "BAD"], ""), ["é è", "\ufffd"], "1 byte that is"),
        (rss(["é è", "BAD"], '<?xml version="1.0" encoding="UTF8"?>'), ["é è", "\ufffd"], "1 "),
        ("\ufeff" + rss(["é è", "BAD"]), ["é è", "\ufffd"], "1 byte that is"),
    ],
)
def test_which_reading_damages_fewer_characters_wins(document, titles, warning):
    data = document.encode("utf-8").replace(b"BAD", b"\xe9")
    parsed = read_both_ways(data)
    assert [t.title for t in parsed.talks] == titles
    assert len(parsed.warnings) == 1 and parsed.warnings[0].startswith(warning), parsed.warnings


def test_a_document_declared_latin1_is_left_to_feedparser_whatever_its_bytes():
    data = rss(["é è", "BAD"], '<?xml version="1.0" encoding="iso-8859-1"?>')
    parsed = read_both_ways(data.encode("utf-8").replace(b"BAD", b"\xe9"))
    assert [t.title for t in parsed.talks] == ["é è", "é"] and parsed.warnings == []


# --- UTF-16 and UTF-32 without a byte-order mark ------------------------------------------

WIDE = rss(["Ünïcödé talk | Zoë", "日本語のトーク"], '<?xml version="1.0" encoding="utf-16"?>\n')


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("before", ["\n", "\r\n", "  \t", "\n\n\n"])
def test_wide_text_without_a_mark_is_read_from_its_nul_bytes(codec, before):
    parsed = read_both_ways((before + WIDE).encode(codec))
    assert [t.raw_title for t in parsed.talks] == ["Ünïcödé talk | Zoë", "日本語のトーク"]
    assert parsed.warnings == [
        f"{codec[:6].upper()} text without a byte-order mark: read as {codec}"
    ]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_wide_text_starting_with_its_declaration_is_left_to_feedparser(codec):
    parsed = read_both_ways(WIDE.encode(codec))
    assert [t.raw_title for t in parsed.talks] == ["Ünïcödé talk | Zoë", "日本語のトーク"]
    assert not any("byte-order mark" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("data", "codec"),
    [
        (("\n" + WIDE).encode("utf-16-le")[:-1], "utf-16-le"),  # cut in its last character
        (
            ("\n" + WIDE).encode("utf-16-be") + "\ud800".encode("utf-16-be", "surrogatepass"),
            "utf-16-be",
        ),
        (("\n" + WIDE).encode("utf-32-le")[:-2], "utf-32-le"),
    ],
)
def test_wide_text_that_does_not_decode_is_refused_and_named(data, codec):
    parsed = read_both_ways(data)
    assert parsed.error.startswith(
        f"not a feed: {codec[:6].upper()} text without a byte-order mark that does not decode"
        f" as {codec}: "
    )


@pytest.mark.parametrize(
    "data",
    [
        b"<rss>\0\0<channel/>\0</rss>",  # a few NULs: not wide text
        rss(["a\0b\0c\0d\0e\0f\0"]).encode(),
        b"\n\0" * 3 + b"<rss/>",  # too short to say
    ],
)
def test_nul_bytes_here_and_there_are_not_taken_for_wide_text(data):
    parsed = read_both_ways(data)
    assert not any("byte-order mark" in m for m in [parsed.error or "", *parsed.warnings])


# --- compressed files, archives, documents, images ----------------------------------------


def _zip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("feed.xml", data)
    return buffer.getvalue()


FEED = rss(["A talk"]).encode()
NOT_TEXT = {
    "a gzip-compressed file": gzip.compress(FEED),
    "a zip archive": _zip(FEED),
    "a bzip2-compressed file": bz2.compress(FEED),
    "an xz-compressed file": lzma.compress(FEED),
    "a zstd-compressed file": b"\x28\xb5\x2f\xfd\x20\x00\x01\x00\x00",
    "a 7z archive": b"7z\xbc\xaf\x27\x1c\x00\x04",
    "a PDF document": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    "a PNG image": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "a JPEG image": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "a GIF image": b"GIF89a\x01\x00\x01\x00",
}


@pytest.mark.parametrize("what", list(NOT_TEXT))
def test_a_file_that_is_not_text_is_named(what):
    assert read_both_ways(NOT_TEXT[what]).error == f"not a feed: {what}"


# --- gzip over HTTP without a Content-Encoding, and on disk -------------------------------


def test_a_gzip_body_served_without_content_encoding_is_read(httpserver, tmp_path):
    body = seed_bytes()
    httpserver.expect_request("/feed.xml").respond_with_response(
        Response(gzip.compress(body), headers={"Content-Type": "application/x-gzip"})
    )
    url = httpserver.url_for("/feed.xml")
    assert get(url, max_bytes=len(body)).body == body

    result = watcher_command("inspect", url, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [t["video_id"] for t in json.loads(result.stdout)] == [
        t.video_id for t in parse_feed(body).talks
    ]


def test_a_gzip_body_inside_a_content_encoding_is_undone_too(httpserver):
    body = seed_bytes()
    httpserver.expect_request("/feed.xml").respond_with_response(
        Response(gzip.compress(gzip.compress(body)), headers={"Content-Encoding": "gzip"})
    )
    assert get(httpserver.url_for("/feed.xml")).body == body


def test_a_gzipped_feed_file_is_read(tmp_path):
    path = tmp_path / "talks.xml.gz"
    path.write_bytes(gzip.compress(seed_bytes()))
    result = watcher_command("inspect", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("3 talks in YouTube on Random Domain")
    assert get(str(path)).body == seed_bytes()


@pytest.mark.parametrize("where", ["http", "file"])
def test_a_gzip_bomb_without_content_encoding_stops_at_the_cap(raw_server, tmp_path, where):
    bomb = zeros_gzip(512)  # 530 KB, under the cap, inflating to 512 MiB

    def serve(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(bomb)}\r\n\r\n".encode() + bomb)

    path = tmp_path / "bomb.xml.gz"
    path.write_bytes(bomb)
    source = raw_server(serve).url() if where == "http" else str(path)
    tracemalloc.start()
    started = time.monotonic()
    try:
        error = failure(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error) == f"too large: over the {CAP}-byte cap once decompressed"
    assert peak < 8 * CAP, f"peak {peak / 1e6:.1f} MB"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b"\x1f\x8b\x08\x00garbage, not deflate",
            "a gzip-compressed file that does not decompress: ",
        ),
        (
            gzip.compress(FEED)[:-20],
            "a gzip-compressed file that does not decompress: it is cut off",
        ),
    ],
)
@pytest.mark.parametrize("where", ["http", "file"])
def test_a_gzip_file_that_does_not_decompress_is_refused(httpserver, tmp_path, body, reason, where):
    httpserver.expect_request("/feed.xml").respond_with_data(body)
    path = tmp_path / "feed.xml.gz"
    path.write_bytes(body)
    source = httpserver.url_for("/feed.xml") if where == "http" else str(path)
    assert str(failure(source)).startswith(reason)
    result = watcher_command("inspect", source, cwd=tmp_path)
    assert result.returncode == 1 and f"{source}: {reason}" in result.stderr
    assert "Traceback" not in result.stderr
