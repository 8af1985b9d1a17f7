"""The feeds' and destinations' HTTP transport (watcher/transport.py): h11 over asyncio,
under httpx's client. It must read what httpx's own would, in large steps, keep its
judgement of a connection (kept alive, closed by the server, left half read), give
every connection slot back, never send a POST twice, and leave proxies to httpx."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
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
    """The size of each read of the transport's connections."""
    sizes: list[int] = []
    read = transport._read

    async def counted(connection, timeout, request) -> bytes:
        data = await read(connection, timeout, request)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(transport, "_read", counted)
    return sizes


def test_a_large_body_is_read_in_large_steps(httpserver, reads):
    """Each read passes through h11 and httpx: 1.3 MB in 64 KB steps (httpcore's) would be
    20 of them, in 256 KB steps 6."""
    httpserver.expect_request("/big.xml").respond_with_data(BIG, content_type="text/xml")
    assert fetched(httpserver.url_for("/big.xml")) == BIG
    assert reads, "the transport's streams were not used"
    assert max(reads) > 64 * 1024, reads  # a read may be short: the server has sent no more


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


class KeepAliveServer:
    """An HTTP/1.1 server on 127.0.0.1 that answers many requests on a connection, and
    counts connections and requests. `hang_up_on` names requests (counted from 1, over
    all connections) it reads and then closes their connection on, answering nothing."""

    def __init__(self, body: bytes, hang_up_on: frozenset[int] = frozenset()) -> None:
        self.answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        self.hang_up_on = hang_up_on
        self.connections = 0
        self.requests: list[bytes] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/feed.xml"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        pending = b""
        with contextlib.suppress(OSError), conn:
            while True:
                while b"\r\n\r\n" not in pending:
                    data = conn.recv(65536)
                    if not data:
                        return
                    pending += data
                head, pending = pending.split(b"\r\n\r\n", 1)
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                while length and len(pending) < int(length[1]):
                    pending += conn.recv(65536)
                pending = pending[int(length[1]) :] if length else pending
                with self.lock:
                    self.requests.append(head.split(b" ", 1)[0])
                    number = len(self.requests)
                if number in self.hang_up_on:
                    return
                conn.sendall(self.answer)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def keep_alive() -> Iterator[Callable[..., KeepAliveServer]]:
    servers: list[KeepAliveServer] = []

    def start(body: bytes = FEED, hang_up_on: frozenset[int] = frozenset()) -> KeepAliveServer:
        servers.append(KeepAliveServer(body, hang_up_on))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


FEED = b"<rss><channel><title>t</title></channel></rss>"
NOT_MODIFIED = "304"


def fetched_each(
    url: str, times: int, max_bytes: int = 1_000_000, etag: str | None = None
) -> list[bytes | str]:
    """Each fetch's body (NOT_MODIFIED for a 304), or its error, all over one client."""

    async def get() -> list[bytes | str]:
        results: list[bytes | str] = []
        async with new_client(10) as client:
            for _ in range(times):
                try:
                    fetched = await fetch(client, url, etag=etag, max_bytes=max_bytes, deadline=10)
                    results.append(NOT_MODIFIED if fetched.not_modified else fetched.body)
                except FetchError as exc:
                    results.append(str(exc))
        return results

    return asyncio.run(get())


def test_one_connection_carries_every_request_to_a_server(keep_alive):
    server = keep_alive()
    assert fetched_each(server.url(), 3) == [FEED] * 3
    assert (server.connections, len(server.requests)) == (1, 3)


def test_an_answer_closed_unread_keeps_its_connection_when_all_of_it_came(keep_alive):
    """A 304 is closed unread (as is any answer the client has no use for): its end has
    come with its head, so the connection is still good for the next feed."""
    server = keep_alive()
    server.answer = b'HTTP/1.1 304 Not Modified\r\nETag: "1"\r\n\r\n'
    assert fetched_each(server.url(), 3, etag='"1"') == [NOT_MODIFIED] * 3
    assert server.connections == 1


def test_a_connection_idle_past_the_keep_alive_is_not_used_again(keep_alive, monkeypatch):
    monkeypatch.setattr(transport, "KEEPALIVE_SECONDS", -1.0)
    server = keep_alive()
    assert fetched_each(server.url(), 2) == [FEED] * 2
    assert server.connections == 2


