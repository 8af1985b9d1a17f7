"""`watcher preview FEED`: what each destination would get for the newest talks, through
the filters, touching no state; and Slack's limits as the preview checks them."""

from __future__ import annotations

import json

from tests.conftest import FeedHost, watcher_command, webhook_table, write_config
from watcher.notifiers.slack import problems


def test_preview_renders_each_destination_and_touches_no_state(tmp_path, httpserver):
    feed = FeedHost(httpserver)
    slack = (
        '[[destinations]]\nname = "team"\ntype = "slack"\n'
        'url = "https://hooks.slack.com/services/T0/B0/secret"\ninclude = ["speaker:apple"]\n'
    )
    body = (
        f'[watcher]\nstate = "state.json"\n\n[[feeds]]\nname = "talks"\nurl = "{feed.url}"\n\n'
        + webhook_table("hook", "http://127.0.0.1:9/hook")
        + slack
        + '[[destinations]]\nname = "chat"\ntype = "discord"\n'
        + 'url = "https://discord.com/api/webhooks/1/discordsecret"\n'
    )
    write_config(tmp_path, body)
    result = watcher_command(
        "preview", "talks", "--last", "2", "--config", "watcher.toml", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    metal = "WWDC26: Optimize custom machine learning operations with Metal tensors"
    assert f"=== team (slack): {metal}: sent (included by speaker:apple)" in out
    second = "Building confidence in an always-in-motion distributed streaming system"
    assert f"=== team (slack): {second}: dropped (no include rule matched)" in out
    assert f"=== hook (webhook): {metal}: sent (no rule drops it)" in out
    webhook_part = out.split(f"=== hook (webhook): {metal}: sent (no rule drops it)\n")[1]
    payload = json.loads(webhook_part.split("\n=== ")[0])
    assert payload["type"] == "talk.new" and payload["talk"]["title"] == metal
    assert out.count("=== ") == 6, "two talks, three destinations"
    assert '"allowed_mentions"' in out.split(f"=== chat (discord): {metal}")[1]
    assert "secret" not in out + result.stderr
    assert not (tmp_path / "state.json").exists() and len(feed.requests) == 1


def test_an_unknown_destination_is_a_usage_error(tmp_path, httpserver):
    feed = FeedHost(httpserver)
    body = f'[[feeds]]\nname = "talks"\nurl = "{feed.url}"\n\n' + webhook_table(
        "hook", "http://127.0.0.1:9/"
    )
    write_config(tmp_path, body)
    result = watcher_command(
        "preview", "talks", "--dest", "nope", "--config", "watcher.toml", cwd=tmp_path
    )
    assert (
        result.returncode == 2
        and "no destination named 'nope' (destinations: hook)" in result.stderr
    )


def test_slack_limits_are_checked():
    header = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    many = {"text": "t", "blocks": [{"type": "divider"}] * 51}
    assert problems({"text": "ok", "blocks": [header]}) == [
        "a header block's text over 150 characters"
    ]
    assert problems(many) == ["51 blocks, over Slack's 50"]
    assert problems({"text": "x" * 3001, "blocks": []}) == ["text over 3000 characters"]
