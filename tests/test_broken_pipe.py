"""`watcher … | head`: when the reader of standard output goes away, every command stops
quietly with exit status 141 (as a shell reports `cat` ended by SIGPIPE), no traceback.

Real pipes: the command runs as its own process, its standard output the write end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SEED_FEED

BROKEN_PIPE = 141


def big_feed(path: Path, items: int = 3000) -> Path:
    """A feed whose `inspect --json` is far bigger than a pipe's buffer (64 KB)."""
    entries = "".join(
        f"<item><title>Talk {n} | Speaker {n} | Event</title><guid>g{n}</guid>"
        f"<link>https://talks.example.org/{n}</link>"
        f"<description>First sentence of talk {n}. Second one. Third one.</description>"
        "<pubDate>Mon, 01 Jun 2026 10:00:00 +0000</pubDate></item>"
        for n in range(items)
    )
    path.write_text(f'<rss version="2.0"><channel><title>Big</title>{entries}</channel></rss>')
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "watcher", *args]


def env(buffered: bool = True) -> dict[str, str]:
    """Standard output buffered as on a user's machine (a pipe: in blocks, written at exit),
    or unbuffered as in the Docker image (PYTHONUNBUFFERED=1)."""
    dropped = {"WATCHER_CONFIG", "PYTHONUNBUFFERED"}
    variables = {k: v for k, v in os.environ.items() if k not in dropped}
    return variables if buffered else {**variables, "PYTHONUNBUFFERED": "1"}


def assert_quiet(stderr: str) -> None:
    for noise in ("Traceback", "BrokenPipeError", "Exception ignored"):
        assert noise not in stderr, stderr


@pytest.mark.parametrize("json_flag", [["--json"], []])
def test_inspect_into_head_stops_quietly(tmp_path, json_flag):
    """The reader takes a little and closes its end while the command is still writing."""
    feed = big_feed(tmp_path / "big.xml")
    process = subprocess.Popen(
        command("inspect", str(feed), *json_flag),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.read(100)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == BROKEN_PIPE, stderr
    assert_quiet(stderr)


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "watcher.toml"
    config.write_text(
        f'[watcher]\nstate = "{tmp_path / "state.json"}"\n\n'
        f'[[feeds]]\nname = "talks"\nurl = "{SEED_FEED}"\nnotify_existing = 3\n\n'
        '[[destinations]]\nname = "screen"\ntype = "console"\n'
    )
    return config


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", str(SEED_FEED)],
        ["inspect", str(SEED_FEED), "--json"],
        ["check-config", "--config", "{config}"],
        ["status", "--config", "{config}"],
        ["status", "--config", "{config}", "--json"],
    ],
    ids=lambda args: " ".join(a for a in args if not a.startswith(("/", "{"))),
)
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_every_command_that_writes_to_a_closed_pipe_stops_quietly(tmp_path, args, buffered):
    """The pipe's read end is closed before the command starts: its first write fails."""
    config = write_config(tmp_path)
    command_line = (arg.format(config=config) for arg in args)
    result = run_into_a_closed_pipe(tmp_path, *command_line, buffered=buffered)
    assert result.returncode == BROKEN_PIPE, result.stderr
    assert_quiet(result.stderr)


@pytest.mark.parametrize(
    ("buffered", "code"),
    # buffered, the text not sent is still in the buffer when the command ends: 141, as
    # for any command; unbuffered, nothing is left to write: the poll's own status
    [(True, BROKEN_PIPE), (False, 0)],
    ids=["buffered", "unbuffered"],
)
def test_a_console_destination_on_a_closed_pipe_keeps_its_talks_queued(tmp_path, buffered, code):
    """`watcher poll | head`: the talks not shown are not delivered, and are retried."""
    config = write_config(tmp_path)
    result = run_into_a_closed_pipe(tmp_path, "poll", "--config", str(config), buffered=buffered)
    assert result.returncode == code, result.stderr
    assert_quiet(result.stderr)
    assert "standard output is closed (broken pipe)" in result.stderr
    status = subprocess.run(
        command("status", "--config", str(config), "--json"),
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"queued": 3' in status.stdout, status.stdout


def run_into_a_closed_pipe(
    cwd: Path, *args: str, buffered: bool = True
) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            command(*args),
            cwd=cwd,
            env=env(buffered),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