def test_a_body_given_up_on_is_no_answer_to_the_next_request(keep_alive):
    """A feed over the cap is left unread: its connection must go, not be read on."""
    big = b"<rss>" + b"x" * 2_000_000 + b"</rss>"
    server = keep_alive(big)
    results = fetched_each(server.url(), 2, max_bytes=1_000_000)
    assert results == ["too large: 2000011 bytes, over the 1000000-byte cap"] * 2
    assert server.connections == 2


def test_a_get_on_a_connection_the_server_dropped_is_sent_again_on_a_new_one(keep_alive):
    """The server took the second request on the kept connection and hung up without a
    word (as a server does whose idle timeout fell just then): a GET changes nothing, so
    it is sent once more on a new connection."""
    server = keep_alive(hang_up_on=frozenset({2}))
    assert fetched_each(server.url(), 2) == [FEED] * 2
    assert (server.connections, server.requests) == (2, [b"GET"] * 3)


def test_a_post_on_a_connection_the_server_dropped_is_not_sent_again(keep_alive):
    """The server may have acted on a POST it did not answer: sending it again could
    announce a talk twice. The send fails (and the delivery waits for its retry)."""
    server = keep_alive(hang_up_on=frozenset({2}))

    async def post_twice() -> list[int | str]:
        results: list[int | str] = []
        async with new_client(10) as client:
            for _ in range(2):
                try:
                    results.append((await client.post(server.url(), content=b"{}")).status_code)
                except httpx.HTTPError as exc:
                    results.append(type(exc).__name__)
        return results

    assert asyncio.run(post_twice()) == [200, "RemoteProtocolError"]
    assert server.requests == [b"POST", b"POST"]


def test_a_server_that_answers_with_garbage_is_a_protocol_error(raw_server):
    def garbage(conn, stopped) -> None:
        conn.sendall(b"SPDY/9 what\r\n\r\n")

    server = raw_server(garbage)
    with pytest.raises(FetchError, match=r"network error: RemoteProtocolError"):
        fetched(server.url())


def test_a_body_cut_short_is_a_protocol_error_not_a_feed(raw_server):
    def short(conn, stopped) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<rss><channel>")

    server = raw_server(short)
    with pytest.raises(FetchError, match=r"network error: RemoteProtocolError"):
        fetched(server.url())


def test_every_way_an_exchange_ends_gives_its_connection_slot_back(keep_alive, raw_server):
    """With one slot: a slot kept by any of these would leave the client waiting for good
    (here, a PoolTimeout after a second) once enough feeds had failed."""
    good, big = keep_alive(), keep_alive(b"x" * 1_000_000)
    garbage = raw_server(lambda conn, stopped: conn.sendall(b"junk\r\n\r\n"))
    short = raw_server(
        lambda conn, stopped: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n<rss>")
    )
    silent = raw_server(lambda conn, stopped: stopped.wait())
    with socket.create_server(("127.0.0.1", 0)) as closed:
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/"

    async def run() -> bytes:
        one_slot = transport.H11Transport(ssl.create_default_context, max_connections=1)
        timeout = httpx.Timeout(5, pool=1)
        async with httpx.AsyncClient(transport=one_slot, timeout=timeout) as client:
            for url in (garbage.url(), short.url(), refused):
                with contextlib.suppress(httpx.TransportError):
                    await client.get(url)
            async with client.stream("GET", big.url()):
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.get(silent.url()), 0.2)
            return (await client.get(good.url())).content

    assert asyncio.run(run()) == FEED


def test_a_post_after_the_server_closed_the_idle_connection_goes_on_a_new_one(raw_server):
    """A POST is never sent twice, so a connection the server has closed must be seen to
    be closed before a POST is sent on it, not after."""
    closed = threading.Event()

    def answer_and_close(conn, stopped) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conn.close()
        closed.set()

    server = raw_server(answer_and_close)

    async def post_twice() -> list[int]:
        async with new_client(10) as client:
            first = await client.post(server.url(), content=b"{}")
            assert closed.wait(10), "the server did not close the connection"
            second = await client.post(server.url(), content=b"{}")
            return [first.status_code, second.status_code]

    assert asyncio.run(post_twice()) == [200, 200]


def test_bytes_after_an_answer_in_the_same_packet_are_no_next_answer(keep_alive):
    """A 304 that carries a body anyway (h11 keeps what follows its head): read as the
    next answer, they would fail it, or worse, be it."""
    server = keep_alive()
    server.answer = b'HTTP/1.1 304 Not Modified\r\nETag: "1"\r\nContent-Length: 5\r\n\r\nhello'
    assert fetched_each(server.url(), 2, etag='"1"') == [NOT_MODIFIED] * 2
    assert server.connections == 2


