"""Fetching from untrusted servers, all on 127.0.0.1: bombs and trickles are cut
off in bounded memory and time, redirects are followed within a limit, and every
failure is one line saying what kind it is."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import tracemalloc
import zlib

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import RawHandler, free_port, seed_bytes
from watcher.feed import parse_feed
from watcher.fetch import Fetched, FetchError, fetch, new_client

CAP = 1_000_000


def get(url: str, *, max_bytes: int = CAP, deadline: float = 10.0) -> Fetched:
    async def run() -> Fetched:
        async with new_client(deadline) as client:
            return await fetch(client, url, max_bytes=max_bytes, deadline=deadline)

    return asyncio.run(run())


def failure(url: str, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as caught:
        get(url, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 300, message
    return caught.value


def zeros_gzip(mib: int) -> bytes:
    """gzip of `mib` MiB of zeros, built from one flushed block repeated: it inflates to
    that size (its trailer is left off: a fetch must stop long before it)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    first = packer.compress(bytes(1 << 20)) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(bytes(1 << 20)) + packer.flush(zlib.Z_FULL_FLUSH)
    return first + block * (mib - 1)


BOMBS = {
    "gzip": lambda: zeros_gzip(512),  # 530 KB (under the cap) inflating to 512 MiB
    "gzip, gzip": lambda: gzip.compress(zeros_gzip(10 * 1024)),  # 24 KB inflating to 10 GiB
}


@pytest.mark.parametrize("encoding", list(BOMBS))
def test_a_gzip_bomb_is_cut_off_at_the_cap_in_bounded_memory(raw_server, encoding):
    """Served from a raw socket: werkzeug's server thread, in this process, would add
    ~10 MB of its own to what tracemalloc sees."""
    bomb = BOMBS[encoding]()

    def serve(conn: socket.socket, stopped: threading.Event) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(bomb)}"
        conn.sendall(head.encode() + b"\r\n\r\n")
        conn.sendall(bomb)

    server = raw_server(serve)
    tracemalloc.start()
    started = time.monotonic()
    try:
        error = failure(server.url())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error) == f"too large: over the {CAP}-byte cap"
    # Measured 2-5 MB. httpx's own decoder held ~585 MB for a 672-byte stacked bomb of 256 MiB.
    assert peak < 8 * CAP, f"peak {peak / 1e6:.1f} MB"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("gzip, gzip", lambda body: gzip.compress(gzip.compress(body))),
        ("deflate", zlib.compress),
        ("deflate", lambda body: zlib.compress(body)[2:-4]),  # raw deflate, no zlib header
        ("identity", lambda body: body),
        ("", lambda body: body),
    ],
)
def test_compressed_bodies_within_the_cap_arrive_intact(httpserver, encoding, pack):
    body = seed_bytes()
    headers = {"Content-Encoding": encoding} if encoding else {}
    httpserver.expect_request("/feed.xml").respond_with_response(
        Response(pack(body), headers=headers)
    )
    assert get(httpserver.url_for("/feed.xml"), max_bytes=len(body)).body == body


def test_the_cap_counts_bytes_after_decompression(httpserver):
    body = seed_bytes()
    httpserver.expect_request("/feed.xml").respond_with_response(
        Response(gzip.compress(body), headers={"Content-Encoding": "gzip"})
    )
    error = failure(httpserver.url_for("/feed.xml"), max_bytes=len(body) - 1)
    assert str(error) == f"too large: over the {len(body) - 1}-byte cap"


