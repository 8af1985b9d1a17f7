"""`--log-format json` and `[watcher] log_format`: one JSON object per line, with the
context of each line (feed, talk, destination, attempt) and never a secret; the text
format stays as it was."""

from __future__ import annotations

import json
import logging
import re
import sys

from pytest_httpserver import HTTPServer

from tests.conftest import (
    FeedHost,
    Recorder,
    one_feed,
    watcher_command,
    webhook_table,
    write_config,
)
from watcher import logs

WEBHOOK_TOKEN = "tok3n-0f-the-hook-9f8e7d"
SLACK_TOKEN = "secretslacktoken"  # the last segment of the `slack` fixture's path
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S")


def json_lines(stderr: str) -> list[dict]:
    lines = stderr.splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]  # every line is one JSON object


def config_with_two_feeds(feed_host: FeedHost, broken: str, hook: Recorder, slack: Recorder):
    return (
        one_feed(
            feed_host.url,
            webhook_table("hook", hook.url),
            '[[destinations]]\nname = "team-slack"\ntype = "slack"\nurl = "${SLACK_URL}"\n',
            feed="notify_existing = 2",
        )
        + f'\n[[feeds]]\nname = "broken"\nurl = "{broken}"\nnotify = ["hook"]\n'
    )


def test_json_lines_carry_the_context_of_deliveries_and_feed_errors_and_no_secret(
    tmp_path, httpserver: HTTPServer, slack: Recorder
):
    feed_host = FeedHost(httpserver)
    hook = Recorder(httpserver, f"/hook/{WEBHOOK_TOKEN}", statuses=[503])
    httpserver.expect_request("/broken.xml").respond_with_data("down", status=503)
    broken = httpserver.url_for("/broken.xml")
    write_config(tmp_path, config_with_two_feeds(feed_host, broken, hook, slack))

    result = watcher_command(
        "poll",
        "--log-format",
        "json",
        "--config",
        "watcher.toml",
        cwd=tmp_path,
        env={"SLACK_URL": slack.url},
    )

    assert result.returncode == 1, result.stderr  # the broken feed failed
    lines = json_lines(result.stderr)
    for line in lines:
        assert set(line) >= {"time", "level", "logger", "message"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        assert set(line) <= {"time", "level", "logger", "message", *logs.CONTEXT_FIELDS}
    [sent] = [talk["talk"]["guid"] for talk in hook.received]
    assert len(slack.received) == 2

    # Two talks announced: the first one's delivery to the hook failed (503, it stays
    # queued), the second went through; both went to Slack.
    failed = [line for line in lines if "failed (attempt 1)" in line["message"]]
    assert len(failed) == 1
    assert failed[0]["level"] == "WARNING"
    assert failed[0]["logger"] == "watcher.deliver"
    assert failed[0]["feed"] == "talks"
    assert failed[0]["destination"] == "hook"
    assert failed[0]["attempt"] == 1
    unsent = failed[0]["talk"]
    assert unsent != sent and unsent in failed[0]["message"]
    delivered = [line for line in lines if line["message"].endswith(": delivered")]
    assert sorted((line["destination"], line["talk"]) for line in delivered) == sorted(
        [("hook", sent), ("team-slack", sent), ("team-slack", unsent)]
    )
    assert all(line["feed"] == "talks" and line["attempt"] == 1 for line in delivered)
    hook_delivered = next(line for line in delivered if line["destination"] == "hook")
    assert hook_delivered["message"] == f"destination hook: talk {sent}: delivered"

    # The broken feed's error: its line names it, and carries no delivery's fields.
    errors = [line for line in lines if line.get("feed") == "broken"]
    assert [line["level"] for line in errors] == ["ERROR"]
    assert (
        errors[0]["message"] == "feed broken: HTTP 503 SERVICE UNAVAILABLE"
    )  # as werkzeug says it
    assert errors[0]["logger"] == "watcher.poll"
    assert not {"talk", "destination", "attempt"} & set(errors[0])
    # The summary comes after every poll and delivery: no context is left over.
    assert lines[-1]["message"] == "polled 2 feeds: 1 failed, 2 new talks"
    assert not set(logs.CONTEXT_FIELDS) & set(lines[-1])

    # Never a secret: not in the messages, not in the fields.
    assert WEBHOOK_TOKEN not in result.stderr
    assert SLACK_TOKEN not in result.stderr
    assert "/services/T000" not in result.stderr


def test_config_key_sets_the_format_and_the_option_wins(
    tmp_path, feed_host: FeedHost, webhook: Recorder
):
    write_config(
        tmp_path,
        one_feed(feed_host.url, webhook_table("hook", webhook.url), watcher='log_format = "json"'),
    )
    from_config = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert from_config.returncode == 0, from_config.stderr
    lines = json_lines(from_config.stderr)
    assert any(line.get("feed") == "talks" and "first poll" in line["message"] for line in lines)

    # Before the command as after it, like -v.
    for args in (
        ("--log-format", "text", "poll", "--config", "watcher.toml"),
        ("poll", "--config", "watcher.toml", "--log-format", "text"),
    ):
        text = watcher_command(*args, cwd=tmp_path)
        assert text.returncode == 0, text.stderr
        assert text.stderr.splitlines(), "nothing was logged"
        for line in text.stderr.splitlines():
            assert TEXT_LINE.match(line), line


def test_the_default_is_todays_text(tmp_path, feed_host: FeedHost, webhook: Recorder):
    write_config(tmp_path, one_feed(feed_host.url, webhook_table("hook", webhook.url)))
    result = watcher_command("-v", "poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.endswith(" INFO polled 1 feeds: 0 failed, 0 new talks") for line in lines)
    for line in lines:
        assert TEXT_LINE.match(line), line


def test_an_unknown_log_format_is_a_config_error_naming_the_key(tmp_path, feed_host: FeedHost):
    hook = webhook_table("hook", "http://127.0.0.1:9/hook")
    write_config(tmp_path, one_feed(feed_host.url, hook, watcher='log_format = "xml"'))
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "watcher: error: watcher.toml: watcher.log_format: expected one of text, json, got 'xml'\n"
    )
    # With JSON logs asked for, the error is a JSON line too.
    result = watcher_command(
        "--log-format", "json", "check-config", "--config", "watcher.toml", cwd=tmp_path
    )
    assert result.returncode == 2
    [line] = json_lines(result.stderr)
    assert line["level"] == "ERROR"
    assert (
        line["message"] == "watcher.toml: watcher.log_format: expected one of text, json, got 'xml'"
    )


def test_a_traceback_is_one_line_and_context_is_per_task(capsys):
    """In-process: a logged exception stays on its line, as `exc`; the context set in a
    block is gone after it."""
    logger = logging.getLogger("watcher.test_logs")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.log_context(feed="talks", destination="hook", talk="g1", attempt=3):
            try:
                raise ValueError("boom\nsecond line")
            except ValueError:
                logger.exception("it broke: %s", "badly")
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    err = capsys.readouterr().err
    first, after = json_lines(err)
    assert first["message"] == "it broke: badly"
    assert (first["feed"], first["destination"], first["talk"], first["attempt"]) == (
        "talks",
        "hook",
        "g1",
        3,
    )
    assert first["exc"].startswith("Traceback (most recent call last):")
    assert first["exc"].endswith("ValueError: boom\nsecond line")
    assert after == {k: after[k] for k in ("time", "level", "logger", "message")}
