"""What the README promises and no other test checked: give_up_after, a custom rate,
redeliver's exit code, the moved-permanently hint, a gone feed polled again once its
url changes, unknown names, a state file from a future schema, and SMTP over implicit
TLS with a login. Each goes through the `watcher` command as a process, against real
servers on 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import ssl
import threading
import time

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from werkzeug import Response

from tests.conftest import (
    FeedHost,
    Inbox,
    add_talk,
    console_table,
    destination_status,
    feed_status,
    free_port,
    one_feed,
    watcher_command,
    webhook_table,
    write_config,
)

NEW = ("PrOmIsE0001", "A fourth talk | Someone | Somewhere", "Wed, 10 Jun 2026 00:00:00 +0000")


def run(tmp_path, *args, env=None, timeout=60):
    return watcher_command(
        *args, "--config", "watcher.toml", cwd=tmp_path, env=env, timeout=timeout
    )


class Failing:
    """An endpoint that answers 500 to every POST, and counts them."""

    def __init__(self, httpserver, path: str = "/failing") -> None:
        self.posts = 0
        self.url = httpserver.url_for(path)
        httpserver.expect_request(path, method="POST").respond_with_handler(self._handle)

    def _handle(self, request):
        self.posts += 1
        return Response("broken", status=500)


def test_give_up_after_dead_letters_a_delivery_failing_that_long(tmp_path, feed_host, httpserver):
    hook = Failing(httpserver)
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            webhook_table("hook", hook.url, 'give_up_after = "1s"'),
            feed="notify_existing = 2",
        ),
    )
    first = run(tmp_path, "poll")
    assert first.returncode == 0, first.stderr
    assert hook.posts == 2, "two failures in a row: the destination is down, probed again"
    state = destination_status(tmp_path, "hook")
    assert state["queued"] == 2 and state["dead_lettered"] == 0

    # The probe is due a couple of seconds later; poll until a poll has tried again.
    deadline = time.monotonic() + 20
    outputs = []
    while hook.posts < 4 and time.monotonic() < deadline:
        outputs.append(run(tmp_path, "poll"))
        assert outputs[-1].returncode == 0, outputs[-1].stderr
    assert hook.posts == 4, f"never retried: {[o.stderr for o in outputs]}"
    state = destination_status(tmp_path, "hook")
    assert state["dead_lettered"] == 2 and state["queued"] == 0, state
    errors = [letter["error"] for letter in state["dead_letters"]]
    assert all(e.startswith("gave up after 2 attempts: HTTP 500") for e in errors), errors
    assert "giving up after 2 attempts" in outputs[-1].stderr


def test_a_custom_rate_paces_a_webhook(tmp_path, feed_host, webhook):
    feed_host.set_body(add_talk(feed_host.body, *NEW))
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            webhook_table("hook", webhook.url, 'rate = "2/s"'),
            feed="notify_existing = 4",
        ),
    )
    result = run(tmp_path, "poll")
    assert result.returncode == 0, result.stderr
    assert len(webhook.received) == 4
    gaps = [b - a for a, b in itertools.pairwise(webhook.times)]
    assert all(gap >= 0.45 for gap in gaps), gaps


def test_redeliver_exits_1_when_a_delivery_still_fails(tmp_path, feed_host, httpserver):
    hook = Failing(httpserver)
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            webhook_table("hook", hook.url, "max_attempts = 1"),
            feed="notify_existing = 1",
        ),
    )
    assert run(tmp_path, "poll").returncode == 0
    assert destination_status(tmp_path, "hook")["dead_lettered"] == 1
    result = run(tmp_path, "redeliver", "hook")
    assert hook.posts == 2, "redeliver sent it again"
    assert result.returncode == 1, result.stderr
    assert "delivered 0; 1 failed" in result.stderr
    state = destination_status(tmp_path, "hook")
    assert state["dead_lettered"] + state["queued"] == 1


def test_a_permanent_redirect_of_a_feed_is_a_hint_to_update_the_config(tmp_path, httpserver):
    moved = FeedHost(httpserver, "/new.xml")
    httpserver.expect_request("/old.xml").respond_with_data(
        "moved", status=301, headers={"Location": moved.url}
    )
    httpserver.expect_request("/elsewhere.xml").respond_with_data(
        "for now", status=302, headers={"Location": moved.url}
    )
    write_config(
        tmp_path,
        one_feed(httpserver.url_for("/old.xml"), console_table("s")),
    )
    result = run(tmp_path, "poll")
    assert result.returncode == 0, result.stderr
    assert len(moved.requests) == 1
    assert (
        f"feed talks: moved permanently to {moved.url}; update its url in the config"
        in result.stderr
    )
    assert "first poll, 3 talks recorded as seen" in result.stderr

    write_config(
        tmp_path,
        one_feed(httpserver.url_for("/elsewhere.xml"), console_table("s")),
    )
    result = run(tmp_path, "poll")
    assert result.returncode == 0, result.stderr
    assert len(moved.requests) == 2
    assert "moved permanently" not in result.stderr, "a temporary redirect is no hint"


def test_a_gone_feed_is_polled_again_once_its_url_changes(tmp_path, httpserver, daemons):
    httpserver.expect_request("/gone.xml").respond_with_data("gone", status=410)
    console = console_table()
    interval = 'interval = "0.3s"'
    write_config(tmp_path, one_feed(httpserver.url_for("/gone.xml"), console, watcher=interval))
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    daemon.wait_for(lambda: "the feed is gone" in daemon.stderr, "the 410")
    assert daemon.stop() == 0

    new = FeedHost(httpserver, "/new.xml")
    write_config(tmp_path, one_feed(new.url, console, watcher=interval))
    again = daemons(tmp_path, "--config", "watcher.toml")
    again.wait_for(lambda: "feed talks: first poll" in again.stderr, "a poll of the new url")
    assert again.stop() == 0
    assert len(new.requests) >= 1
    report = feed_status(tmp_path)
    assert report["gone"] is False and report["last_error"] is None


@pytest.mark.parametrize(
    ("args", "what", "known"),
    [
        (("poll", "--feed", "nope"), "no feed named 'nope'", "(feeds: talks, other)"),
        (("test-notify", "nope"), "no destination named 'nope'", "(destinations: a, b)"),
        (("redeliver", "nope"), "no destination named 'nope'", "(destinations: a, b)"),
    ],
    ids=["poll-feed", "test-notify", "redeliver"],
)
def test_an_unknown_name_exits_2_naming_the_file_and_the_known_names(
    tmp_path, httpserver, args, what, known
):
    def never(request):
        pytest.fail("an unknown name must not reach the network")

    httpserver.expect_request("/feed.xml").respond_with_handler(never)
    url = httpserver.url_for("/feed.xml")
    write_config(
        tmp_path,
        f'[watcher]\nstate = "state.json"\n'
        f'[[feeds]]\nname = "talks"\nurl = "{url}"\n'
        f'[[feeds]]\nname = "other"\nurl = "{url}?2"\n'
        + webhook_table("a", httpserver.url_for("/a"))
        + webhook_table("b", httpserver.url_for("/b")),
    )
    result = run(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("watcher: error: ") and "watcher.toml" in lines[0]
    assert what in lines[0] and lines[0].endswith(known)
    assert httpserver.log == []


def state_files(directory) -> dict:
    """Every state file's bytes (not the lock, which holds the pid of its last holder)."""
    return {
        p: p.read_bytes()
        for p in directory.rglob("state.json*")
        if p.is_file() and p.suffix != ".lock"
    }


