"""What a command loads before it has work for it: a `watcher poll` run by cron that
gets only 304s should pay for little more than its HTTP client."""

from __future__ import annotations

import subprocess
import sys

from watcher.notifiers import NOTIFIERS


def loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    probe = f"import sys; {statement}; print(sorted(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return eval(done.stdout)  # a list of names the probe printed


def test_a_poll_loads_no_feed_reader_until_it_has_a_document(tmp_path):
    config = tmp_path / "watcher.toml"
    config.write_text(
        f'[watcher]\nstate = "{tmp_path / "state.json"}"\n'
        '[[destinations]]\nname = "hook"\ntype = "webhook"\nurl = "http://127.0.0.1:9/h"\n'
        '[[destinations]]\nname = "out"\ntype = "console"\n'
        '[[feeds]]\nname = "talks"\nurl = "http://127.0.0.1:9/feed.xml"\n'
    )
    heavy = ("feedparser", "lxml", "lxml.html", "watcher.entry", "watcher.skim", "email.mime")
    statement = (
        "import watcher.cli, watcher.commands.running, watcher.app, watcher.poll;"
        " from pathlib import Path; from watcher.config import load_config;"
        f" load_config(Path({str(config)!r}))"
    )
    assert loaded_after(statement, heavy) == []


def test_a_notifier_is_loaded_only_when_its_type_is_looked_up():
    heavy = ("watcher.notifiers.email", "watcher.notifiers.slack", "watcher.notifiers.apprise")
    assert loaded_after("import watcher.cli", heavy) == []
    assert (
        loaded_after("from watcher.notifiers import NOTIFIERS; NOTIFIERS['webhook']", heavy) == []
    )
    assert loaded_after("from watcher.notifiers import NOTIFIERS; NOTIFIERS['slack']", heavy) == [
        "watcher.notifiers.slack"
    ]


def test_every_type_names_the_notifier_that_says_it_is_that_type():
    assert len(NOTIFIERS) == 8
    for kind in NOTIFIERS:
        assert kind == NOTIFIERS[kind].TYPE
