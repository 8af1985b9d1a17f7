"""Get a feed's bytes: conditional GET over HTTP, or a local file. I/O only.

Every failure is a `FetchError` whose message is one line saying what went
wrong (connection, timeout, TLS, HTTP status, too large); it never includes
the response body.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import itertools
import logging
import re
import socket
import ssl
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import getproxies

import httpx

from watcher import __version__
from watcher.errors import WatcherError
from watcher.httputil import parse_retry_after
from watcher.transport import H11Transport

log = logging.getLogger(__name__)

USER_AGENT = f"watcher/{__version__}"
MAX_REDIRECTS = 5
MAX_ENCODINGS = 3  # layers of Content-Encoding undone; nobody needs more than two
INFLATE_CHUNK = 64 * 1024  # the most one decompression step may produce

_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
GZIP_MAGIC = b"\x1f\x8b"
_NOT_GZIP = "a gzip-compressed file that does not decompress"
_DNS_HINTS = (
    "Name or service not known",
    "nodename nor servname",
    "getaddrinfo",
    "Temporary failure in name resolution",
)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


class FetchError(WatcherError):
    """The feed could not be read this time; `retry_after` is the server's hint, if any.
    See `watcher.errors` for the tree."""

    permanent = False  # whether it will fail the same way until something changes
    # Set when the failure came after the feed found on the feed's page was forgotten
    # (`watcher.resolve`): the failed poll records that it was.
    forgot_discovered = False

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class FeedRefused(FetchError):
    """It will not be read until something changes (its URL, the server, the cap)."""

    permanent = True


class FeedGone(FeedRefused):
    """410 Gone."""


class NotAFeedError(FeedRefused):
    """What was fetched is no RSS or Atom feed."""


def http_error(status: int, reason: str, retry_after: float | None) -> FetchError:
    """The error of an HTTP status a feed answered with: 408, 429 and 5xx are passing."""
    message = f"HTTP {status} {_one_line(reason, 100)}".rstrip()
    if status == 410:
        return FeedGone(message, retry_after, status)
    if status in (408, 429) or status >= 500:
        return FetchError(message, retry_after, status)
    return FeedRefused(message, retry_after, status)


@dataclass(frozen=True)
class Fetched:
    """A fetched body, or `not_modified` when the server answered 304."""

    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    permanent_redirect: str | None = None
    url: str | None = None  # where the body came from, after redirects

    @functools.cached_property
    def sha256(self) -> str:
        """Computed once: a poll compares it and stores it, and a body can be 20 MB."""
        return hashlib.sha256(self.body).hexdigest()


def is_local(source: str) -> bool:
    return urlsplit(source).scheme.lower() not in ("http", "https")


def new_client(timeout: float) -> httpx.AsyncClient:
    """The client of feeds and destinations. Each read may take the whole `timeout` (a
    feed's total deadline is kept by `fetch`): a server that thinks for 15 s before it
    answers is slow, not down.

    Its requests go through `watcher.transport`, unless the environment names a proxy
    (`HTTP_PROXY`, `NO_PROXY` and the like, as httpx reads them): then through httpx's
    own transports, which know proxies."""
    settings: dict[str, Any] = {
        "headers": {"User-Agent": USER_AGENT},
        "timeout": httpx.Timeout(timeout),
        "follow_redirects": True,
        "max_redirects": MAX_REDIRECTS,
    }
    if getproxies():
        return httpx.AsyncClient(**settings)
    return httpx.AsyncClient(transport=H11Transport(_ssl_context), **settings)


def _ssl_context() -> ssl.SSLContext:
    """httpx's: certifi's authorities, or those `SSL_CERT_FILE` or `SSL_CERT_DIR` name."""
    return httpx.create_ssl_context(trust_env=True)


async def fetch(
    client: httpx.AsyncClient,
    source: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int,
    deadline: float,
) -> Fetched:
    if is_local(source):
        return await asyncio.to_thread(read_local, source, max_bytes)
    headers = {
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, "
        "text/xml;q=0.9, */*;q=0.5",
        # Only what _inflate undoes in bounded steps (httpx would add br or zstd if installed).
        "Accept-Encoding": "gzip, deflate",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with asyncio.timeout(deadline):
            return await _get(client, source, headers, max_bytes)
    except TimeoutError:
        raise FetchError(f"timed out after {deadline:g}s") from None
    except httpx.TooManyRedirects:
        raise FeedRefused(f"too many redirects (more than {MAX_REDIRECTS}, or a loop)") from None
    except httpx.UnsupportedProtocol as exc:
        raise FeedRefused(f"redirected to a URL that is not HTTP: {_first_line(exc)}") from None
    except httpx.ConnectError as exc:
        raise FetchError(_connect_reason(exc)) from None
    except httpx.TimeoutException:
        raise FetchError("timed out waiting for the server") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"network error: {type(exc).__name__}: {_first_line(exc)}") from None


async def _get(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], max_bytes: int
) -> Fetched:
    async with client.stream("GET", url, headers=headers) as response:
        moved = _permanently_moved_to(response)
        if response.status_code == 304:
            return Fetched(
                b"",
                etag=response.headers.get("etag") or headers.get("If-None-Match"),
                last_modified=response.headers.get("last-modified")
                or headers.get("If-Modified-Since"),
                not_modified=True,
                permanent_redirect=moved,
                url=str(response.url),
            )
        if not response.is_success:
            raise http_error(
                response.status_code,
                response.reason_phrase,
                _retry_after(response.headers.get("retry-after")),
            )
        return Fetched(
            await _read_body(response, max_bytes),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            permanent_redirect=moved,
            url=str(response.url),
        )


def _permanently_moved_to(response: httpx.Response) -> str | None:
    """Where the leading permanent redirects (301, 308) lead: the URL the config should name.

    A temporary hop ends the run: what lies behind it may move back.
    """
    hops = [*response.history, response]
    target = None
    for hop, after in itertools.pairwise(hops):
        if hop.status_code not in (301, 308):
            break
        target = str(after.url)
    return target


async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """The body, decompressed here in bounded steps and cut off at `max_bytes`.

    Not `aiter_bytes()`: httpx inflates each network chunk in one call, so a few KB
    of stacked gzip would become gigabytes in memory before any cap could look.
    The bytes received are capped too: they bound the work (a stream can be junk that
    inflates to nothing), and a feed's gzip is never much bigger than the feed.
    The pieces are joined once at the end: a growing bytearray is copied as it grows,
    which with many large bodies in flight cost a third of the fetch.
    """
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise FeedRefused(f"too large: {int(declared)} bytes, over the {max_bytes}-byte cap")
    layers = _inflaters(response.headers.get("content-encoding", ""))
    pieces: list[bytes] = []
    size = received = 0
    async for data in response.aiter_raw():
        received += len(data)
        for piece in _inflate(layers, data):
            pieces.append(piece)
            size += len(piece)
            if size > max_bytes:
                break
        if size > max_bytes or received > max_bytes:
            raise FeedRefused(f"too large: over the {max_bytes}-byte cap")
    return gunzipped(b"".join(pieces), max_bytes)


def gunzipped(body: bytes, max_bytes: int) -> bytes:
    """The body decompressed if it is gzip (a `.xml.gz` file, or a server that gzips without
    saying so in Content-Encoding), in bounded steps up to `max_bytes`; else as it is."""
    if not body.startswith(GZIP_MAGIC):
        return body
    layer = _Inflater("gzip", _NOT_GZIP)
    inflated = bytearray()
    for piece in layer.feed(body):
        inflated += piece
        if len(inflated) > max_bytes:
            raise FeedRefused(f"too large: over the {max_bytes}-byte cap once decompressed")
    if not layer.inflater.eof:
        raise FetchError(f"{_NOT_GZIP}: it is cut off before its end")
    log.debug("the body was gzip-compressed (not said in a Content-Encoding): decompressed")
    return bytes(inflated)


class _Inflater:
    """One gzip or deflate layer that never yields more than INFLATE_CHUNK bytes at once."""

    def __init__(self, encoding: str, what: str = "") -> None:
        self.encoding = encoding
        self.what = what or f"bad {encoding} body"  # how a stream that is not this is named
        self.inflater = zlib.decompressobj(_WBITS[encoding])
        self.started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self.inflater.eof:  # after the end, the rest is ignored (as httpx does)
            piece = self._step(data)
            if piece:
                yield piece
            tail = self.inflater.unconsumed_tail
            if not tail and len(piece) < INFLATE_CHUNK:
                return  # all input used and all output given
            if not piece and len(tail) == len(data):
                return  # no progress: never spin
            data = tail

    def _step(self, data: bytes) -> bytes:
        first, self.started = not self.started, True
        try:
            try:
                return self.inflater.decompress(data, INFLATE_CHUNK)
            except zlib.error:
                if self.encoding != "deflate" or not first:
                    raise
                self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw, no zlib header
                return self.inflater.decompress(data, INFLATE_CHUNK)
        except zlib.error as exc:
            raise FetchError(f"{self.what}: {_first_line(exc)}") from None


def _inflaters(content_encoding: str) -> list[_Inflater]:
    """One inflater per listed encoding, outermost (listed last) first."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    unknown = [c for c in codings if c not in _WBITS]
    if unknown:
        raise FeedRefused(f"unsupported Content-Encoding: {_one_line(unknown[0], 40)}")
    if len(codings) > MAX_ENCODINGS:
        raise FeedRefused(f"too many Content-Encodings ({len(codings)})")
    return [_Inflater(coding) for coding in reversed(codings)]


def _inflate(layers: list[_Inflater], data: bytes) -> Iterator[bytes]:
    if not layers:
        if data:
            yield data
        return
    for piece in layers[0].feed(data):
        yield from _inflate(layers[1:], piece)


def read_local(source: str, max_bytes: int) -> Fetched:
    """A local path (or file:// URL); its modification time stands in for Last-Modified."""
    path = Path(unquote(urlsplit(source).path) if source.startswith("file:") else source)
    try:
        stat = path.stat()
        modified = formatdate(stat.st_mtime, usegmt=True)
        if stat.st_size > max_bytes:
            raise FeedRefused(f"too large: {stat.st_size} bytes, over the {max_bytes}-byte cap")
        with path.open("rb") as handle:
            body = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise FeedRefused(f"no such file: {path}") from None
    except IsADirectoryError:
        raise FeedRefused(f"is a folder, not a feed file: {path}") from None
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror}") from None
    if len(body) > max_bytes:
        raise FeedRefused(f"too large: over the {max_bytes}-byte cap")
    return Fetched(gunzipped(body, max_bytes), last_modified=modified, url=source)


