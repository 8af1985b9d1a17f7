"""The default email, rendered in a real headless Chromium (as an email client's web view
would): a designed card, not a bare page: a sans-serif face, the thumbnail beside the
title, two buttons, the first lines quoted; its plain part reads as well. A screenshot
is kept in tests/artifacts/."""

from __future__ import annotations

from tests.store_helpers import talk
from tests.test_page_browser import ARTIFACTS, browser, png  # noqa: F401 (a fixture)
from watcher.notifiers.base import Delivery
from watcher.notifiers.email import render


def test_the_default_email_is_a_designed_card(tmp_path, httpserver, browser):  # noqa: F811
    httpserver.expect_request("/slide.png").respond_with_data(
        png(320, 180, (200, 40, 40)), content_type="image/png"
    )
    shown = talk(
        "https://e.test/t/1",
        "Keeping feeds polite <script>alert(1)</script>",
        speaker="Ada Lovelace",
        event="PyCon Africa",
        url="https://e.test/t/1",
        video_url="https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        slide_count=12,
        duration=862,
        thumbnail=httpserver.url_for("/slide.png"),
        first_lines=["Feeds are read by machines.", "Be polite to them."],
    )
    message = render(Delivery("id", "talks", "mail", shown), "w@e.test", ("team@e.test",))
    page = tmp_path / "email.html"
    page.write_text(message.get_body(("html",)).get_content(), encoding="utf-8")
    browser.get(page.as_uri())
    from selenium.webdriver.common.by import By

    title = browser.find_element(By.TAG_NAME, "h1")
    assert title.text == "Keeping feeds polite <script>alert(1)</script>", "escaped, as text"
    assert browser.find_elements(By.TAG_NAME, "script") == []
    face = browser.execute_script("return getComputedStyle(arguments[0]).fontFamily", title)
    assert "serif" not in face.lower().replace("sans-serif", ""), face
    assert "helvetica" in face.lower() or "arial" in face.lower(), face
    picture = browser.find_element(By.CSS_SELECTOR, "img[alt='First slide']")
    assert browser.execute_script("return arguments[0].naturalWidth", picture) == 320
    assert picture.rect["x"] + picture.rect["width"] <= title.rect["x"], "beside the title"
    assert picture.rect["y"] <= title.rect["y"] < picture.rect["y"] + picture.rect["height"]
    buttons = [(a.text, a.get_attribute("href")) for a in browser.find_elements(By.TAG_NAME, "a")]
    assert buttons == [
        ("Talk page", "https://e.test/t/1"),
        ("Video", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
    ]
    assert browser.find_elements(By.TAG_NAME, "ul") == [], "no bare bulleted list"
    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(700, 700)
    assert browser.save_screenshot(str(ARTIFACTS / "email.png"))
    plain = message.get_body(("plain",)).get_content()
    assert plain.startswith("Keeping feeds polite") and "Talk page: https://e.test/t/1" in plain
