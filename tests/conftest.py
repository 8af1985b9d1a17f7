"""Real servers on 127.0.0.1 for the tests: a feed host with ETag, recording
webhook/Slack endpoints, an SMTP server, a raw TCP server, and the `watcher` command
as a process (with its `status --json` report read back)."""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).parent / "fixtures"
SEED_FEED = FIXTURES / "feeds" / "talks-feed.xml"
REPO = Path(__file__).parent.parent


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


@pytest.fixture
def threaded_httpserver() -> Iterator[HTTPServer]:
    """A second HTTP server, on its own port, answering each request in its own thread:
    a handler that takes its time holds up no other request (`httpserver` answers one at
    a time)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def seed_bytes() -> bytes:
    return SEED_FEED.read_bytes()


def add_talk(feed: bytes, video_id: str, title: str, published: str) -> bytes:
    """The feed with one more talk at the top, shaped like the seed's first item."""
    text = feed.decode()
    items = re.findall(r"<item>.*?</item>", text, flags=re.S)
    template = items[0]
    old_id = re.search(r"embed/([A-Za-z0-9_-]{11})", template).group(1)
    item = template.replace(old_id, video_id).replace(old_id.lower(), video_id.lower())
    item = re.sub(r"<title>.*?</title>", f"<title>{title}</title>", item, count=1)
    item = re.sub(r"<pubDate>.*?</pubDate>", f"<pubDate>{published}</pubDate>", item, count=1)
    start = text.index("<item>")
    return (text[:start] + item + text[start:]).encode()


class FeedHost:
    """Serves a feed whose body the test can change, with ETag/Last-Modified
    and 304 on a matching conditional GET; records every request."""

    def __init__(self, server: HTTPServer, path: str = "/feed.xml") -> None:
        self.server = server
        self.path = path
        self.body = seed_bytes()
        self.status = 200
        self.requests: list[dict[str, str]] = []
        self.responses: list[int] = []
        self.modified = formatdate(1_780_000_000, usegmt=True)
        server.expect_request(path).respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return self.server.url_for(self.path)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'

    def set_body(self, body: bytes) -> None:
        self.body = body
        self.modified = formatdate(1_780_000_000 + len(self.responses) + 1, usegmt=True)

    def _handle(self, request: Request) -> Response:
        self.requests.append(dict(request.headers))
        if self.status != 200:
            self.responses.append(self.status)
            return Response("feed is down", status=self.status)
        if request.headers.get("If-None-Match") == self.etag:
            self.responses.append(304)
            return Response(status=304, headers={"ETag": self.etag})
        self.responses.append(200)
        return Response(
            self.body,
            content_type="application/rss+xml; charset=utf-8",
            headers={"ETag": self.etag, "Last-Modified": self.modified},
        )


@dataclass
class Recorder:
    """An endpoint that records every POST; `statuses` are answered in turn, then 200."""

    server: HTTPServer
    path: str
    statuses: list[int] = field(default_factory=list)
    received: list[dict] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    retry_after: str | None = None

    def __post_init__(self) -> None:
        self.server.expect_request(self.path, method="POST").respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return self.server.url_for(self.path)

    def _handle(self, request: Request) -> Response:
        status = self.statuses.pop(0) if self.statuses else 200
        if status != 200:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return Response("nope", status=status, headers=headers)
        self.times.append(time.monotonic())
        self.raw.append(request.get_data())
        self.received.append(json.loads(self.raw[-1]))
        self.headers.append(dict(request.headers))
        return Response("ok")


@pytest.fixture
def feed_host(httpserver: HTTPServer) -> FeedHost:
    return FeedHost(httpserver)


@pytest.fixture
def webhook(httpserver: HTTPServer) -> Recorder:
    return Recorder(httpserver, "/hook")


@pytest.fixture
def slack(httpserver: HTTPServer) -> Recorder:
    return Recorder(httpserver, "/services/T000/B000/secretslacktoken")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


RawHandler = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """A TCP server on 127.0.0.1, one thread per connection: it reads a request's head,
    then lets `handler(conn, stopped)` write whatever it likes (or nothing) to the socket.
    The client hanging up is what such tests are about: OSErrors are swallowed."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/feed.xml") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            self.handler(conn, self.stopped)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[RawHandler], RawServer]]:
    """`raw_server(handler)` starts a RawServer; all are closed after the test."""
    servers: list[RawServer] = []

    def start(handler: RawHandler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_feed(
    feed_url: str,
    *destinations: str,
    watcher: str = "",
    feed: str = "",
    state: str = "state.json",
) -> str:
    """A config of one feed, `talks`, and these destination tables; `watcher` and `feed`
    are more lines for the [watcher] and [[feeds]] tables."""
    return (
        f'[watcher]\nstate = "{state}"\n{watcher}\n'
        f'[[feeds]]\nname = "talks"\nurl = "{feed_url}"\n{feed}\n' + "\n".join(destinations)
    )


def webhook_table(name: str, url: str, extra: str = "") -> str:
    return f'[[destinations]]\nname = "{name}"\ntype = "webhook"\nurl = "{url}"\n{extra}\n'


def console_table(name: str = "screen") -> str:
    return f'[[destinations]]\nname = "{name}"\ntype = "console"\n'


def write_config(directory: Path, body: str) -> Path:
    path = directory / "watcher.toml"
    path.write_text(body, encoding="utf-8")
    return path


def watcher_command(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run `python -m watcher ARGS` as its own process, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if k != "WATCHER_CONFIG"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_status(cwd: Path, *, env: dict[str, str] | None = None) -> dict:
    """`watcher status --config watcher.toml --json` run in `cwd` as a process: its report."""
    result = watcher_command("status", "--config", "watcher.toml", "--json", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def feed_status(cwd: Path, name: str | None = None, **kwargs) -> dict:
    """The status report of the feed called `name`, or of the first feed."""
    return _named(run_status(cwd, **kwargs)["feeds"], name)


def destination_status(cwd: Path, name: str | None = None, **kwargs) -> dict:
    """The status report of the destination called `name`, or of the first destination."""
    return _named(run_status(cwd, **kwargs)["destinations"], name)


def _named(reports: list[dict], name: str | None) -> dict:
    if name is None:
        return reports[0]
    [report] = [report for report in reports if report["name"] == name]
    return report


class Daemon:
    def __init__(self, cwd: Path, *args: str, new_session: bool = False) -> None:
        self.out = cwd / "daemon.out"
        self.err = cwd / "daemon.err"
        env = {k: v for k, v in os.environ.items() if k != "WATCHER_CONFIG"}
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "watcher", "run", *args],
                cwd=cwd,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=new_session,  # its own process group, to signal as a whole
            )

    @property
    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8")

    @property
    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8")

    def wait_for(self, condition, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                pytest.fail(
                    f"watcher exited ({self.process.returncode}) before {what}:\n{self.stderr}"
                )
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}:\n{self.stderr}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def daemons():
    started: list[Daemon] = []
    yield lambda *a, **k: started.append(Daemon(*a, **k)) or started[-1]
    for daemon in started:
        daemon.kill()
