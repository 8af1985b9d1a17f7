"""httpx's transport for feeds and destinations: HTTP/1.1 by h11 over asyncio's streams.

A poll is mostly requests to a few hosts, and on a busy one the event loop is what the
watcher waits for. httpcore's pool, over anyio, spent most of a request's CPU on itself:
it scans every queued request against every connection each time one is assigned,
checks idle connections through anyio's streams several times a request, reads 64 KB
at a step, and puts each read in a cancel scope. Over loopback, 16 at a time, with
httpx's own transport and with this one: 200 conditional GETs (all 304), 0.37-0.51 s
of CPU and 0.08 s; 200 feeds of 1.2 MB, 0.71 s and 0.32-0.38 s. httpx's client around
either costs 0.02 s for 200 requests.

What it keeps of httpcore's behaviour, and the tests hold it to (`tests/test_transport.py`):
a connection is reused only while its exchange ended cleanly with nothing after the
answer, within `KEEPALIVE_SECONDS`, and while the server has sent nothing since (nor
closed it); a reused connection found closed or reset before any byte of the answer came
is replaced once for a GET or HEAD (never for a POST: the server may have acted on it);
the addresses of a name are tried as anyio tries them (the next after 0.25 s); a
connection given up on is aborted, not closed politely; timeouts (connect, read, write,
pool) and failures are httpx's exceptions, with the `OSError` or `ssl.SSLError` behind
them as their cause.

Not here: proxies (a client made while the environment names one is httpx's own, see
`watcher.fetch.new_client`), HTTP/2, Unix sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import httpx

READ_BYTES = 256 * 1024
KEEPALIVE_SECONDS = 5.0
MAX_CONNECTIONS = 100
MAX_IDLE = 20
RETRIED_METHODS = frozenset({b"GET", b"HEAD"})
HAPPY_EYEBALLS_SECONDS = 0.25

Origin = tuple[bytes, bytes, int]


def is_readable(sock: socket.socket | None) -> bool:
    """Whether a read would not block: data, or the end of the stream. No socket, or a
    closed one, counts as readable: its next read is the end."""
    fileno = -1 if sock is None else sock.fileno()
    if fileno < 0:
        return True
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))


class _Stale(Exception):
    """A reused connection ended before any byte of the answer: the server had closed it."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    origin: Origin
    protocol: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0

    @property
    def socket(self) -> socket.socket | None:
        sock: socket.socket | None = self.writer.get_extra_info("socket")
        return sock

    def still_open(self) -> bool:
        """Nothing has come since its last answer: no end of stream, no stray bytes (in
        the socket, or already in the stream's buffer: asyncio reads on while it is idle,
        and bytes there would be read as the next answer)."""
        return not (
            self.reader.at_eof()
            or getattr(self.reader, "_buffer", None)
            or self.writer.is_closing()
            or is_readable(self.socket)
        )

    def ended_cleanly(self) -> bool:
        """The answer read to its end and nothing after it: a 304 or a HEAD with a body,
        or a body longer than it said, leaves bytes that would be the next answer."""
        protocol = self.protocol
        return (
            protocol.our_state is h11.DONE
            and protocol.their_state is h11.DONE
            and protocol.trailing_data == (b"", False)
        )

    def close(self) -> None:
        """At once: a TLS stream closed politely waits up to 30 s for the server's reply,
        holding its socket, after every timeout or answer given up on."""
        self.writer.transport.abort()


