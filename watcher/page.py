"""The status page (`GET /`): server-rendered, read-only HTML from the status report.

Feed text is untrusted: Jinja2 escapes every value, links are http(s) only, and the
page is sent with a strict Content-Security-Policy (no script at all)."""

from __future__ import annotations

from typing import Any

import jinja2

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("watcher", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def render_page(report: dict[str, Any]) -> str:
    return _ENVIRONMENT.get_template("status.html").render(report=report)
