"""`watcher poll` delivers while it polls: a talk goes out as soon as its feed is read,
not after the slowest feed; a destination that is down is not tried again in the run;
one connection carries a destination's messages."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from werkzeug import Request, Response

from tests.conftest import (
    FeedHost,
    add_talk,
    destination_status,
    one_feed,
    watcher_command,
    webhook_table,
)
from tests.conftest import write_config as write

NEW = ("NeWtAlK0001", "A new talk | Someone | Somewhere", "Wed, 10 Jun 2026 00:00:00 +0000")
OTHER = ("NeWtAlK0002", "Another talk | Someone | Somewhere", "Thu, 11 Jun 2026 00:00:00 +0000")


def config(quick: str, slow: str, hook: str) -> str:
    return f"""
[watcher]
state = "state.json"
timeout = "60s"

[[feeds]]
name = "quick"
url = "{quick}"

[[feeds]]
name = "slow"
url = "{slow}"

[[destinations]]
name = "hook"
type = "webhook"
url = "{hook}"
"""


class HeldFeed:
    """A feed that, once held, answers only after `release` is set (or `most` seconds);
    it says which it was."""

    def __init__(self, server, body: bytes, release: threading.Event, most: float) -> None:
        self.body = body
        self.release = release
        self.most = most
        self.held = False
        self.released_by_event: bool | None = None
        self.pause_after_release = 0.0
        server.expect_request("/slow.xml").respond_with_handler(self._handle)
        self.url = server.url_for("/slow.xml")

    def _handle(self, request: Request) -> Response:
        if self.held:
            self.released_by_event = self.release.wait(self.most)
            time.sleep(self.pause_after_release)  # a slow feed: the scenario, not a wait
        return Response(self.body, content_type="application/rss+xml")


def test_a_talk_is_delivered_while_a_slower_feed_is_still_being_fetched(
    tmp_path, threaded_httpserver
):
    quick = FeedHost(threaded_httpserver, "/quick.xml")
    posted = threading.Event()
    received: list[dict] = []

    def hook(request: Request) -> Response:
        received.append(json.loads(request.get_data()))
        posted.set()
        return Response("ok")

    threaded_httpserver.expect_request("/hook", method="POST").respond_with_handler(hook)
    slow = HeldFeed(threaded_httpserver, quick.body, posted, most=20)
    write(tmp_path, config(quick.url, slow.url, threaded_httpserver.url_for("/hook")))
    first = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr

    quick.set_body(add_talk(quick.body, *NEW))
    slow.held = True
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p["talk"]["video_id"] for p in received] == [NEW[0]]
    assert slow.released_by_event, "the slow feed was answered before the talk was delivered"


def test_a_destination_down_is_not_tried_again_in_the_run_however_long_the_polls_take(
    tmp_path, threaded_httpserver
):
    """Its two failures in a row say it is down; the talks queued after that, by a feed
    read after its probe would be due, wait for the next run."""
    quick = FeedHost(threaded_httpserver, "/quick.xml")
    failures = threading.Event()
    attempts: list[float] = []

    def failing(request: Request) -> Response:
        attempts.append(time.monotonic())
        if len(attempts) >= 2:
            failures.set()
        return Response("busy", status=500)

    threaded_httpserver.expect_request("/hook", method="POST").respond_with_handler(failing)
    slow = HeldFeed(threaded_httpserver, quick.body, failures, most=20)
    write(tmp_path, config(quick.url, slow.url, threaded_httpserver.url_for("/hook")))
    first = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr

    quick.set_body(add_talk(add_talk(quick.body, *NEW), *OTHER))
    slow.body = add_talk(slow.body, "NeWtAlK0003", "Third | Someone | Here", OTHER[2])
    slow.held = True
    slow.pause_after_release = 3.0  # past the first probe (2 s, jittered by a fifth)
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert slow.released_by_event, "the destination was not tried while the polls went on"
    assert len(attempts) == 2, result.stderr
    assert "destination hook: down" in result.stderr
    hook = destination_status(tmp_path, "hook")
    assert hook["queued"] == 3


class KeepAliveHook(BaseHTTPRequestHandler):
    """A webhook that keeps connections open (werkzeug's server closes each one) and notes
    the client port of each message."""

    protocol_version = "HTTP/1.1"
    ports: list[int]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.ports.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_messages_to_a_destination_share_one_connection(tmp_path, feed_host):
    """The answer to a message is read, so the connection is kept for the next one: a
    new connection (a new TLS handshake, for Slack) for each message cost more than it."""
    ports: list[int] = []
    handler = type("Hook", (KeepAliveHook,), {"ports": ports})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        write(
            tmp_path,
            one_feed(feed_host.url, webhook_table("hook", url), feed="notify_existing = 3"),
        )
        result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert len(ports) == 3 and len(set(ports)) == 1, ports


def test_a_message_accepted_with_an_answer_cut_short_is_sent_once(tmp_path, feed_host, raw_server):
    """A 200 whose body ends before its Content-Length: accepted, so delivered, not tried
    again (reading the answer is for the connection's sake only)."""
    posts: list[bytes] = []

    def accepted_then_cut(conn, stopped) -> None:
        posts.append(b"POST")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok")

    hook = raw_server(accepted_then_cut)
    write(
        tmp_path,
        one_feed(
            feed_host.url, webhook_table("hook", hook.url("/hook")), feed="notify_existing = 1"
        ),
    )
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(posts) == 1, result.stderr
    assert destination_status(tmp_path, "hook")["queued"] == 0
