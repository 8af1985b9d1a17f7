"""Discord, Teams and ntfy through the real `watcher poll`, each against a real receiver on
127.0.0.1: accepted, rejected, failing, rate-limited with a retry hint, never answering.
Their secrets (the webhook URL, the topic, the token) never reach the output."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import destination_status, one_feed, watcher_command, write_config
from tests.test_endpoints import hang

Answer = tuple[int, dict[str, str], str]
NTFY_TOKEN = "tk_secrettokenvalue"


@dataclass
class Receiver:
    """Records every POST; answers each with the next of `answers`, then with `ok`."""

    server: HTTPServer
    path: str
    ok: Answer
    answers: list[Answer] = field(default_factory=list)
    received: list[dict] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server.expect_request(self.path, method="POST").respond_with_handler(self._handle)

    def _handle(self, request: Request) -> Response:
        status, headers, body = self.answers.pop(0) if self.answers else self.ok
        if 200 <= status < 300:
            self.received.append(json.loads(request.get_data()))
            self.headers.append(dict(request.headers))
            self.times.append(time.monotonic())
        return Response(body, status=status, headers=headers)


def check_discord(message: dict, headers: dict[str, str]) -> None:
    assert message["allowed_mentions"] == {"parse": []}
    [embed] = message["embeds"]
    assert embed["title"].startswith("WWDC26")
    assert embed["url"].startswith("https://")
    assert {f["name"] for f in embed["fields"]} >= {"Speaker", "Slides", "Duration"}


def check_teams(message: dict, headers: dict[str, str]) -> None:
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"].startswith("WWDC26")
    assert [a["title"] for a in card["actions"]] == ["Talk page", "Watch video"]


def check_ntfy(message: dict, headers: dict[str, str]) -> None:
    assert message["topic"] == "watcher_talks_secret"
    assert message["title"].startswith("WWDC26")
    assert message["click"].startswith("https://") and message["attach"].endswith(".png")
    assert headers["Authorization"] == f"Bearer {NTFY_TOKEN}"


@dataclass(frozen=True)
class Kind:
    type: str
    path: str  # where the receiver listens
    configured: str  # the path (and query) of the configured URL
    secret: str  # never printed
    ok: Answer
    check: Callable[[dict, dict[str, str]], None]
    extra: str = ""
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "http://"  # of the configured URL

    def table(self, base: str) -> str:
        base = base.replace("http://", self.scheme, 1)
        return (
            f'[[destinations]]\nname = "dest"\ntype = "{self.type}"\n'
            f'url = "{base}{self.configured}"\ntimeout = "1s"\n{self.extra}\n'
        )


DISCORD_PATH = "/api/webhooks/1234567890/discordsecrettoken"
TEAMS_PATH = "/workflows/0a1b2c/triggers/manual/paths/invoke"
KINDS = {
    "discord": Kind(
        "discord", DISCORD_PATH, DISCORD_PATH, "discordsecrettoken", (204, {}, ""), check_discord
    ),
    "teams": Kind(
        "teams",
        TEAMS_PATH,
        TEAMS_PATH + "?api-version=2016-06-01&sig=teamssecretsig",
        "teamssecretsig",
        (202, {}, ""),
        check_teams,
    ),
    "ntfy": Kind(
        "ntfy",
        "/",
        "/watcher_talks_secret",
        "watcher_talks_secret",
        (200, {"Content-Type": "application/json"}, '{"id":"abc","event":"message"}'),
        check_ntfy,
        extra='token = "${NTFY_TOKEN}"',
        env={"NTFY_TOKEN": NTFY_TOKEN},
    ),
}


def check_apprise(message: dict, headers: dict[str, str]) -> None:
    assert message["version"] == "1.0" and message["type"] == "info"
    assert message["title"].startswith("WWDC26")
    assert message["message"].startswith("Speaker: Apple\nSlides: 64\n")
    assert message["message"].endswith("Video: https://www.youtube.com/watch?v=toO9j5NKg0c")


KINDS["apprise"] = Kind(
    "apprise",
    "/apprise/appriseSecretPath",
    "/apprise/appriseSecretPath",
    "appriseSecretPath",
    (200, {}, "ok"),
    check_apprise,
    scheme="json://",
)
# What each says when it limits the rate: Discord in its JSON body, the others in Retry-After.
RATE_LIMITED = {
    "discord": (
        429,
        {"Content-Type": "application/json"},
        '{"message": "You are being rate limited.", "retry_after": 90.5, "global": false}',
    ),
    "teams": (429, {"Retry-After": "90"}, "Too many requests"),
    "ntfy": (429, {"Retry-After": "90"}, '{"code":42901,"http":429,"error":"limit reached"}'),
}


def setup(tmp_path, feed_host, base: str, kind: Kind) -> None:
    write_config(tmp_path, one_feed(feed_host.url, kind.table(base), feed="notify_existing = 1"))


def poll(tmp_path, kind: Kind) -> tuple[str, dict]:
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path, env=kind.env)
    assert result.returncode == 0, result.stderr
    status = destination_status(tmp_path, env=kind.env)
    for text in (result.stdout, result.stderr, json.dumps(status)):
        assert kind.secret not in text and NTFY_TOKEN not in text
    return result.stderr, status


@pytest.fixture(params=sorted(KINDS))
def kind(request) -> Kind:
    return KINDS[request.param]


def test_an_accepted_message_is_delivered_once_in_the_native_shape(
    tmp_path, feed_host, httpserver, kind
):
    receiver = Receiver(httpserver, kind.path, kind.ok)
    setup(tmp_path, feed_host, httpserver.url_for(""), kind)
    _, status = poll(tmp_path, kind)
    assert len(receiver.received) == 1
    assert status["queued"] == 0 and status["dead_lettered"] == 0
    kind.check(receiver.received[0], receiver.headers[0])
    described = watcher_command(
        "check-config", "--config", "watcher.toml", cwd=tmp_path, env=kind.env
    )
    assert described.returncode == 0, described.stderr
    assert f"dest: {kind.type} {kind.scheme}" in described.stdout
    assert kind.secret not in described.stdout and NTFY_TOKEN not in described.stdout


def test_a_4xx_is_dead_lettered_at_once(tmp_path, feed_host, httpserver, kind):
    receiver = Receiver(httpserver, kind.path, kind.ok, answers=[(400, {}, "bad payload")])
    setup(tmp_path, feed_host, httpserver.url_for(""), kind)
    _, status = poll(tmp_path, kind)
    assert receiver.received == []
    assert status["dead_lettered"] == 1 and status["queued"] == 0
    assert re.match(r"HTTP 400|apprise json: .*error=400", status["dead_letters"][0]["error"])


def test_a_5xx_is_queued_to_be_retried(tmp_path, feed_host, httpserver, kind):
    Receiver(httpserver, kind.path, kind.ok, answers=[(503, {}, "try later")])
    setup(tmp_path, feed_host, httpserver.url_for(""), kind)
    _, status = poll(tmp_path, kind)
    assert status["queued"] == 1 and status["retrying"] == 1 and status["dead_lettered"] == 0
    assert re.match(r"HTTP 503|apprise json: .*error=503", status["last_error"])


@pytest.mark.parametrize("kind", [KINDS[name] for name in RATE_LIMITED], ids=list(RATE_LIMITED))
def test_a_429_is_retried_no_sooner_than_its_hint(tmp_path, feed_host, httpserver, kind):
    Receiver(httpserver, kind.path, kind.ok, answers=[RATE_LIMITED[kind.type]])
    setup(tmp_path, feed_host, httpserver.url_for(""), kind)
    before = datetime.now(UTC)
    _, status = poll(tmp_path, kind)
    assert status["queued"] == 1 and status["last_error"].startswith("HTTP 429")
    wait = (datetime.fromisoformat(status["next_attempt"]) - before).total_seconds()
    assert 89 <= wait <= 100, wait


def test_apprise_retries_a_429_without_its_hint(tmp_path, feed_host, httpserver):
    """Apprise tells only that it failed and the status it logged: not the Retry-After."""
    kind = KINDS["apprise"]
    Receiver(httpserver, kind.path, kind.ok, answers=[(429, {"Retry-After": "90"}, "slow")])
    setup(tmp_path, feed_host, httpserver.url_for(""), kind)
    _, status = poll(tmp_path, kind)
    assert status["queued"] == 1 and status["retrying"] == 1 and status["dead_lettered"] == 0
    assert status["last_error"] == "apprise json: Failed to send JSON POST notification: error=429."


def test_apprise_without_the_extra_says_how_to_install_it(tmp_path, feed_host):
    table = '[[destinations]]\nname = "x"\ntype = "apprise"\nurl = "json://127.0.0.1/x"\n'
    write_config(tmp_path, one_feed(feed_host.url, table))
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "apprise.py").write_text("raise ImportError('not installed')\n")
    result = watcher_command(
        "check-config", "--config", "watcher.toml", cwd=tmp_path, env={"PYTHONPATH": str(blocker)}
    )
    assert result.returncode == 2
    assert "destinations[0].type: apprise is an optional extra: pip install" in result.stderr


def test_an_unknown_apprise_url_is_a_config_error(tmp_path, feed_host):
    table = '[[destinations]]\nname = "x"\ntype = "apprise"\nurl = "nosuchservice://token"\n'
    write_config(tmp_path, one_feed(feed_host.url, table))
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "destinations[0].url: not a URL Apprise knows (nosuchservice://)" in result.stderr


def test_a_receiver_that_never_answers_times_out_and_is_retried(
    tmp_path, feed_host, raw_server, kind
):
    server = raw_server(hang)
    setup(tmp_path, feed_host, f"http://127.0.0.1:{server.port}", kind)
    _, status = poll(tmp_path, kind)
    assert status["queued"] == 1 and status["retrying"] == 1
    assert "timed out after 1s" in status["last_error"]


def test_an_ntfy_topic_url_must_name_a_topic(tmp_path, feed_host):
    for url in ("https://ntfy.sh/", "https://ntfy.sh/bad topic!"):
        table = f'[[destinations]]\nname = "push"\ntype = "ntfy"\nurl = "{url}"\n'
        write_config(tmp_path, one_feed(feed_host.url, table))
        result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
        assert result.returncode == 2
        assert "destinations[0].url: expected a topic URL" in result.stderr


def test_discord_is_paced_by_default(tmp_path, feed_host, httpserver):
    """One message per 2 s unless `rate` says otherwise."""
    kind = KINDS["discord"]
    receiver = Receiver(httpserver, kind.path, kind.ok)
    table = kind.table(httpserver.url_for(""))
    write_config(tmp_path, one_feed(feed_host.url, table, feed="notify_existing = 2"))
    poll(tmp_path, kind)
    assert len(receiver.received) == 2
    assert receiver.times[1] - receiver.times[0] >= 1.9, receiver.times
