"""The status page in a real browser: Debian's chromium driven by chromedriver through
Selenium (never Selenium Manager: the binaries are named). A real daemon polls a feed
served on 127.0.0.1 whose talks are hostile (a title that is an `<img onerror>`, a
`javascript:` link and picture), delivers them to a recording webhook (and dead-letters
them at a destination that rejects them), and the page it serves is opened: the talks
render, the hostile title is literal text, nothing runs, no `javascript:` link exists,
the page's style applies under its CSP, and screenshots are saved, at a desktop and at
a phone's width, in tests/artifacts/.

`.ci/run` installs chromium and chromium-driver when missing; without them the test is
skipped, except under CI, where it fails."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import httpx
import pytest
from werkzeug import Response

from tests.conftest import Recorder, one_feed, webhook_table, write_config
from tests.test_service import address_of

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"
HOSTILE = "<img src=x onerror=alert(1)>"
INSTALL = "apt-get install -y chromium chromium-driver (as .ci/run does)"


def _browser_missing() -> str | None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    return ", ".join(missing) or None


@pytest.fixture
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test, but these are missing: {missing}")
        pytest.skip(f"no headless browser: {missing}; install it with {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG of one colour: the slides' pictures."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" + bytes(rgb) * width
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def item(title: str, link: str, guid: str, day: int, video: str, slides: list[str]) -> str:
    """An item shaped like the seed's: a YouTube embed, the slide count it claims, and
    each slide's heading, picture and transcript (escaped, as in a real feed)."""
    html = [
        f'<iframe src="https://www.youtube.com/embed/{video}"></iframe>',
        f"<p><em>{len(slides)} slides extracted.</em></p>",
    ]
    for n, image in enumerate(slides, 1):
        html.append(
            f"<h2>Slide {n} — {n * 7}:{n * 11 % 60:02d}</h2><table><tr>"
            f'<td><img src="{image}" alt="Slide {n}"></td><td>Slide {n} says hello.</td>'
            "</tr></table>"
        )
    description = "".join(html).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>"
        f"<pubDate>Mon, {day:02d} Jun 2026 10:00:00 +0000</pubDate>"
        f"<description>{description}</description></item>"
    )


def hostile_feed(base: str) -> bytes:
    items = [
        item(
            "&lt;img src=x onerror=alert(1)&gt; | Mallory | HostileConf",
            f"{base}/talks/xss",
            "xss",
            3,
            "AAAAAAAAAAA",
            [f"{base}/slides/red.png", f"{base}/slides/blue.png", f"{base}/slides/red.png"],
        ),
        item(
            "Click me | Eve | HostileConf",
            "javascript:alert(2)",
            "js-link",
            2,
            "BBBBBBBBBBB",
            ["javascript:alert(3)"],
        ),
        item(
            "Keeping feeds polite | Ada Lovelace | PyCon Africa",
            f"{base}/talks/polite",
            "polite",
            1,
            "CCCCCCCCCCC",
            [f"{base}/slides/blue.png", f"{base}/slides/red.png"],
        ),
    ]
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Hostile talks</title><link>{base}/</link>{''.join(items)}</channel></rss>"
    ).encode()


def test_the_status_page_in_a_real_browser(tmp_path, httpserver, daemons, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    base = httpserver.url_for("").rstrip("/")
    pictures = {"red": png(160, 90, (200, 40, 40)), "blue": png(160, 90, (40, 80, 200))}
    fetched_pictures: list[str] = []

    def picture(request):
        name = request.path.rsplit("/", 1)[-1].removesuffix(".png")
        fetched_pictures.append(name)
        return Response(pictures[name], content_type="image/png")

    for name in pictures:
        httpserver.expect_request(f"/slides/{name}.png").respond_with_handler(picture)
    httpserver.expect_request("/feed.xml").respond_with_data(
        hostile_feed(base), content_type="application/rss+xml"
    )
    hook = Recorder(httpserver, "/hook")
    rejecting = Recorder(httpserver, "/rejecting", [400] * 3)
    write_config(
        tmp_path,
        one_feed(
            f"{base}/feed.xml",
            webhook_table("hook", hook.url),
            webhook_table("rejecting", rejecting.url),
            watcher='listen = "127.0.0.1:0"\ninterval = "1h"',
            feed="notify_existing = 3",
        ),
    )
    daemon = daemons(tmp_path, "--config", "watcher.toml")
    address = address_of(tmp_path, daemon)
    daemon.wait_for(lambda: len(hook.received) == 3, "3 deliveries to the webhook")
    assert {talk["talk"]["title"] for talk in hook.received} >= {HOSTILE}

    def settled() -> bool:
        talks = httpx.get(f"{address}/status.json", timeout=5).json()["recent_talks"]
        states = {(d["destination"], d["state"]) for t in talks for d in t["deliveries"]}
        return len(talks) == 3 and states == {("hook", "delivered"), ("rejecting", "dead-lettered")}

    daemon.wait_for(settled, "the deliveries' outcomes in the status")

    response = httpx.get(f"{address}/", timeout=5)
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    assert "script-src" not in policy and "style-src 'sha256-" in policy
    assert response.headers["x-content-type-options"] == "nosniff"

    browser.get(f"{address}/")
    titles = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#talks h3.title")]
    assert titles == [HOSTILE, "Click me", "Keeping feeds polite"], "newest first, as text"
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert browser.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert browser.find_elements(By.CSS_SELECTOR, "script, [onerror]") == []
    hrefs = [a.get_attribute("href") or "" for a in browser.find_elements(By.CSS_SELECTOR, "a")]
    assert hrefs and not [h for h in hrefs if not h.startswith(("http://", "https://"))]
    assert f"{base}/talks/xss" in hrefs and "https://www.youtube.com/watch?v=AAAAAAAAAAA" in hrefs
    srcs = [i.get_attribute("src") for i in browser.find_elements(By.CSS_SELECTOR, "img")]
    assert srcs == [f"{base}/slides/red.png", f"{base}/slides/blue.png"], "no javascript: one"

    [xss, js_link, polite] = browser.find_elements(By.CSS_SELECTOR, "#talks article")
    assert "Mallory · HostileConf" in xss.text and "3 slides" in xss.text
    assert "hook: delivered" in xss.text and "rejecting: dead-lettered" in xss.text
    assert "talk page" not in js_link.text and "video" in js_link.text
    assert "1 slide ·" in js_link.text
    assert "Ada Lovelace · PyCon Africa" in polite.text and "2 slides" in polite.text
    feeds = browser.find_element(By.ID, "feeds").text
    assert "failures in a row\n0" in feeds and "quiet for" in feeds and "next poll" in feeds
    destinations = browser.find_element(By.ID, "destinations").text
    assert "dead letters\n3" in destinations and "HTTP 400" in destinations
    assert HOSTILE in destinations, "a dead letter's title, as text"

    body = browser.find_element(By.TAG_NAME, "body")
    assert body.value_of_css_property("max-width") == "960px", "the style ran under the CSP"
    daemon.wait_for(
        lambda: browser.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
        ),
        "the thumbnails to load",
    )
    blocked = [
        e["message"] for e in browser.get_log("browser") if "Content Security" in e["message"]
    ]
    assert blocked == [], "nothing of the page itself was blocked"

    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # the whole page
    assert browser.save_screenshot(str(ARTIFACTS / "status-page.png"))
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
    )
    browser.get(f"{address}/")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"the page fits a phone's width (it is {width}px wide)"
    assert browser.save_screenshot(str(ARTIFACTS / "status-page-phone.png"))
    assert daemon.stop() == 0
