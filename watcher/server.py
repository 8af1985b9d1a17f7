"""The daemon's HTTP side (`[watcher] listen`): `/healthz`, `/metrics`, `/status.json`
and the status page `/`, served by uvicorn on the daemon's own event loop.

The socket is bound here, before uvicorn starts, so that a port in use is one clear
error at start-up; uvicorn's own signal handling is left out (the daemon has its
own), and so is its logging set-up (its loggers go to the daemon's handlers)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from watcher.errors import WatcherError
from watcher.live import Live
from watcher.metrics import Metrics
from watcher.page import CONTENT_SECURITY_POLICY, render_page

log = logging.getLogger(__name__)


class ListenError(WatcherError):
    """The HTTP side cannot listen where the config says."""


ADMIN_TOKEN_VARIABLE = "WATCHER_ADMIN_TOKEN"


def build_app(
    live: Live,
    metrics: Metrics,
    redeliver: Callable[[str | None], int] | None = None,
    backfill: Callable[[Mapping[str, Any]], Awaitable[int]] | None = None,
) -> Starlette:
    async def healthz(request: Request) -> Response:
        healthy, body = live.health()
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def metrics_text(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def status(request: Request) -> Response:
        return JSONResponse(live.status())

    async def page(request: Request) -> Response:
        headers = {
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        return HTMLResponse(render_page(live.status()), headers=headers)

    async def redeliver_dead(request: Request) -> Response:
        """Admin: re-queue dead letters (`watcher redeliver` through the daemon). Only from
        loopback, or with the token `$WATCHER_ADMIN_TOKEN` names, if it is set."""
        if redeliver is None or not _admin(request):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        try:
            body = await request.json()
        except ValueError:
            body = {}
        destination = body.get("destination") if isinstance(body, dict) else None
        known = live.config.destinations
        if destination is not None and destination not in known:
            error = f"no destination named {destination!r} (destinations: {', '.join(known)})"
            return JSONResponse({"error": error}, status_code=404)
        return JSONResponse({"requeued": redeliver(destination)})

    async def backfill_seen(request: Request) -> Response:
        """Admin: queue seen talks again (`watcher backfill` through the daemon)."""
        if backfill is None or not _admin(request):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        try:
            body = await request.json()
            return JSONResponse({"queued": await backfill(body)})
        except (ValueError, WatcherError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    routes = [
        Route("/redeliver", redeliver_dead, methods=["POST"]),
        Route("/backfill", backfill_seen, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/metrics", metrics_text),
        Route("/status.json", status),
        Route("/", page),
    ]
    return Starlette(routes=routes)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon handles SIGINT, SIGTERM and SIGHUP itself


class HTTPSide:
    """A running server: its address, and how to stop it."""

    def __init__(self, server: _EmbeddedServer, task: asyncio.Task[None], address: str) -> None:
        self.server = server
        self.task = task
        self.address = address

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, timeout=5.0)


async def serve(app: Starlette, host: str, port: int) -> HTTPSide:
    """Listen on host:port (port 0: any free one) and serve `app` until `stop()`."""
    sock = _bind(host, port)
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", log_level="warning"
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # uvicorn says so once it accepts on the socket
        if task.done():
            task.result()
            raise ListenError(f"[watcher] listen {host}:{port}: the HTTP side did not start")
        await asyncio.sleep(0.01)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not _loopback(bound_host):
        log.warning(
            "the HTTP side listens on %s, beyond loopback: anyone who can reach it reads the "
            "status page and metrics",
            bound_host,
        )
    return HTTPSide(server, task, f"http://{shown}:{bound_port}")


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
        sock.listen(128)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ListenError(f"[watcher] listen {host}:{port}: cannot listen: {reason}") from None
    sock.setblocking(False)
    return sock


def _admin(request: Request) -> bool:
    """From loopback, or with the token (never open beyond loopback without one)."""
    if request.client is not None and _loopback(request.client.host):
        return True
    token = os.environ.get(ADMIN_TOKEN_VARIABLE)
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
