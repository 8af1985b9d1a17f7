"""Endpoints that misbehave: reset, hang, endless bodies, untrusted TLS. Each is cut
off, recorded as a retryable failure, and never leaks the destination's secret URL."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading

import pytest
import trustme
from aiosmtpd.controller import Controller

from tests.conftest import (
    Inbox,
    destination_status,
    free_port,
    one_feed,
    watcher_command,
    write_config,
)


def reset(conn: socket.socket, stopped: threading.Event) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def hang(conn: socket.socket, stopped: threading.Event) -> None:
    stopped.wait(30)


def endless(conn: socket.socket, stopped: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 500 Broken\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    while not stopped.is_set():
        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))


MISBEHAVIOURS = {"reset": reset, "hang": hang, "endless": endless}


def config(feed_url: str, destination: str) -> str:
    return one_feed(feed_url, destination, feed="notify_existing = 1")


def poll_and_status(tmp_path, env=None):
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path, env=env, timeout=60)
    return result, destination_status(tmp_path)


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [("reset", "network error"), ("hang", "timed out after 1s"), ("endless", "HTTP 500 Broken")],
)
def test_misbehaving_slack_endpoint_is_cut_off_and_retried(
    tmp_path, feed_host, raw_server, behaviour, error
):
    server = raw_server(MISBEHAVIOURS[behaviour])
    secret_path = "/services/T0SECRET/B0SECRET/tokentokentoken"
    write_config(
        tmp_path,
        config(
            feed_host.url,
            f"""
[[destinations]]
name = "team"
type = "slack"
url = "{server.url(secret_path)}"
timeout = "1s"
""",
        ),
    )
    result, destination = poll_and_status(tmp_path)
    assert result.returncode == 0, result.stderr
    assert destination["queued"] == 1 and destination["retrying"] == 1
    assert error in destination["last_error"]
    assert len(destination["last_error"]) < 300
    for text in (result.stderr, result.stdout, json.dumps(destination)):
        assert "tokentokentoken" not in text and "B0SECRET" not in text


@pytest.fixture
def tls_smtp():
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=inbox.port, tls_context=context, require_starttls=True
    )
    controller.start()
    yield inbox, authority
    controller.stop()


def email_table(port: int) -> str:
    return f"""
[[destinations]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = {port}
starttls = true
from = "watcher@example.com"
to = ["team@example.com"]
timeout = "5s"
"""


def test_starttls_refuses_a_certificate_it_cannot_verify(tmp_path, feed_host, tls_smtp):
    inbox, _ = tls_smtp
    write_config(tmp_path, config(feed_host.url, email_table(inbox.port)))
    result, destination = poll_and_status(tmp_path)
    assert result.returncode == 0, result.stderr
    assert destination["last_error"].startswith("TLS error")
    assert "CERTIFICATE_VERIFY_FAILED" in destination["last_error"]
    assert inbox.messages == [] and destination["queued"] == 1


def test_starttls_delivers_to_a_server_it_trusts(tmp_path, feed_host, tls_smtp):
    inbox, authority = tls_smtp
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    write_config(tmp_path, config(feed_host.url, email_table(inbox.port)))
    result, destination = poll_and_status(tmp_path, env={"SSL_CERT_FILE": str(tmp_path / "ca.pem")})
    assert result.returncode == 0, result.stderr
    assert len(inbox.messages) == 1 and destination["queued"] == 0
