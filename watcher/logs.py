"""The log lines: today's readable text, or one JSON object per line (`--log-format json`).

What a line is about (the feed being polled; the destination, talk and attempt of a
delivery) is carried in a context variable set at the edges (`Watcher.poll`,
`Deliverer._attempt`) with `log_context`, and read when the line is written, so the
log calls themselves name nothing twice. Only names, GUIDs and counts go in the
context; never a URL of a destination or a token (the messages redact their URLs).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
CONTEXT_FIELDS = ("feed", "talk", "destination", "attempt")

_EMPTY: Mapping[str, str | int] = MappingProxyType({})
_context: ContextVar[Mapping[str, str | int]] = ContextVar("watcher_log_context", default=_EMPTY)


class log_context:  # lower case: it reads as a function, `with log_context(feed=name):`
    """Within this block (`with`, or `async with` beside other async context managers),
    and in the tasks and threads it starts, log lines carry these fields as well as those
    set around it; a None field is left out."""

    def __init__(self, **fields: str | int | None) -> None:
        unknown = set(fields) - set(CONTEXT_FIELDS)
        if unknown:
            raise ValueError(f"not a log context field: {sorted(unknown)}")
        self._fields = {k: v for k, v in fields.items() if v is not None}
        self._tokens: list[Token[Mapping[str, str | int]]] = []

    def __enter__(self) -> None:
        fields = MappingProxyType({**_context.get(), **self._fields})
        self._tokens.append(_context.set(fields))

    def __exit__(self, *exc: object) -> None:
        _context.reset(self._tokens.pop())

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


class ContextFilter(logging.Filter):
    """Copies the context in force onto each record (as `record.context`), in the task
    or thread that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "context"):
            record.context = _context.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, the
    context fields that are known, and a traceback as `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, object] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "context", None)
        if context is None:
            context = _context.get()
        for key in CONTEXT_FIELDS:
            if key in context:
                line[key] = context[key]
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The watcher's own handler on standard error, so that its format can be changed
    once the config is read."""


def configure(verbose: bool, log_format: str) -> None:
    """Logs to standard error, as text (as `logging.basicConfig` writes them) or JSON."""
    handler = _Handler(sys.stderr)
    handler.addFilter(ContextFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    set_format(log_format)


def set_format(log_format: str) -> None:
    """Switch the watcher's handler to this format (`[watcher] log_format`)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            handler.setFormatter(
                JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
            )


def current_format() -> str:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            return "json" if isinstance(handler.formatter, JsonFormatter) else "text"
    return "text"