def test_a_declared_length_over_the_cap_is_refused_before_reading(raw_server):
    def huge(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n<rss>")
        stopped.wait(30)

    server = raw_server(huge)
    started = time.monotonic()
    error = failure(server.url())
    assert str(error) == f"too large: 1000000000000 bytes, over the {CAP}-byte cap"
    assert time.monotonic() - started < 5


def test_an_endless_chunked_body_stops_at_the_cap(raw_server):
    def endless(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        while not stopped.is_set():
            conn.sendall(chunk)

    error = failure(raw_server(endless).url())
    assert str(error) == f"too large: over the {CAP}-byte cap"


def test_junk_after_the_end_of_a_gzip_body_is_capped_too(raw_server):
    """Bytes after the gzip trailer inflate to nothing: only the cap on bytes received
    stops a server that sends them for ever."""

    def junk(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n")
        conn.sendall(gzip.compress(b"<rss/>"))
        while not stopped.is_set():
            conn.sendall(b"\0" * 0x10000)

    started = time.monotonic()
    error = failure(raw_server(junk).url())
    assert str(error) == f"too large: over the {CAP}-byte cap"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("gzip", b"this is not gzip", "bad gzip body: "),
        ("br", b"\x1b\x00", "unsupported Content-Encoding: br"),
        ("gzip, gzip, gzip, gzip", b"", "too many Content-Encodings (4)"),
    ],
)
def test_bodies_that_cannot_be_decoded_are_one_line_errors(httpserver, encoding, body, message):
    httpserver.expect_request("/feed.xml").respond_with_response(
        Response(body, headers={"Content-Encoding": encoding})
    )
    assert str(failure(httpserver.url_for("/feed.xml"))).startswith(message)


def test_only_encodings_it_can_inflate_in_bounded_steps_are_asked_for(httpserver):
    seen: list[str] = []

    def record(request: Request) -> Response:
        seen.append(request.headers.get("Accept-Encoding", ""))
        return Response(seed_bytes())

    httpserver.expect_request("/feed.xml").respond_with_handler(record)
    get(httpserver.url_for("/feed.xml"))
    assert seen == ["gzip, deflate"]


def trickle(prefix: bytes) -> RawHandler:
    """Send `prefix` one byte a second: the server never stalls long enough for a read
    timeout, so only the total deadline can end it."""

    def send(conn: socket.socket, stopped: threading.Event) -> None:
        for byte in prefix + b"x" * 60:
            if stopped.wait(1.0):
                return
            conn.sendall(bytes([byte]))

    return send


@pytest.mark.parametrize(
    "prefix",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"HTTP/1.1 200 OK\r\nX-Slow: "],
    ids=["body", "headers"],
)
def test_a_server_that_trickles_is_abandoned_at_the_deadline(raw_server, prefix):
    server = raw_server(trickle(prefix))
    started = time.monotonic()
    error = failure(server.url(), deadline=1.5)
    elapsed = time.monotonic() - started
    assert str(error) == "timed out after 1.5s"
    assert 1.4 < elapsed < 5


def redirects(server: HTTPServer, hops: dict[str, tuple[int, str]]) -> None:
    for path, (status, target) in hops.items():
        location = target if "://" in target else server.url_for(target)
        server.expect_request(path).respond_with_response(
            Response(status=status, headers={"Location": location})
        )
    server.expect_request("/final.xml").respond_with_data(seed_bytes())


@pytest.mark.parametrize(
    ("hops", "moved_to"),
    [
        ({"/a": (301, "/final.xml")}, "/final.xml"),
        ({"/a": (308, "/final.xml")}, "/final.xml"),
        ({"/a": (301, "/b"), "/b": (308, "/final.xml")}, "/final.xml"),
        ({"/a": (302, "/final.xml")}, None),
        ({"/a": (307, "/final.xml")}, None),
        ({"/a": (301, "/b"), "/b": (302, "/final.xml")}, "/b"),  # behind /b may move back
        ({"/a": (302, "/b"), "/b": (301, "/final.xml")}, None),  # /a itself did not move
    ],
)
def test_permanent_redirects_name_the_url_to_put_in_the_config(httpserver, hops, moved_to):
    redirects(httpserver, hops)
    fetched = get(httpserver.url_for("/a"))
    assert fetched.body == seed_bytes()
    assert fetched.permanent_redirect == (moved_to and httpserver.url_for(moved_to))


