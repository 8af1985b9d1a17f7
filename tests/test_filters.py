"""Who gets which talk: filter rules on destinations and feeds, through `watcher poll`
against a real feed host and recording webhooks, explained by the log and by
`watcher inspect FEED --explain`; bad rules are config errors naming the key."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FeedHost, Recorder, watcher_command, webhook_table, write_config
from tests.store_helpers import talk
from watcher.filters import Filter, rule
from watcher.schema import ConfigError


def config(feed_url: str, *destinations: str, feed: str = "") -> str:
    return (
        '[watcher]\nstate = "state.json"\n\n[[feeds]]\nname = "talks"\n'
        f'url = "{feed_url}"\nnotify_existing = 3\n{feed}\n' + "\n".join(destinations)
    )


def titles(recorder: Recorder) -> list[str]:
    return sorted(payload["talk"]["title"] for payload in recorder.received)


MCSHERRY = "Building confidence in an always-in-motion distributed streaming system"
EGGERS = "Nothing has changed about software engineering"
METAL = "WWDC26: Optimize custom machine learning operations with Metal tensors"


def test_each_destination_gets_the_talks_its_rules_let_through(tmp_path, httpserver):
    feed = FeedHost(httpserver)
    db, general, long = (Recorder(httpserver, f"/{name}") for name in ("db", "general", "long"))
    write_config(
        tmp_path,
        config(
            feed.url,
            webhook_table(
                "db",
                db.url,
                'include = ["speaker:/McSherry|Eggers/"]\nexclude = ["title:NOTHING HAS"]',
            ),
            webhook_table("general", general.url, 'include = ["event:bug bash", "text:GPU"]'),
            webhook_table("long", long.url, 'min_duration = "10m"\nmin_slides = 100'),
        ),
    )
    result = watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert titles(db) == [MCSHERRY], "Eggers matched, then his title is excluded"
    assert titles(general) == sorted([MCSHERRY, EGGERS, METAL])
    assert titles(long) == [EGGERS], "151 slides but 1:54; 64 slides; 110 slides and 26 min"
    log = result.stderr
    assert "to db: sent (included by speaker:/McSherry|Eggers/)" in log
    assert "to db: dropped (excluded by title:NOTHING HAS)" in log
    assert "to db: dropped (no include rule matched)" in log
    assert "to long: dropped (shorter than 10:00 (1:54))" in log
    assert "to long: dropped (fewer than 100 slides (64))" in log
    status = json.loads(
        watcher_command("status", "--config", "watcher.toml", "--json", cwd=tmp_path).stdout
    )
    assert status["feeds"][0]["talks_seen"] == 3, "filtered or not, every talk is seen"
    assert watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path).returncode == 0
    assert len(db.received) + len(general.received) + len(long.received) == 5, "none later"


def test_a_feed_filter_drops_a_talk_for_everyone_and_explain_says_why(tmp_path, httpserver):
    feed, hook = FeedHost(httpserver), Recorder(httpserver, "/hook")
    rules = 'exclude = ["url:watch?v=TOO9"]\ninclude = ["feed:TALKS"]'
    write_config(tmp_path, config(feed.url, webhook_table("hook", hook.url), feed=rules))
    explain = ("inspect", "talks", "--explain", "--config", "watcher.toml")
    explained = watcher_command(*explain, "--json", cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    routes = {entry["talk"]["title"]: entry["routes"] for entry in json.loads(explained.stdout)}
    by_feed = "the feed's filter: "
    assert routes[MCSHERRY] == [
        {"destination": "hook", "sent": True, "why": by_feed + "included by feed:TALKS"}
    ]
    assert routes[METAL] == [
        {"destination": "hook", "sent": False, "why": by_feed + "excluded by url:watch?v=TOO9"}
    ]
    text = watcher_command(*explain, cwd=tmp_path).stdout
    assert f"{METAL} (" in text and "  hook: dropped (the feed's filter: excluded by" in text
    assert not (tmp_path / "state.json").exists(), "explain touches no state"
    assert watcher_command("poll", "--config", "watcher.toml", cwd=tmp_path).returncode == 0
    assert titles(hook) == sorted([MCSHERRY, EGGERS])


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        (
            'include = ["venue:Berlin"]',
            "destinations[0].include[0]: bad rule 'venue:Berlin': expected FIELD:PATTERN",
        ),
        (
            'exclude = ["title:ok", "speaker:/(unclosed/"]',
            "destinations[0].exclude[1]: bad regular expression in 'speaker:/(unclosed/'",
        ),
        (
            'include = ["title:"]',
            "destinations[0].include[0]: bad rule 'title:': the pattern is empty",
        ),
        ('min_duration = "10x"', "destinations[0].min_duration: bad duration"),
    ],
)
def test_a_bad_rule_is_a_config_error_naming_the_key(tmp_path, rules, error):
    write_config(tmp_path, config("feed.xml", webhook_table("hook", "http://127.0.0.1:9/", rules)))
    result = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert result.returncode == 2 and error in result.stderr, result.stderr


def test_plain_patterns_fold_case_as_unicode_does():
    assert rule("speaker:STRASSE", "r").matches(talk(speaker="Jo Straße"), "f")
    assert rule("title:ǅ", "r").matches(talk(title="ǆungla"), "f")
    assert not rule("speaker:x", "r").matches(talk(), "f"), "no speaker matches nothing"
    assert Filter().decide(talk(), "f") == (True, "no rule drops it")
    with pytest.raises(ConfigError):
        rule("nofield", "r")
