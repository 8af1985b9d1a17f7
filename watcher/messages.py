"""Operators' message templates (`template`, and `subject` on email): Jinja2, sandboxed,
checked at config load by rendering a sample talk.

Feed text is untrusted inside a template too: every value is escaped for its target
before it enters (Slack mrkdwn: `&`, `<`, `>`; HTML: HTML, by autoescape; plain text:
control characters removed; a header: one line), so no template can make a title ping
`@channel`, inject a link or a header. The template's own literal text is trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

from watcher.schema import ConfigError
from watcher.talk import Talk
from watcher.text import clean_text

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

Target = Literal["slack", "html", "text", "header"]

_SLACK = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

SAMPLE = Talk(
    guid="https://example.com/talks/1",
    title="A sample talk",
    speaker="Ada Lovelace",
    event="Sample Conf",
    raw_title="Sample Conf | A sample talk | Ada Lovelace",
    url="https://example.com/talks/1",
    video_id="dQw4w9WgXcQ",
    video_url="https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    published="2026-01-01T00:00:00Z",
    slide_count=12,
    slides_present=12,
    duration=1234,
    thumbnail="https://example.com/talks/1/slide_000.png",
    first_lines=["The first line.", "The second line."],
)


def _escaper(target: Target) -> Callable[[str], str]:
    if target == "slack":
        return lambda value: "".join(_SLACK.get(ch, ch) for ch in clean_text(value))
    if target == "header":
        return lambda value: clean_text(value).replace("=?", "= ?")
    return clean_text  # html: autoescape does the rest


def _environment(target: Target) -> SandboxedEnvironment:
    """Imported here: Jinja2 is a tenth of a command's start-up, and only templates need it."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        autoescape=target == "html",
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class MessageTemplate:
    def __init__(self, source: str, target: Target, where: str) -> None:
        import jinja2

        self.source = source
        self.target = target
        try:
            self.template = _environment(target).from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"{where}: template syntax error at line {exc.lineno}: {exc.message}"
            ) from None
        try:
            self.render(SAMPLE, "sample-feed")
        except jinja2.UndefinedError as exc:
            raise ConfigError(
                f"{where}: {exc.message} (the template uses a variable a talk has not)"
            ) from None
        except jinja2.TemplateError as exc:
            raise ConfigError(f"{where}: the template fails on a sample talk: {exc}") from None

    def render(self, talk: Talk, feed: str) -> str:
        escape = _escaper(self.target)
        return self.template.render(talk=_escaped(asdict(talk), escape), feed=escape(feed))

    def __eq__(self, other: object) -> bool:  # for a reload: the same text is the same template
        return isinstance(other, MessageTemplate) and (other.source, other.target) == (
            self.source,
            self.target,
        )

    def __hash__(self) -> int:
        return hash((self.source, self.target))


def _escaped(value: Any, escape: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list):
        return [_escaped(item, escape) for item in value]
    if isinstance(value, Mapping):
        return {key: _escaped(item, escape) for key, item in value.items()}
    return value


def template_setting(target: Target) -> Callable[[Any, str], MessageTemplate]:
    """A config `Setting` kind: the template's text, compiled and checked."""

    def read(value: Any, where: str) -> MessageTemplate:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: expected a template (a non-empty string)")
        return MessageTemplate(value, target, where)

    return read