def _retry_after(value: str | None) -> float | None:
    try:
        return parse_retry_after(value)
    except (ValueError, OverflowError):  # e.g. "²", which str.isdigit() accepts
        return None


def _connect_reason(exc: httpx.ConnectError) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {getattr(cause, 'reason', None) or _first_line(cause)}"
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed: {_first_line(cause)}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection failed: refused"
    text = _first_line(exc)
    # Python 3.11, every address of a name refused: "Multiple exceptions: [Errno 111] ..."
    refusals = re.findall(r"\[Errno (\d+)\]", text)
    if refusals and all(int(number) == errno.ECONNREFUSED for number in refusals):
        return "connection failed: refused"
    if any(hint in text for hint in _DNS_HINTS):
        return f"DNS lookup failed: {text}"
    return f"connection failed: {text or type(exc).__name__}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions behind `exc`, through causes, contexts and exception groups."""
    pending, seen = [exc], set[int]()
    while pending and len(seen) < 50:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions


def _first_line(exc: BaseException) -> str:
    return _one_line(str(exc), 200)


def _one_line(text: str, limit: int) -> str:
    """Server-supplied text made safe for a log line: no line breaks or control characters."""
    return " ".join(_UNPRINTABLE.sub(" ", text).split())[:limit]
