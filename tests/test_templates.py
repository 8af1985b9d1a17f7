"""Operators' templates: console, Slack and email messages in the operator's own words,
rendered in a sandbox with every feed value escaped for its target, through `watcher
poll` to real receivers; bad templates are config errors naming the key."""

from __future__ import annotations

import pytest

from tests.conftest import FeedHost, watcher_command, write_config

HOSTILE = "<!channel> Pwn\x1b[31m <a href=x>&amp;</a>\r\nBcc: victim@example.com"


def config(feed_url: str, destination: str) -> str:
    return (
        '[watcher]\nstate = "state.json"\n\n[[feeds]]\nname = "talks"\n'
        f'url = "{feed_url}"\nnotify_existing = 1\n\n[[destinations]]\n{destination}\n'
    )


def hostile_feed(httpserver) -> FeedHost:
    feed = FeedHost(httpserver)
    escaped = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace("\x1b", "&#27;").replace("\r", "&#13;").replace("\n", "&#10;")
    first = feed.body.index(b"<item>")
    start = feed.body.index(b"<title>", first) + len(b"<title>")
    end = feed.body.index(b"</title>", start)
    feed.body = feed.body[:start] + escaped.encode() + feed.body[end:]
    return feed


def test_a_console_template_is_the_operators_own_words(tmp_path, httpserver):
    feed = hostile_feed(httpserver)
    template = '"""{{ talk.title|upper }} — {{ talk.slide_count }} slides [{{ feed }}]"""'
    write_config(
        tmp_path, config(feed.url, f'name = "screen"\ntype = "console"\ntemplate = {template}')
    )
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.strip()]
    assert line.endswith("— 64 slides [talks]") and "PWN" in line
    assert "\x1b" not in line and "\r" not in line, "control characters removed"


def test_a_slack_template_fills_the_main_section_escaped(tmp_path, httpserver, slack):
    feed = hostile_feed(httpserver)
    template = "'*{{ talk.title }}* <!here> by {{ talk.speaker }}'"
    write_config(
        tmp_path,
        config(
            feed.url, f'name = "team"\ntype = "slack"\nurl = "{slack.url}"\ntemplate = {template}'
        ),
    )
    assert watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path).returncode == 0
    [message] = slack.received
    [main] = [block for block in message["blocks"] if block["type"] == "section"]
    text = main["text"]["text"]
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text, "feed text cannot ping"
    assert "<!here>" in text, "the template's own text is trusted"
    assert "&lt;a href=x&gt;" in text and "Bcc" in text and "\n" not in text
    assert message["blocks"][0]["type"] == "header" and message["text"], "the layout stays"


def test_an_email_subject_and_body_from_templates(tmp_path, httpserver, smtp_server):
    feed = hostile_feed(httpserver)
    destination = (
        f'name = "mail"\ntype = "email"\nhost = "127.0.0.1"\nport = {smtp_server.port}\n'
        'from = "w@example.com"\nto = ["team@example.com"]\n'
        'subject = "[{{ feed }}] {{ talk.title }}"\n'
        'template = "<p>{{ talk.title }}</p><p>by {{ talk.speaker }}</p>"'
    )
    write_config(tmp_path, config(feed.url, destination))
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [message] = smtp_server.messages
    assert message["Subject"].strip().startswith("[talks] <!channel> Pwn")  # folded: a space
    assert message["Bcc"] is None and "victim" not in str(message.get_all("To")), "no header"
    html = message.get_body(("html",)).get_content()
    assert "&lt;a href=x&gt;" in html and "<a href=x>" not in html
    plain = message.get_body(("plain",)).get_content()
    assert "<p>" in plain and "\x1b" not in plain, "the text part: the template as text"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ('"{{ talk.title "', "destinations[0].template: template syntax error at line 1"),
        ('"{{ talk.venue }}"', "destinations[0].template: 'dict object' has no attribute 'venue'"),
        (
            '"{{ talk.__class__.__mro__ }}"',
            "destinations[0].template: the template fails on a sample talk",
        ),
        ('"{{ nobody }}"', "destinations[0].template: 'nobody' is undefined"),
    ],
)
def test_a_bad_template_is_a_config_error_naming_the_key(tmp_path, template, error):
    write_config(
        tmp_path, config("feed.xml", f'name = "s"\ntype = "console"\ntemplate = {template}')
    )
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2 and error in result.stderr, result.stderr


def test_a_command_does_not_load_what_only_templates_or_the_daemon_need():
    """Start-up is a cost every `watcher poll` under cron pays: Jinja2 (templates, the page),
    uvicorn, Starlette, prometheus-client and APScheduler load only when used."""
    import subprocess
    import sys

    probe = (
        "import sys, watcher.cli; heavy = ('jinja2', 'uvicorn', 'starlette', 'prometheus_client',"
        " 'apscheduler'); print(sorted(m for m in heavy if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
