"""Get a feed's bytes: conditional GET over HTTP, or a local file. I/O only.

Every failure is a `FetchError` whose message is one line saying what went
wrong (connection, timeout, TLS, HTTP status, too large); it never includes
the response body.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from watcher import __version__
from watcher.httputil import parse_retry_after

log = logging.getLogger(__name__)

USER_AGENT = f"watcher/{__version__}"
MAX_REDIRECTS = 5


class FetchError(Exception):
    """The feed could not be fetched; `retry_after` is the server's hint, if any."""

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class Fetched:
    """A fetched body, or `not_modified` when the server answered 304."""

    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    permanent_redirect: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def is_local(source: str) -> bool:
    return urlsplit(source).scheme.lower() not in ("http", "https")


def new_client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(min(timeout, 10.0)),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
    )


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
        "text/xml;q=0.9, */*;q=0.5"
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
        raise FetchError(f"too many redirects (more than {MAX_REDIRECTS}, or a loop)") from None
    except httpx.ConnectError as exc:
        raise FetchError(_connect_reason(exc)) from None
    except httpx.TimeoutException:
        raise FetchError("timed out waiting for the server") from None
    except httpx.TransportError as exc:
        raise FetchError(f"network error: {type(exc).__name__}: {_first_line(exc)}") from None


async def _get(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], max_bytes: int
) -> Fetched:
    async with client.stream("GET", url, headers=headers) as response:
        permanent = any(r.status_code in (301, 308) for r in response.history)
        moved = str(response.url) if permanent else None
        if response.status_code == 304:
            return Fetched(
                b"",
                etag=response.headers.get("etag") or headers.get("If-None-Match"),
                last_modified=response.headers.get("last-modified")
                or headers.get("If-Modified-Since"),
                not_modified=True,
                permanent_redirect=moved,
            )
        if not response.is_success:
            raise FetchError(
                f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                status=response.status_code,
            )
        declared = response.headers.get("content-length")
        if (
            declared
            and declared.isdigit()
            and int(declared) > max_bytes
            and not response.headers.get("content-encoding")
        ):
            raise FetchError(f"too large: {declared} bytes, over the {max_bytes}-byte cap")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"too large: over the {max_bytes}-byte cap")
            chunks.append(chunk)
        return Fetched(
            b"".join(chunks),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            permanent_redirect=moved,
        )


def read_local(source: str, max_bytes: int) -> Fetched:
    """A local path (or file:// URL); its modification time stands in for Last-Modified."""
    path = Path(unquote(urlsplit(source).path) if source.startswith("file:") else source)
    try:
        stat = path.stat()
        modified = formatdate(stat.st_mtime, usegmt=True)
        if stat.st_size > max_bytes:
            raise FetchError(f"too large: {stat.st_size} bytes, over the {max_bytes}-byte cap")
        with path.open("rb") as handle:
            body = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise FetchError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise FetchError(f"is a folder, not a feed file: {path}") from None
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror}") from None
    if len(body) > max_bytes:
        raise FetchError(f"too large: over the {max_bytes}-byte cap")
    return Fetched(body, last_modified=modified)


def _connect_reason(exc: httpx.ConnectError) -> str:
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {getattr(cause, 'reason', None) or _first_line(cause)}"
        cause = cause.__cause__ or cause.__context__
    text = _first_line(exc)
    if (
        "Name or service not known" in text
        or "nodename nor servname" in text
        or ("getaddrinfo" in text)
        or "Temporary failure in name resolution" in text
    ):
        return f"DNS lookup failed: {text}"
    return f"connection failed: {text or type(exc).__name__}"


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
