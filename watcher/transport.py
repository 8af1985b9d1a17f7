"""httpx's transport, its connections read in larger steps and their sockets looked up once.

The event loop fetches every feed and sends every message, and on a busy poll it is
what the watcher waits for. Two costs of httpcore over anyio were most of a fetch:

- httpcore reads 64 KB at a time, and each read passes through h11, httpcore, httpx
  and anyio (a cancel scope for its timeout): a 1.2 MB feed took 19 of them. Reading
  up to 256 KB, it takes 5.
- httpcore's pool asks each idle connection whether the server has closed it, several
  times a request; through anyio's streams each ask builds the stream's whole table of
  attributes to find its socket.

200 feeds of 1.2 MB, 16 at a time over loopback: 3.7 ms of CPU a feed, 2.4 ms with
both (as fast as a stream on asyncio of our own). Connecting, TLS, timeouts and their
errors stay anyio's; requests through a proxy (`HTTP_PROXY` and the like) go as httpx
sends them.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

READ_BYTES = 256 * 1024

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def is_readable(sock: socket.socket | None) -> bool:
    """Whether a read would not block: data, or the end of the stream. No socket, or a
    closed one, counts as readable: its next read is the end."""
    fileno = -1 if sock is None else sock.fileno()
    if fileno < 0:
        return True
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))


class KnownSocketStream(httpcore.AsyncNetworkStream):
    """An anyio stream of httpcore's, read `READ_BYTES` at a time, its socket found once."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max(max_bytes, READ_BYTES), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return KnownSocketStream(
            await self._stream.start_tls(ssl_context, server_hostname, timeout)
        )

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return is_readable(self._socket)
        return self._stream.get_extra_info(info)


class KnownSocketBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, its streams made `KnownSocketStream`s."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return KnownSocketStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        return KnownSocketStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def with_known_sockets(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, the pool of its own transport on `KnownSocketBackend` (a proxy's, from
    the environment, stays as httpx made it). httpx takes no backend: the pool's is set
    before it makes its first connection, and left as it is should a version of httpx
    keep it elsewhere."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if type(pool) is httpcore.AsyncConnectionPool and isinstance(
        getattr(pool, "_network_backend", None), httpcore.AsyncNetworkBackend
    ):
        pool._network_backend = KnownSocketBackend()
    return client
