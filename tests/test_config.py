"""Config: the shipped files load, and every mistake is one line naming file and key."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, watcher_command, write_config
from watcher.config import load_config
from watcher.schema import ConfigError, redact_url

SLACK_URL = "https://hooks.slack.com/services/T0123ABC/B0456DEF/verysecrettoken"

VALID = """
[watcher]
state = "data/w.json"

[[feeds]]
name = "talks"
url = "feed.xml"
notify = ["hook"]

[[destinations]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"
"""


def test_shipped_example_and_template_load():
    example = load_config(REPO / "config" / "example.toml")
    assert [f.name for f in example.feeds] == ["talks"]
    assert (REPO / example.feeds[0].url).is_file()
    template = load_config(
        REPO / "config" / "watcher.toml", environ={"SLACK_WEBHOOK_URL": SLACK_URL}
    )
    assert template.destinations["team-slack"].settings["url"] == SLACK_URL
    assert template.feeds[0].interval == 600 and template.interval == 900
    assert template.listen == ("127.0.0.1", 8765)


def test_watcher_listen_in_the_environment_overrides_the_config():
    """A container listens where its port is published; a bad value names the variable."""
    environ = {"SLACK_WEBHOOK_URL": SLACK_URL, "WATCHER_LISTEN": "0.0.0.0:9000"}
    assert load_config(REPO / "config" / "watcher.toml", environ=environ).listen == (
        "0.0.0.0",
        9000,
    )
    with pytest.raises(ConfigError, match=r"\$WATCHER_LISTEN: expected HOST:PORT"):
        load_config(REPO / "config" / "watcher.toml", environ={**environ, "WATCHER_LISTEN": "x"})


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (("[watcher]", "[watcher]\ncolour = 'blue'"), "watcher.colour", "unknown key"),
        (
            ('name = "talks"', 'name = "talks"\ninterval = "10x"'),
            "feeds[0].interval",
            "bad duration",
        ),
        (
            ('notify = ["hook"]', 'notify = ["nowhere"]'),
            "feeds[0].notify",
            "unknown destination 'nowhere'",
        ),
        (
            ('type = "webhook"', 'type = "pager"'),
            "destinations[0].type",
            "unknown destination type",
        ),
        (
            ('url = "http://127.0.0.1:9/hook"', 'url = "${NOT_SET_ANYWHERE}"'),
            "destinations[0].url",
            "NOT_SET_ANYWHERE is not set",
        ),
        (
            ('url = "http://127.0.0.1:9/hook"', 'url = "ftp://x/y"'),
            "destinations[0].url",
            "http:// or https://",
        ),
        (
            ("[[feeds]]", "[[feeds]]\nname = 'talks'\nurl = 'a.xml'\n[[feeds]]"),
            "feeds[1].name",
            "duplicate feed name",
        ),
        (
            ("[watcher]", "[[destinations]]\nname = 'hook'\ntype = 'console'\n[watcher]"),
            "destinations[1].name",
            "duplicate destination name",
        ),
        (('name = "talks"\n', ""), "feeds[0].name", "required key is missing"),
        (("[watcher]", "[watcher\n"), "invalid TOML", ""),
    ],
)
def test_invalid_config_exits_2_naming_file_and_key(tmp_path, change, key, reason):
    old, new = change
    assert old in VALID
    write_config(tmp_path, VALID.replace(old, new, 1))
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "\n" not in message, "one line"
    assert message.startswith("watcher: error: watcher.toml: ")
    assert key in message and reason in message


def test_config_path_from_environment_then_default(tmp_path):
    write_config(tmp_path, VALID)
    by_env = watcher_command(
        "check-config", cwd=tmp_path, env={"WATCHER_CONFIG": str(tmp_path / "watcher.toml")}
    )
    assert by_env.returncode == 0, by_env.stderr
    default = watcher_command("check-config", cwd=tmp_path)
    assert default.returncode == 2
    assert "config/watcher.toml: config file not found" in default.stderr


def test_secrets_never_printed(tmp_path):
    write_config(
        tmp_path,
        VALID.replace('url = "http://127.0.0.1:9/hook"', 'url = "${HOOK}"')
        + '\n[[destinations]]\nname = "mail"\ntype = "email"\nhost = "127.0.0.1"\n'
        'from = "w@example.com"\nto = ["t@example.com"]\nusername = "bot"\n'
        'password = "${SMTP_PASSWORD}"\n',
    )
    env = {"HOOK": SLACK_URL, "SMTP_PASSWORD": "hunter2-password"}
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "verysecrettoken" not in output and "B0456DEF" not in output
    assert "hunter2" not in output
    assert "https://hooks.slack.com/services/T0…/***" in output


def test_redact_url_keeps_only_what_identifies_the_endpoint():
    assert redact_url(SLACK_URL) == "https://hooks.slack.com/services/T0…/***"
    assert redact_url("http://127.0.0.1:9000/hook") == "http://127.0.0.1:9000/***"
    assert redact_url("https://user:pw@example.com/a/b?token=x") == "https://example.com/a/b…/***"


def test_email_settings_are_checked(tmp_path):
    body = VALID + (
        '\n[[destinations]]\nname = "mail"\ntype = "email"\nhost = "h"\n'
        'from = "a@b"\nto = ["c@d"]\nstarttls = true\nssl = true\n'
    )
    path = write_config(tmp_path, body)
    with pytest.raises(ConfigError, match=r"destinations\[1\]: choose one of starttls and ssl"):
        load_config(path)


def test_max_per_host_defaults_to_4_and_0_is_refused_naming_the_key(tmp_path):
    assert load_config(write_config(tmp_path, VALID)).max_per_host == 4
    path = write_config(tmp_path, VALID.replace("[watcher]", "[watcher]\nmax_per_host = 0"))
    with pytest.raises(
        ConfigError,
        match=r"watcher\.toml: watcher\.max_per_host: expected a whole number from 1 to 256$",
    ):
        load_config(path)
