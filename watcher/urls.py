"""Which URLs from a feed may reach a reader (pure).

Feed links end up in Slack buttons, HTML mail and JSON payloads, so only an
absolute http(s) URL with nothing in it that could break out of an attribute
or a Slack link is let through. A raw space, which publishers leave in file
names (`/Walt Kujat.mp3`), is percent-encoded as a browser would.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

SURROGATES = re.compile(r"[\ud800-\udfff]")  # lone ones: never encodable
_NOT_IN_URL = re.compile(r"[\s<>\"'\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # \s is str.isspace()


def safe_url(value: object) -> str | None:
    """The URL if it is an absolute http(s) URL, else None: feed links reach readers."""
    if not isinstance(value, str):
        return None
    value = SURROGATES.sub("\ufffd", value.strip()).replace(" ", "%20")
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if _NOT_IN_URL.search(value):
        return None
    return value


def resolve_url(base: str, value: object) -> str | None:
    """`value` made absolute against `base`, if it is a safe http(s) URL then (see safe_url)."""
    if not isinstance(value, str):
        return None
    if base and not safe_url(value):
        try:
            value = urljoin(base, value.strip())
        except ValueError:
            return None
    return safe_url(value)
