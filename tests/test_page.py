"""The status page without a browser: the report of a real store rendered, with feed
text that is hostile everywhere it can reach the page (titles, speakers, errors, links,
thumbnails). Every value is escaped, only http(s) URLs become links or images, the page
carries no script, and the CSP allows its own style sheet by hash and nothing else."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import lxml.html

from tests.conftest import one_feed, webhook_table, write_config
from tests.store_helpers import record
from watcher.config import load_config
from watcher.events import DeliveryEvent, DeliveryOutcome
from watcher.page import CONTENT_SECURITY_POLICY, clock, render_page, span
from watcher.status import collect_status
from watcher.store import NewDelivery, Store
from watcher.talk import Talk

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
XSS = "<img src=x onerror=alert(1)>"
SCRIPT = "</h3><script>alert('speaker')</script>"
HOSTILE_URLS = (
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    'https://ok.example/"onerror="alert(1)',
)


def hostile_talk(guid: str, url: str | None, thumbnail: str | None) -> Talk:
    return Talk(
        guid=guid,
        title=XSS,
        speaker=SCRIPT,
        event="A & B <b>Conf</b>",
        raw_title=XSS,
        url=url,
        video_id=None,
        video_url=url,
        published="2026-05-30T10:00:00Z",
        slide_count=64,
        slides_present=64,
        duration=3723,
        thumbnail=thumbnail,
    )


def report_of(tmp_path, talks: list[Talk], *, dead: bool = False) -> dict:
    write_config(
        tmp_path,
        one_feed("https://feeds.example/talks.xml", webhook_table("hook", "https://hook.example/")),
    )
    config = load_config(tmp_path / "watcher.toml")
    store = Store(tmp_path / "state.json", lock=False)
    stamp = "2026-06-01T11:00:00Z"
    record(
        store,
        "talks",
        deliveries=[NewDelivery(f"d-{t.guid}", "talks", "hook", t, stamp) for t in talks],
        baselined=True,
        last_success=stamp,
        last_new_talk=stamp,
        last_error="<script>alert('error')</script> HTTP 500",
        failures=2,
    )
    for entry in store.pending("hook"):
        if dead:
            store.update_deliveries(
                [dataclasses.replace(entry, dead=True, attempts=1, last_error=f"400 {XSS}")]
            )
        else:
            store.delivered(entry.id)
            store.note_delivery(
                DeliveryEvent("hook", "talks", entry.talk.guid, DeliveryOutcome.SENT, NOW)
            )
    report = collect_status(config, store.snapshot(), NOW)
    store.close()
    return report


def hrefs_and_srcs(page: str) -> list[str]:
    tree = lxml.html.fromstring(page)
    return [*tree.xpath("//@href"), *tree.xpath("//@src")]


def test_hostile_text_is_escaped_and_no_script_or_handler_reaches_the_page(tmp_path):
    ok = hostile_talk("ok", "https://talks.example/1", "https://img.example/1.png")
    page = render_page(report_of(tmp_path, [ok]))
    tree = lxml.html.fromstring(page)
    assert tree.xpath("//script") == [] and tree.xpath("//*[@onerror]") == []
    assert tree.xpath("//img[@src='x']") == []
    assert [h.text_content() for h in tree.xpath("//h3[@class='title']")] == [XSS]
    assert tree.xpath("string(//span[@class='speaker'])") == SCRIPT
    assert tree.xpath("string(//span[@class='event'])") == "A & B <b>Conf</b>"
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert('error')</script>" not in page
    assert "HTTP 500" in tree.xpath("string(//section[@id='feeds'])")
    assert set(hrefs_and_srcs(page)) == {
        "https://talks.example/1",
        "https://img.example/1.png",
    }
    text = tree.xpath("string(//section[@id='talks'])")
    assert "64 slides" in text and "1:02:03" in text
    assert "hook:" in text and "delivered 2026-06-01 12:00:00 UTC" in text


def test_only_http_urls_become_links_or_images(tmp_path):
    talks = [hostile_talk(f"t{n}", url, url) for n, url in enumerate(HOSTILE_URLS)]
    page = render_page(report_of(tmp_path, talks))
    tree = lxml.html.fromstring(page)
    assert len(tree.xpath("//article[contains(@class, 'talk')]")) == len(HOSTILE_URLS)
    assert hrefs_and_srcs(page) == [], "no link, no image"
    assert "javascript:" not in page.lower() and "data:" not in page


def test_dead_letters_are_shown_escaped(tmp_path):
    page = render_page(report_of(tmp_path, [hostile_talk("d", None, None)], dead=True))
    tree = lxml.html.fromstring(page)
    [dead] = tree.xpath("//ul[@class='dead-letters']/li")
    assert dead.xpath("string(span[@class='title'])") == XSS
    assert dead.text_content().endswith(f"400 {XSS}")
    assert "dead-lettered" in tree.xpath("string(//ul[@class='deliveries'])")
    assert tree.xpath("//img") == []


def test_the_csp_allows_the_pages_own_style_by_hash_and_no_script():
    page = render_page(
        {
            "state": "s",
            "generated": NOW.isoformat(),
            "feeds": [],
            "destinations": [],
            "recent_talks": [],
        }
    )
    [style] = lxml.html.fromstring(page).xpath("//style")
    digest = base64.b64encode(hashlib.sha256(style.text.encode()).digest()).decode()
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["style-src"] == f"'sha256-{digest}'"
    assert policy["default-src"] == "'none'" and "script-src" not in policy
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert policy["img-src"] == "https: http:"
    assert "No talk has been queued yet." in page


def test_times_in_words():
    assert [span(s) for s in (0, 40, 300, 3723, 90061, None)] == [
        "0 s",
        "40 s",
        "5 min",
        "1 h 2 min",
        "1 d 1 h",
        "unknown",
    ]
    assert [clock(s) for s in (59, 3250, 3723, None)] == ["0:59", "54:10", "1:02:03", ""]


def test_the_readme_states_the_policy_sent():
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    stated = re.sub(r"'sha256-[^']+'", "'sha256-…'", CONTENT_SECURITY_POLICY)
    assert f"`Content-Security-Policy: {stated}`" in readme
