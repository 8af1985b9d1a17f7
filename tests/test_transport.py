"""The feeds' and destinations' HTTP transport (watcher/transport.py): httpx's, read in
larger steps, with each connection's socket found once. It must read what httpx reads,
keep httpx's judgement of a connection the server has closed, and its proxies."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import trustme

from watcher import transport
from watcher.fetch import FetchError, fetch, new_client

BIG = b"<rss><channel>" + b"<item><title>x</title></item>" * 45_000 + b"</channel></rss>"


def fetched(url: str) -> bytes:
    async def get() -> bytes:
        async with new_client(10) as client:
            return (await fetch(client, url, max_bytes=10_000_000, deadline=10)).body

    return asyncio.run(get())


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    """The size of each read of the transport's streams."""
    sizes: list[int] = []
    read = transport.KnownSocketStream.read

    async def counted(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await read(self, max_bytes, timeout)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(transport.KnownSocketStream, "read", counted)
    return sizes


def test_a_large_body_is_read_whole_in_a_few_steps(httpserver, reads):
    """httpcore reads 64 KB at a time: 1.3 MB would take 20 reads, each through h11,
    httpcore, httpx and anyio."""
    httpserver.expect_request("/big.xml").respond_with_data(BIG, content_type="text/xml")
    assert fetched(httpserver.url_for("/big.xml")) == BIG
    assert reads, "the transport's streams were not used"
    assert len(reads) <= len(BIG) // (64 * 1024) // 2, reads


def test_a_connection_the_server_closed_is_not_used_again(raw_server):
    """A server that ends each connection after its answer (as many do once idle): the
    next request must see the connection is gone, not fail on it."""
    closed = threading.Event()
    body = b"<rss><channel><title>t</title></channel></rss>"

    def answer_and_close(conn, stopped) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.close()
        closed.set()

    server = raw_server(answer_and_close)

    async def twice() -> tuple[bytes, bytes]:
        async with new_client(10) as client:
            first = await fetch(client, server.url(), max_bytes=1_000_000, deadline=10)
            assert closed.wait(10), "the server did not close the connection"
            second = await fetch(client, server.url(), max_bytes=1_000_000, deadline=10)
            return first.body, second.body

    assert asyncio.run(twice()) == (body, body)


class Big(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(BIG)))
        self.end_headers()
        self.wfile.write(BIG)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https_server(tmp_path) -> Iterator[tuple[str, str]]:
    """An HTTPS server on 127.0.0.1 with a certificate of its own authority: (its URL,
    the authority's certificate file)."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Big)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    yield f"https://127.0.0.1:{server.server_address[1]}/big.xml", str(tmp_path / "ca.pem")
    server.shutdown()
    server.server_close()


def test_a_feed_over_tls_is_read_through_the_transport(https_server, monkeypatch, reads):
    url, authority = https_server
    monkeypatch.setenv("SSL_CERT_FILE", authority)
    assert fetched(url) == BIG
    assert reads, "the transport's streams were not used"


def test_a_certificate_not_trusted_is_a_tls_error(https_server, monkeypatch):
    url, _ = https_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(FetchError, match=r"TLS error: .*CERTIFICATE_VERIFY_FAILED"):
        fetched(url)


class Proxy(BaseHTTPRequestHandler):
    """An HTTP proxy that answers every request itself, with a feed, and records what
    it was asked for (a proxy is asked for the whole URL)."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Proxy.asked.append(self.path)
        body = b"<rss><channel><title>through the proxy</title></channel></rss>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_proxy_the_environment_names_is_used(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    Proxy.asked.clear()
    try:
        body = fetched("http://feeds.example.invalid/talks.xml")
    finally:
        server.shutdown()
        server.server_close()
    assert b"through the proxy" in body
    assert Proxy.asked == ["http://feeds.example.invalid/talks.xml"]