def test_bytes_that_come_while_a_connection_is_idle_are_no_next_answer(raw_server):
    """asyncio reads an idle connection on into its buffer: an old answer sent late
    must not be taken for the answer to the next request (it would be a feed's body)."""
    idle_now = threading.Event()

    def answer_then_stray(conn, stopped) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(FEED), FEED))
        if idle_now.wait(10):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n<rss>OLD</rss>")
        stopped.wait()

    server = raw_server(answer_then_stray)

    async def twice() -> list[bytes]:
        async with new_client(10) as client:
            first = await fetch(client, server.url(), max_bytes=1000, deadline=10)
            idle = client._transport._idle
            assert len(idle) == 1, "the connection was not kept"
            idle_now.set()
            for _ in range(5000):  # until the stray bytes are in the stream's buffer
                if idle[0].reader._buffer:
                    break
                await asyncio.sleep(0.001)
            assert idle[0].reader._buffer and not transport.is_readable(idle[0].socket)
            second = await fetch(client, server.url(), max_bytes=1000, deadline=10)
            return [first.body, second.body]

    assert asyncio.run(twice()) == [FEED, FEED]


@pytest.fixture
def two_addresses(monkeypatch) -> list[str]:
    """`dual.test` resolves to the addresses the test puts in the list, in its order."""
    addresses: list[str] = []
    resolve = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in ("dual.test", b"dual.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port))) for a in addresses]
        return resolve(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return addresses


def test_an_address_that_never_answers_gives_way_to_the_next(two_addresses, raw_server):
    """As anyio under httpcore: the next address after 0.25 s, not after the whole
    timeout (a name whose IPv6 address drops every packet would fail every poll)."""
    with contextlib.ExitStack() as stack:
        silent = stack.enter_context(socket.create_server(("127.0.0.4", 0), backlog=0))
        port = silent.getsockname()[1]
        for _ in range(4):  # fill its backlog: the kernel drops the SYNs that follow
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.4", port))
        good = stack.enter_context(socket.create_server(("127.0.0.5", port)))
        threading.Thread(target=_answer_once, args=(good,), daemon=True).start()
        two_addresses[:] = ["127.0.0.4", "127.0.0.5"]

        async def get() -> bytes:
            async with new_client(3) as client:
                url = f"http://dual.test:{port}/feed.xml"
                return (await fetch(client, url, max_bytes=1000, deadline=3)).body

        assert asyncio.run(get()) == FEED


def _answer_once(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        while b"\r\n\r\n" not in conn.recv(65536):
            pass
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(FEED), FEED))


def test_every_address_of_a_name_refusing_is_said_as_refused(two_addresses):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    two_addresses[:] = ["127.0.0.2", "127.0.0.3"]
    with pytest.raises(FetchError, match=r"^connection failed: refused$"):
        fetched(f"http://dual.test:{port}/feed.xml")


def test_a_get_the_server_reset_unread_on_a_kept_connection_goes_again(raw_server):
    """A server that closes with the next request unread resets the connection: the GET
    it never read goes again on a new one."""
    connections: list[int] = []

    def answer_then_reset(conn, stopped) -> None:
        connections.append(1)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(FEED), FEED))
        if len(connections) == 1:
            select.select([conn], [], [], 10)  # the next request came; closed unread: RST

    server = raw_server(answer_then_reset)
    assert fetched_each(server.url(), 2) == [FEED, FEED]
    assert len(connections) == 2


def test_a_tls_connection_given_up_on_is_closed_at_once(tmp_path, monkeypatch):
    """Closed politely, asyncio's TLS waits up to 30 s for the server's reply, its
    socket held: after every timeout, sockets would pile up towards the fd limit."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    hung_up = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        raw, _ = listener.accept()
        with context.wrap_socket(raw, server_side=True) as conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<rss>")
            plain = socket.socket(fileno=os.dup(conn.fileno()))
            with plain:
                while plain.recv(65536):  # TLS records, if any, until the TCP FIN
                    pass
            hung_up.set()

    threading.Thread(target=serve, daemon=True).start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/feed.xml"

    async def give_up_and_wait() -> bool:
        async with new_client(60) as client:
            with pytest.raises(FetchError, match="timed out"):
                await fetch(client, url, max_bytes=100_000, deadline=1)
            for _ in range(1000):  # 10 s, a third of what the polite close would take
                if hung_up.is_set():
                    return True
                await asyncio.sleep(0.01)
            return False

    try:
        assert asyncio.run(give_up_and_wait()), "the client kept the TLS connection open"
    finally:
        listener.close()