class H11Transport(httpx.AsyncBaseTransport):
    """Keep-alive connections per origin, at most `max_connections` in use at once."""

    def __init__(
        self,
        ssl_context: Callable[[], ssl.SSLContext],
        max_connections: int = MAX_CONNECTIONS,
        max_idle: int = MAX_IDLE,
    ) -> None:
        self._make_ssl_context = ssl_context
        self._ssl_context: ssl.SSLContext | None = None
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle
        self._idle: list[_Connection] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        origin = _origin(request.url)
        await _within(timeouts.get("pool"), self._slots.acquire(), httpx.PoolTimeout, request)
        connection: _Connection | None = None
        try:
            connection = self._idle_connection(origin)
            if connection is not None:
                try:
                    return await self._exchange(connection, request, timeouts, reused=True)
                except _Stale:
                    connection.close()
            connection = await self._connect(origin, timeouts.get("connect"), request)
            return await self._exchange(connection, request, timeouts, reused=False)
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        """The most recently used open connection to `origin`; those expired, and any to
        `origin` found closed on the way, are let go."""
        now = asyncio.get_running_loop().time()
        kept: list[_Connection] = []
        found: _Connection | None = None
        for connection in reversed(self._idle):
            if now - connection.idle_since > KEEPALIVE_SECONDS:
                connection.close()
            elif found is None and connection.origin == origin:
                if connection.still_open():
                    found = connection
                else:
                    connection.close()
            else:
                kept.append(connection)
        kept.reverse()
        self._idle = kept
        return found

    def _release(self, connection: _Connection) -> None:
        """The exchange is over, its answer read or given up on."""
        self._slots.release()
        if not connection.ended_cleanly():
            connection.close()
            return
        connection.protocol.start_next_cycle()
        connection.idle_since = asyncio.get_running_loop().time()
        self._idle.append(connection)
        if len(self._idle) > self._max_idle:
            self._idle.pop(0).close()

    async def _connect(
        self, origin: Origin, timeout: float | None, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == b"https":
            if self._ssl_context is None:
                self._ssl_context = self._make_ssl_context()
            tls = self._ssl_context
        name = host.decode("ascii")
        # As anyio does for httpcore: the next address is tried after 0.25 s, not after
        # the first has used the whole timeout (an IPv6 address that drops every packet).
        opening = asyncio.open_connection(
            name,
            port,
            ssl=tls,
            server_hostname=name if tls else None,
            limit=READ_BYTES,
            happy_eyeballs_delay=HAPPY_EYEBALLS_SECONDS,
            interleave=1,
            **({"all_errors": True} if sys.version_info >= (3, 12) else {}),
        )
        try:
            reader, writer = await _within(timeout, opening, httpx.ConnectTimeout, request)
        except (OSError, ExceptionGroup) as exc:
            # Python 3.11 says only "Multiple exceptions: ..." when every address failed;
            # 3.12 gives them all, for `watcher.fetch` to find why.
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return _Connection(reader, writer, origin)

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        timeouts: dict[str, float | None],
        reused: bool,
    ) -> httpx.Response:
        may_retry = reused and request.method.encode("ascii") in RETRIED_METHODS
        await self._send(connection, request, timeouts.get("write"), may_retry)
        protocol = connection.protocol
        read_timeout = timeouts.get("read")
        while True:
            event = _next_event(protocol, request)
            if event is h11.NEED_DATA:
                try:
                    data = await _read(connection, read_timeout, request)
                except httpx.ReadError as exc:
                    # A server that closed with our request unread resets the connection
                    if may_retry and isinstance(exc.__cause__, ConnectionResetError):
                        raise _Stale from exc
                    raise
                if not data and may_retry and protocol.their_state is h11.SEND_RESPONSE:
                    raise _Stale
                protocol.receive_data(data)
            elif isinstance(event, h11.Response):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                )
        stream = _Body(self, connection, read_timeout, request)
        return httpx.Response(
            event.status_code,
            headers=event.headers.raw_items(),
            stream=stream,
            extensions={
                "http_version": b"HTTP/" + event.http_version,
                "reason_phrase": event.reason,
            },
        )

    async def _send(
        self,
        connection: _Connection,
        request: httpx.Request,
        timeout: float | None,
        may_retry: bool,
    ) -> None:
        protocol = connection.protocol
        head = h11.Request(
            method=request.method, target=request.url.raw_path, headers=request.headers.raw
        )
        try:
            pieces = [protocol.send(head)]
            assert isinstance(request.stream, httpx.AsyncByteStream)
            async for chunk in request.stream:
                pieces.append(protocol.send(h11.Data(data=chunk)))
            pieces.append(protocol.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        try:
            connection.writer.write(b"".join(piece for piece in pieces if piece))
            await _within(timeout, connection.writer.drain(), httpx.WriteTimeout, request)
        except OSError as exc:
            if may_retry:
                raise _Stale from exc
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc


class _Body(httpx.AsyncByteStream):
    """An answer's body as it arrives; closing it gives the connection back."""

    def __init__(
        self,
        transport: H11Transport,
        connection: _Connection,
        read_timeout: float | None,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._read_timeout = read_timeout
        self._request = request
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        protocol = self._connection.protocol
        while True:
            event = _next_event(protocol, self._request)
            if event is h11.NEED_DATA:
                data = await _read(self._connection, self._read_timeout, self._request)
                protocol.receive_data(data)
            elif isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            _read_what_came(self._connection.protocol)
            self._transport._release(self._connection)


def _read_what_came(protocol: h11.Connection) -> None:
    """The rest of an answer closed unread, as far as it has arrived: a 304's end, or a
    small body's, is usually here already, and with it the connection can be kept."""
    with contextlib.suppress(h11.RemoteProtocolError):
        while protocol.their_state is h11.SEND_BODY and protocol.next_event() is not h11.NEED_DATA:
            pass


def _origin(url: httpx.URL) -> Origin:
    scheme = url.raw_scheme
    if scheme not in (b"http", b"https"):
        raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}'")
    port = url.port or (443 if scheme == b"https" else 80)
    return scheme, url.raw_host, port


async def _within(
    seconds: float | None,
    awaitable: Any,
    timeout_error: type[httpx.TimeoutException],
    request: httpx.Request,
) -> Any:
    if seconds is None:
        return await awaitable
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise timeout_error(f"timed out after {seconds:g}s", request=request) from None


async def _read(connection: _Connection, timeout: float | None, request: httpx.Request) -> bytes:
    try:
        data: bytes = await _within(
            timeout, connection.reader.read(READ_BYTES), httpx.ReadTimeout, request
        )
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    return data


def _next_event(protocol: h11.Connection, request: httpx.Request) -> Any:
    try:
        return protocol.next_event()
    except h11.RemoteProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
