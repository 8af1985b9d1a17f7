"""The status page (`GET /`): server-rendered, read-only HTML from the status report.

Feed text is untrusted: Jinja2 escapes every value, every URL put in an `href` or a
`src` is http(s) only (`watcher.urls.safe_url`, again, whatever the state says), and the
page is sent with a strict Content-Security-Policy: no script at all, no frames, no
forms, images over http(s) only, and only the page's own style sheet (by its hash)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from watcher.urls import safe_url

STYLE = resources.files("watcher").joinpath("templates/status.css").read_text(encoding="utf-8")
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; img-src https: http:; style-src 'sha256-{_STYLE_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("watcher", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render_page(report: dict[str, Any]) -> str:
    now = _moment(report.get("generated")) or datetime.now(UTC)
    return _ENVIRONMENT.get_template("status.html").render(
        report=report, now=now, style=Markup(STYLE)
    )


def http_url(value: object) -> str | None:
    """The URL if it may be a link or an image: absolute http(s), nothing odd in it."""
    return safe_url(value)


def span(seconds: float | None) -> str:
    """A length of time in words, to the two largest units: `3 d 4 h`, `5 min`, `40 s`."""
    if seconds is None:
        return "unknown"
    left = int(max(seconds, 0))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size} {unit}")
            left %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def clock(seconds: int | None) -> str:
    """A talk's duration as a player shows it: `54:10`, `1:02:03`."""
    if seconds is None:
        return ""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@jinja2.pass_context
def when(context: jinja2.runtime.Context, stamp: str | None, none: str = "never") -> str:
    """An ISO time as a person reads it, with how long ago (or how soon) it is."""
    moment = _moment(stamp)
    if moment is None:
        return none
    now: datetime = context["now"]
    shown = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = (now - moment).total_seconds()
    if abs(delta) < 1:
        return f"{shown} (now)"
    return f"{shown} ({span(delta)} ago)" if delta > 0 else f"{shown} (in {span(-delta)})"


def _moment(stamp: object) -> datetime | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_ENVIRONMENT.filters.update(http_url=http_url, span=span, clock=clock, when=when)