def test_a_state_file_from_a_future_schema_is_refused_and_left_untouched(tmp_path, feed_host):
    write_config(tmp_path, one_feed(feed_host.url, console_table("s")))
    assert run(tmp_path, "poll").returncode == 0
    state = tmp_path / "state.json"
    document = json.loads(state.read_text())
    assert document["meta"]["1"]["schema_version"] == 2
    document["meta"]["1"]["schema_version"] = 99
    state.write_text(json.dumps(document))
    before = state_files(tmp_path)
    requests = len(feed_host.requests)

    for command in ("poll", "run", "redeliver", "status"):  # status reads it: refused too
        result = run(tmp_path, command, timeout=20)
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (command, result.stderr)
        assert lines[0].startswith("watcher: error: ") and "state.json" in lines[0]
        assert "schema version 99" in lines[0]
    assert state_files(tmp_path) == before
    assert len(feed_host.requests) == requests


@pytest.fixture
def ssl_smtp():
    """An SMTP server speaking TLS from the first byte (port 465 style), with AUTH."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    inbox = Inbox()
    inbox.port = free_port()
    inbox.logins = []
    lock = threading.Lock()

    def authenticator(server, session, envelope, mechanism, auth_data):
        with lock:
            encrypted = server.transport.get_extra_info("ssl_object") is not None
            inbox.logins.append((auth_data.login, auth_data.password, encrypted))
        return AuthResult(
            success=(auth_data.login, auth_data.password) == (b"watcher", b"s3cret-pass")
        )

    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=inbox.port,
        ssl_context=context,
        authenticator=authenticator,
        auth_required=True,
        # aiosmtpd counts only STARTTLS as TLS for AUTH; the login records that the
        # connection it came over was encrypted.
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, authority
    controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_over_implicit_tls_logs_in_and_delivers(tmp_path, feed_host, ssl_smtp):
    inbox, authority = ssl_smtp
    write_config(
        tmp_path,
        one_feed(
            feed_host.url,
            f"""
[[destinations]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = {inbox.port}
ssl = true
username = "watcher"
password = "${{SMTP_PASSWORD}}"
from = "watcher@example.com"
to = ["team@example.com"]
timeout = "5s"
""",
            feed="notify_existing = 1",
        ),
    )
    env = {"SMTP_PASSWORD": "s3cret-pass"}
    untrusted = run(tmp_path, "test-notify", "mail", env=env)
    assert untrusted.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    assert inbox.messages == [] and inbox.logins == []

    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    env["SSL_CERT_FILE"] = str(tmp_path / "ca.pem")
    result = run(tmp_path, "poll", env=env)
    assert result.returncode == 0, result.stderr
    assert "s3cret-pass" not in result.stderr
    assert inbox.logins == [(b"watcher", b"s3cret-pass", True)]
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["Subject"].startswith("New talk: ")
    assert destination_status(tmp_path, "mail", env=env)["queued"] == 0