@pytest.mark.parametrize(
    "hops",
    [
        {"/a": (302, "/b"), "/b": (301, "/a")},
        {"/a": (301, "/a")},
        {f"/{n}": (302, f"/{n + 1}") for n in range(6)},  # six hops, one over the limit
    ],
    ids=["loop", "self", "too-long"],
)
def test_redirect_loops_and_long_chains_are_one_line_errors(httpserver, hops):
    redirects(httpserver, hops)
    error = failure(httpserver.url_for(next(iter(hops))))
    assert str(error) == "too many redirects (more than 5, or a loop)"


def test_a_redirect_to_a_local_file_is_never_followed(httpserver):
    redirects(httpserver, {"/a": (302, "file:///etc/passwd")})
    error = failure(httpserver.url_for("/a"))
    assert str(error).startswith("redirected to a URL that is not HTTP")


def test_connection_refused(httpserver):
    error = failure(f"http://127.0.0.1:{free_port()}/feed.xml")
    assert str(error) == "connection failed: refused"


def test_an_http_error_status_keeps_its_code_and_retry_after(httpserver):
    httpserver.expect_request("/feed.xml").respond_with_response(
        Response("down for maintenance", status=503, headers={"Retry-After": "120"})
    )
    error = failure(httpserver.url_for("/feed.xml"))
    assert str(error) == "HTTP 503 SERVICE UNAVAILABLE"
    assert (error.status, error.retry_after) == (503, 120.0)


def test_a_hostile_status_line_and_retry_after_stay_one_harmless_line(raw_server):
    def rude(conn: socket.socket, stopped: threading.Event) -> None:
        reason = b"Bad\tGateway " + "ünïcode ".encode() * 40
        conn.sendall(
            b"HTTP/1.1 502 " + reason + b"\r\nRetry-After: \xc2\xb2\r\nContent-Length: 0\r\n\r\n"
        )

    error = failure(raw_server(rude).url())
    assert str(error).startswith("HTTP 502 Bad Gateway ")
    assert "\t" not in str(error) and len(str(error)) <= len("HTTP 502 ") + 100
    assert error.retry_after is None  # "²" passes str.isdigit() but is no number


def test_tls_errors_are_named(httpserver):
    httpserver.expect_request("/feed.xml").respond_with_data(seed_bytes())
    url = httpserver.url_for("/feed.xml").replace("http://", "https://")
    error = failure(url)
    assert str(error).startswith("TLS error: ")


def test_dns_failures_are_named(monkeypatch):
    """Resolving is stubbed at getaddrinfo, so no query leaves the machine (the host's
    resolver is remote here); the rest of the path is httpx's own."""
    asked: list[str] = []

    def resolver(host: str | bytes, *args, **kwargs):
        asked.append(host.decode() if isinstance(host, bytes) else host)  # anyio passes bytes
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    error = failure("http://feeds.invalid/feed.xml")
    assert asked == ["feeds.invalid"]
    assert str(error) == "DNS lookup failed: [Errno -2] Name or service not known"


@pytest.mark.parametrize("kind", ["path", "file-url", "http-url"])
def test_a_body_that_looks_like_a_path_or_url_is_never_opened(httpserver, tmp_path, kind):
    """feedparser opens a str or bytes that names a file or URL: a feed body naming a
    real feed (a local file, or a URL on a server that counts its hits) must come out
    as "not a feed" with nothing opened."""
    local = tmp_path / "feed.xml"
    local.write_bytes(seed_bytes())
    httpserver.expect_request("/real.xml").respond_with_data(seed_bytes())
    body = {
        "path": str(local),
        "file-url": local.as_uri(),
        "http-url": httpserver.url_for("/real.xml"),
    }[kind]
    httpserver.expect_request("/feed.xml").respond_with_data(body)

    fetched = get(httpserver.url_for("/feed.xml"))
    parsed = parse_feed(fetched.body)

    assert fetched.body == body.encode()
    assert parsed.talks == [] and parsed.error.startswith("not a feed")
    assert [request.path for request, _ in httpserver.log] == ["/feed.xml"]
    for etc in ("/etc/hostname", "/etc/passwd"):
        assert parse_feed(etc.encode()).error.startswith("not a feed")
