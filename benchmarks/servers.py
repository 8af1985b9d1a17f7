"""The servers the benchmark talks to, all on 127.0.0.1 and all stopped by `close()`.

- `NginxFeeds`: nginx in the foreground as a child process, with its own config,
  pid and log files in the temp folder (ETag, Last-Modified and 304 are nginx's own).
- `PythonFeeds`: the fallback, a ThreadingHTTPServer with the same conditional GET.
- `WebhookSink`: counts POSTs and answers 200.
- `SmtpSink`: counts messages (aiosmtpd), for the optional rss2email run.

Both feed servers count the answers per client (the first word of its User-Agent)
and status, so a phase can show that steady really was all 304.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, alive: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server exited while starting")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {seconds:g}s")


def client_name(user_agent: str) -> str:
    return (user_agent.split("/", 1)[0].split() or ["-"])[0]


class NginxFeeds:
    """nginx serving `root` on 127.0.0.1, logging `status "user-agent"` per request."""

    CONFIG = """\
worker_processes 1;
daemon off;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format bench '$status "$http_user_agent"';
    access_log {home}/access.log bench;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    types {{ application/rss+xml xml; }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen {host}:{port};
        root {root};
    }}
}}
"""

    def __init__(self, binary: str, root: Path, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        # Workers run as an unprivileged user when nginx starts as root: let them read.
        for folder in (home.parent, root):
            folder.chmod(0o755)
        self.home = home
        self.port = free_port()
        config = home / "nginx.conf"
        config.write_text(self.CONFIG.format(home=home, host=HOST, port=self.port, root=root))
        self.version = _nginx_version(binary)
        self.name = f"nginx {self.version}"
        self.log = home / "access.log"
        stderr = (home / "stderr.log").open("wb")
        command = [binary, "-p", str(home), "-c", str(config), "-e", str(home / "error.log")]
        self.process = subprocess.Popen(command, stdout=stderr, stderr=stderr)
        try:
            wait_for_port(self.port, lambda: self.process.poll() is None)
        except RuntimeError as exc:
            self.close()
            errors = (home / "error.log").read_text(errors="replace")[-500:]
            raise RuntimeError(f"nginx did not start: {exc}: {errors}") from None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def counts(self) -> Counter:
        """(client, status) → requests, since the server started."""
        result: Counter = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            status, _, agent = line.partition(" ")
            result[(client_name(agent.strip('"')), int(status))] += 1
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish, then exit
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _nginx_version(binary: str) -> str:
    result = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    return (result.stderr or result.stdout).strip().rpartition("/")[2] or "?"


class _FeedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as nginx
    disable_nagle_algorithm = True  # as nginx (tcp_nodelay): no 40 ms delayed-ACK stalls
    server: _FeedServer

    def do_GET(self) -> None:
        path = self.server.root / os.path.basename(self.path.split("?", 1)[0])
        try:
            handle = path.open("rb")
        except OSError:
            return self._answer(404, {})
        with handle:
            stat = os.fstat(handle.fileno())
            validators = {
                "ETag": f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"',
                "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            }
            if self._not_modified(validators["ETag"], int(stat.st_mtime)):
                return self._answer(304, validators)
            headers = {**validators, "Content-Type": "application/rss+xml"}
            self._answer(200, headers, length=stat.st_size)
            self.connection.sendfile(handle)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        """RFC 9110: If-None-Match decides when present, else If-Modified-Since."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return etag in [tag.strip() for tag in if_none_match.split(",")]
        since = self.headers.get("If-Modified-Since")
        try:
            return since is not None and mtime <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False

    def _answer(self, status: int, headers: dict[str, str], length: int = 0) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.server.count(self.headers.get("User-Agent", ""), status)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    """A client closing its keep-alive connection (the watcher exiting) is no error."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _FeedServer(_QuietServer):
    request_queue_size = 256

    def __init__(self, root: Path) -> None:
        super().__init__((HOST, 0), _FeedHandler)
        self.root = root
        self.tally: Counter = Counter()
        self.lock = threading.Lock()

    def count(self, user_agent: str, status: int) -> None:
        with self.lock:
            self.tally[(client_name(user_agent), status)] += 1


class PythonFeeds:
    """The fallback feed server: ThreadingHTTPServer in a thread of this process."""

    def __init__(self, root: Path, why: str) -> None:
        self.name = f"python http.server (ThreadingHTTPServer; {why})"
        self.server = _FeedServer(root)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def counts(self) -> Counter:
        with self.server.lock:
            return Counter(self.server.tally)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_feed_server(root: Path, home: Path) -> NginxFeeds | PythonFeeds:
    binary = shutil.which("nginx")
    if binary:
        return NginxFeeds(binary, root, home)
    return PythonFeeds(root, "nginx is not on PATH")


class _SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's
    # delayed ACK, 40 ms per POST, which would be timed as the watcher's.
    disable_nagle_algorithm = True
    server: _SinkServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _SinkServer(_QuietServer):
    def __init__(self) -> None:
        super().__init__((HOST, 0), _SinkHandler)
        self.posts = 0
        self.lock = threading.Lock()

    def received(self) -> None:
        with self.lock:
            self.posts += 1


class WebhookSink:
    """A webhook receiver on 127.0.0.1 that counts POSTs and answers 200."""

    def __init__(self) -> None:
        self.server = _SinkServer()
        self.url = f"http://{HOST}:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def posts(self) -> int:
        with self.server.lock:
            return self.server.posts

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """An SMTP server on 127.0.0.1 (aiosmtpd) that counts the messages it is given."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller  # only the rss2email comparison needs it

        self.messages = 0
        self.port = free_port()
        self.controller = Controller(self, hostname=HOST, port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages += 1
        return "250 OK"

    def close(self) -> None:
        self.controller.stop()
