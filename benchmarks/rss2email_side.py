"""Optional comparison: rss2email over the same feeds, mailing a local SMTP sink.

rss2email is installed into its own venv in the temp folder (`python3 -m venv`,
then `pip install rss2email`); any failure raises `Unavailable` with the reason,
and the benchmark goes on without it. The feeds are added in one `r2e
opmlimport` (the same as N `r2e add`, without N process starts). rss2email
fetches its feeds one after another (it has no concurrency setting) and sends
conditional GETs with the ETag / Last-Modified it stored.
"""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path
from xml.sax.saxutils import quoteattr

PIP_TIMEOUT = 600


class Unavailable(Exception):
    """rss2email cannot be used here; the message says why."""


class Rss2Email:
    def __init__(self, home: Path, feeds: dict[str, str], smtp_port: int) -> None:
        self.home = home
        self.venv = home / "venv"
        self.config = home / "rss2email.cfg"
        self.data = home / "rss2email.json"
        self.feeds = feeds
        self.smtp_port = smtp_port

    def r2e(self, *args: str) -> list[str]:
        return [str(self.venv / "bin" / "r2e"), "-c", str(self.config), "-d", str(self.data), *args]

    def command(self, phase: str) -> list[str]:
        """The first run records what is there without mailing it, as the watcher's does."""
        return self.r2e("run", "--no-send") if phase == "cold" else self.r2e("run")

    def set_up(self) -> str:
        """Install, create the database, point it at the SMTP sink, add the feeds.
        Returns rss2email's version."""
        self.home.mkdir(parents=True, exist_ok=True)
        _check(["python3", "-m", "venv", str(self.venv)], "python3 -m venv")
        _check([str(self.venv / "bin" / "pip"), "install", "-q", "rss2email"], "pip install")
        _check(self.r2e("new", "team@example.test"), "r2e new")
        self._configure()
        opml = self.home / "feeds.opml"
        opml.write_text(_opml(self.feeds), encoding="utf-8")
        _check(self.r2e("opmlimport", str(opml)), "r2e opmlimport")
        return _check([str(self.venv / "bin" / "r2e"), "--version"], "r2e --version").strip()

    def _configure(self) -> None:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.config, encoding="utf-8")
        parser["DEFAULT"].update(
            {
                "from": "rss2email@example.test",
                "email-protocol": "smtp",
                "smtp-server": "127.0.0.1",
                "smtp-port": str(self.smtp_port),
                "smtp-ssl": "False",
                "smtp-auth": "False",
                "same-server-fetch-interval": "0",  # every feed is on one server here
                "feed-timeout": "120",
            }
        )
        with self.config.open("w", encoding="utf-8") as handle:
            parser.write(handle)


def _opml(feeds: dict[str, str]) -> str:
    outlines = "".join(
        f'<outline type="rss" text={quoteattr(name)} xmlUrl={quoteattr(url)}/>\n'
        for name, url in feeds.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="1.0">'
        f"<head><title>bench</title></head><body>\n{outlines}</body></opml>\n"
    )


def _check(command: list[str], what: str) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what}: {exc}") from None
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise Unavailable(f"{what} exited {result.returncode}: {last[0][:300]}")
    return result.stdout
