"""What reaches readers: feed text never acts on Slack or email, and fits their limits."""

from __future__ import annotations

import email
import email.policy
import json

import pytest
from slack_sdk.models.blocks import Block

from tests.conftest import SEED_FEED
from watcher.feed import parse_feed
from watcher.notifiers.base import Delivery, json_bytes
from watcher.notifiers.console import render as render_console
from watcher.notifiers.email import render as render_email
from watcher.notifiers.slack import render as render_slack
from watcher.notifiers.webhook import render as render_webhook
from watcher.talk import Talk
from watcher.text import clean_text

HOSTILE = "<!channel> & <!here> <@U123> <https://evil.example|click me>"


def hostile_talk(**changes) -> Talk:
    base = parse_feed(SEED_FEED.read_bytes()).talks[0]
    fields = base.to_dict() | {
        "title": f"Title {HOSTILE}",
        "speaker": f"Speaker {HOSTILE}",
        "event": f"Event {HOSTILE}",
        "first_lines": [f"Transcript {HOSTILE}"] * 3,
    }
    return Talk.from_dict(fields | changes)


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def validate_slack(message: dict) -> None:
    blocks = Block.parse_all(message["blocks"])
    assert len(blocks) <= 50
    for block in blocks:
        block.validate_json()


def test_slack_escapes_every_feed_string():
    message = render_slack(Delivery("id", "talks", "team-slack", hostile_talk()))
    validate_slack(message)
    for text in strings(message):
        assert "<!" not in text and "<@" not in text and "<http" not in text, text
    flat = json.dumps(message)
    assert "&lt;!channel&gt; &amp; &lt;!here&gt; &lt;@U123&gt;" in flat
    assert "&lt;https://evil.example|click me&gt;" in flat


def test_slack_cuts_long_text_to_block_kit_limits_without_breaking_an_escape():
    talk = hostile_talk(title="&" * 400, speaker="s" * 5000, first_lines=["<" * 2000] * 3)
    message = render_slack(Delivery("id", "talks", "team-slack", talk))
    validate_slack(message)
    header = message["blocks"][0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("&amp;…")
    quoted = next(b for b in message["blocks"] if b["type"] == "section")["text"]["text"]
    assert len(quoted) <= 3000 and "&lt…" not in quoted
    assert len(message["text"]) <= 3000


def test_slack_message_for_a_bare_talk_is_valid():
    talk = Talk.from_dict(
        {
            "guid": "g",
            "title": "Just a title",
            "raw_title": "Just a title",
            "slides_present": 0,
            "first_lines": [],
        }
    )
    message = render_slack(Delivery("id", "f", "s", talk))
    validate_slack(message)
    assert [b["type"] for b in message["blocks"]] == ["header"]


@pytest.mark.parametrize(
    "title",
    [
        "Hello\r\nBcc: victim@example.com",
        "Hello\nBcc: victim@example.com",
        "Hello\u2028Bcc: victim@example.com",
        "Hello\x00\x0bBcc: victim@example.com",
        "=?UTF-8?Q?Hello=0ABcc:_victim@example.com?=",
    ],
)
def test_no_header_injection_in_email(title):
    talk = hostile_talk(title=title)
    message = render_email(
        Delivery("0123456789abcdef", "talks", "mail", talk),
        "watcher@example.com",
        ("team@example.com",),
    )
    raw = message.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert set(parsed.keys()) == {
        "Subject",
        "From",
        "To",
        "Date",
        "Message-ID",
        "Content-Type",
        "MIME-Version",
    }
    subject = str(parsed["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert parsed["To"] == "team@example.com"


def test_email_html_escapes_feed_text():
    talk = hostile_talk(title="<script>alert(1)</script>")
    message = render_email(
        Delivery("0123456789abcdef", "talks", "mail", talk),
        "watcher@example.com",
        ("team@example.com",),
    )
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<@U123>" not in html


def test_webhook_payload_is_valid_json_even_for_broken_unicode():
    """A lone surrogate (what a broken feed's text can decode to) in the bytes the webhook
    sends and signs: the encoder it uses, on text as the parse cleans it."""
    talk = hostile_talk(title=clean_text("bad \udcff surrogate"))
    body = json_bytes(render_webhook(Delivery("id", "talks", "hook", talk)))
    assert json.loads(body.decode("utf-8"))["talk"]["title"] == "bad \ufffd surrogate"


def test_a_truncated_talks_duration_reads_as_a_lower_bound_everywhere():
    """The seed's second item claims 151 slides and carries 2: its last slide's time is
    not the talk's length, and every destination says so."""
    truncated = parse_feed(SEED_FEED.read_bytes()).talks[1]
    assert (truncated.duration, truncated.duration_is_partial) == (114, True)
    delivery = Delivery("id", "talks", "dest", truncated)

    slack = json.dumps(render_slack(delivery), ensure_ascii=False)
    mail = render_email(delivery, "from@example.com", ("to@example.com",))
    bodies = [part.get_content() for part in mail.walk() if not part.is_multipart()]
    for text in [render_console(delivery), slack, *bodies]:
        assert "at least 1:54" in text
    payload = render_webhook(delivery)
    assert payload["talk"]["duration_is_partial"] is True
    complete = Delivery("id", "talks", "dest", parse_feed(SEED_FEED.read_bytes()).talks[0])
    assert "at least" not in render_console(complete)
