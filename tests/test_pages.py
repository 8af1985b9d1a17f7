"""A page instead of a feed: `poll`, `inspect`, `check-config --fetch` and `status`, run as
processes against pages and feeds served on 127.0.0.1."""

from __future__ import annotations

import json
import shutil

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import (
    SEED_FEED,
    FeedHost,
    Recorder,
    add_talk,
    feed_status,
    one_feed,
    seed_bytes,
    watcher_command,
    webhook_table,
    write_config,
)

NEW = (
    "PaGe5T4lk0A",
    "Found on its page | Grace Hopper | PageConf",
    "Wed, 10 Jun 2026 09:00:00 +0000",
)


class Page:
    """An HTML page (Hugo's shape: relative hrefs) advertising feeds; records its requests."""

    def __init__(self, server: HTTPServer, path: str, *feeds: str) -> None:
        self.server = server
        self.path = path
        self.requests: list[dict[str, str]] = []
        self.advertise(*feeds)
        server.expect_request(path).respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return self.server.url_for(self.path)

    def advertise(self, *feeds: str) -> None:
        links = "\n".join(
            f'    <link rel="alternate" type="application/rss+xml" href="{href}" title="PageConf">'
            for href in feeds
        )
        self.body = (
            '<!DOCTYPE html>\n<html lang="en">\n  <head>\n    <meta charset="utf-8">\n'
            f"    <title>PageConf</title>\n{links}\n  </head>\n  <body>Talks</body>\n</html>\n"
        ).encode()

    def _handle(self, request: Request) -> Response:
        self.requests.append(dict(request.headers))
        return Response(
            self.body, content_type="text/html; charset=utf-8", headers={"ETag": '"p1"'}
        )


def config(url: str, hook: Recorder, notify_existing: int = 0) -> str:
    return one_feed(
        url,
        webhook_table("hook", hook.url),
        feed=f"notify_existing = {notify_existing}",
        state="state/watcher.json",
    )


def poll(cwd, *args):
    return watcher_command("poll", "--config", "watcher.toml", *args, cwd=cwd)


def test_poll_reads_the_feed_a_page_advertises_then_only_that_feed(tmp_path, httpserver):
    feed = FeedHost(httpserver, "/feeds/talks.xml")
    page = Page(httpserver, "/", "/feeds/talks.xml", "/comments/feed.xml")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook, notify_existing=1))

    first = poll(tmp_path)
    assert first.returncode == 0, first.stderr
    assert (
        f"feed talks: {page.url} is a page; polling the feed it advertises: {feed.url}"
        " (it advertises 2 feeds; taking the first)" in first.stderr
    )
    assert "first poll, 3 talks recorded as seen, 1 announced" in first.stderr
    assert [p["feed"] for p in hook.received] == ["talks"]
    assert len(page.requests) == 1 and feed.responses == [200]

    second = poll(tmp_path)
    assert second.returncode == 0, second.stderr
    assert len(page.requests) == 1, "the page is not fetched again"
    assert feed.responses == [200, 304]
    assert feed.requests[1]["If-None-Match"] == feed.etag
    assert "is a page" not in second.stderr
    assert len(hook.received) == 1

    status = feed_status(tmp_path)
    assert status["discovered_url"] == feed.url and status["last_error"] is None
    text = watcher_command("status", "--config", "watcher.toml", cwd=tmp_path).stdout
    assert f"its url is a page; polling the feed it advertises: {feed.url}" in text


@pytest.mark.parametrize("how", ["404", "410", "a page now"])
def test_a_feed_gone_from_its_url_is_found_again_on_its_page(tmp_path, httpserver, how):
    old = FeedHost(httpserver, "/old.xml")
    new = FeedHost(httpserver, "/new.xml")
    new.set_body(add_talk(seed_bytes(), *NEW))  # the same talks, and one more
    page = Page(httpserver, "/channel", "old.xml")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook))
    assert poll(tmp_path).returncode == 0
    assert len(page.requests) == 1 and hook.received == []

    if how == "a page now":
        old.set_body(b"<!DOCTYPE html><html><body>This feed has moved</body></html>")
    else:
        old.status = int(how)
    page.advertise("new.xml")
    moved = poll(tmp_path)

    assert moved.returncode == 0, moved.stderr
    assert f"advertised feed {old.url}: " in moved.stderr
    assert "reading its page again for the feed it advertises now" in moved.stderr
    assert f"is a page; polling the feed it advertises: {new.url}" in moved.stderr
    assert len(page.requests) == 2
    assert "If-None-Match" not in page.requests[1], "the old feed's ETag is not the page's"
    assert "If-None-Match" not in new.requests[0]
    assert [p["talk"]["video_id"] for p in hook.received] == [NEW[0]], "the moved talks are not new"
    status = feed_status(tmp_path)
    assert status["discovered_url"] == new.url and status["gone"] is False

    again = poll(tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(page.requests) == 2 and new.responses == [200, 304]
    assert len(hook.received) == 1


def test_a_feed_that_fails_for_a_while_is_kept(tmp_path, httpserver):
    feed = FeedHost(httpserver, "/feed.xml")
    page = Page(httpserver, "/", "/feed.xml")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook))
    assert poll(tmp_path).returncode == 0

    feed.status = 503
    down = poll(tmp_path)
    assert down.returncode == 1
    assert f"feed talks: advertised feed {feed.url}: HTTP 503" in down.stderr
    assert len(page.requests) == 1
    assert feed_status(tmp_path)["discovered_url"] == feed.url

    feed.status = 200
    feed.set_body(add_talk(feed.body, *NEW))
    back = poll(tmp_path)
    assert back.returncode == 0, back.stderr
    assert len(page.requests) == 1
    assert [p["talk"]["video_id"] for p in hook.received] == [NEW[0]]


def test_an_advertised_feed_that_is_no_feed_is_looked_for_again_next_poll(tmp_path, httpserver):
    feed = FeedHost(httpserver, "/feed.xml")
    page = Page(httpserver, "/", "/feed.xml")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook))
    assert poll(tmp_path).returncode == 0

    feed.set_body(b'{"version": "https://jsonfeed.org/version/1.1", "items": []}')
    broken = poll(tmp_path)
    assert broken.returncode == 1
    assert f"feed talks: advertised feed {feed.url}: not a feed: got JSON" in broken.stderr
    assert feed_status(tmp_path)["discovered_url"] is None

    feed.set_body(seed_bytes())
    fixed = poll(tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert len(page.requests) == 2 and hook.received == []


def test_a_changed_url_forgets_the_feed_found_on_the_old_page(tmp_path, httpserver):
    feed = FeedHost(httpserver, "/feed.xml")
    page = Page(httpserver, "/", "/feed.xml")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook))
    assert poll(tmp_path).returncode == 0

    write_config(tmp_path, config(feed.url, hook))  # now the feed itself
    direct = poll(tmp_path)
    assert direct.returncode == 0, direct.stderr
    assert "is a page" not in direct.stderr
    assert feed.responses == [200, 200], "validators of another source are not sent"
    assert feed_status(tmp_path)["discovered_url"] is None
    assert hook.received == [], "same feed name, same talks: nothing is new"


def test_a_page_that_advertises_no_feed_says_so(tmp_path, httpserver):
    page = Page(httpserver, "/")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook))
    result = poll(tmp_path)
    assert result.returncode == 1
    error = "not a feed: got an HTML page that advertises no RSS or Atom feed"
    assert f"ERROR feed talks: {error}" in result.stderr
    assert feed_status(tmp_path)["last_error"] == error


def test_a_page_never_leads_to_another_page(tmp_path, httpserver):
    Page(httpserver, "/other", "/feed.xml")
    page = Page(httpserver, "/", "/other")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook))
    result = poll(tmp_path)
    assert result.returncode == 1
    other = httpserver.url_for("/other")
    assert f"advertised feed {other}: not a feed: got an HTML page" in result.stderr


def test_inspect_reads_the_feed_a_page_advertises(tmp_path, httpserver):
    feed = FeedHost(httpserver, "/index.xml")
    page = Page(httpserver, "/", "/index.xml", "/comments.xml")

    text = watcher_command("inspect", page.url, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stderr.strip() == (
        f"watcher: {page.url} is a page; reading the feed it advertises: {feed.url}"
        " (it advertises 2 feeds; taking the first)"
    )
    assert text.stdout.startswith("3 talks in ")

    as_json = watcher_command("inspect", page.url, "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert len(json.loads(as_json.stdout)) == 3
    assert "is a page; reading the feed it advertises" in as_json.stderr

    page.advertise()
    none = watcher_command("inspect", page.url, cwd=tmp_path)
    assert none.returncode == 1
    assert none.stderr.strip() == (
        f"watcher: error: {page.url}: not a feed: got an HTML page that advertises no RSS or Atom"
        " feed"
    )


def test_inspect_a_local_page(tmp_path):
    site = tmp_path / "site"
    (site / "feeds").mkdir(parents=True)
    shutil.copy(SEED_FEED, site / "feeds" / "talks.xml")
    (site / "index.html").write_text(
        '<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml"'
        ' href="feeds/talks.xml"></head></html>'
    )
    result = watcher_command("inspect", "site/index.html", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "reading the feed it advertises: site/feeds/talks.xml" in result.stderr
    assert len(json.loads(result.stdout)) == 3


def test_check_config_fetch_says_what_each_url_holds(tmp_path, httpserver):
    feed = FeedHost(httpserver, "/feed.xml")
    page = Page(httpserver, "/", "/feed.xml", "/comments.xml")
    gone = FeedHost(httpserver, "/gone.xml")
    gone.status = 404
    hook = Recorder(httpserver, "/hook")
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(SEED_FEED, site / "talks.xml")
    (site / "index.html").write_text(
        '<html><head><link rel="alternate" type="application/atom+xml" href="talks.xml"></head>'
    )
    feeds = {
        "direct": feed.url,
        "page": page.url,
        "gone": gone.url,
        "local-page": "site/index.html",
        "missing": "site/missing.xml",
        "down": "http://127.0.0.1:9/feed.xml",
    }
    body = config(feed.url, hook).split("[[feeds]]")[0] + "".join(
        f'[[feeds]]\nname = "{name}"\nurl = "{url}"\n\n' for name, url in feeds.items()
    )
    body += f'[[destinations]]\nname = "hook"\ntype = "webhook"\nurl = "{hook.url}"\n'
    write_config(tmp_path, body)

    plain = watcher_command("check-config", "--config", "watcher.toml", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert feed.requests == [] and page.requests == [], "no --fetch, no fetching"

    result = watcher_command("check-config", "--config", "watcher.toml", "--fetch", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = dict(
        zip(feeds, result.stdout.split("  destinations")[0].splitlines()[4::2], strict=True)
    )
    assert said == {
        "direct": "      feed OK, 3 talks",
        "page": f"      a page; its feed: {feed.url}, 3 talks"
        " (it advertises 2 feeds; taking the first)",
        "gone": "      error: HTTP 404 NOT FOUND",
        "local-page": "      a page; its feed: site/talks.xml, 3 talks",
        "missing": "      error: no such file: site/missing.xml",
        "down": "      error: connection failed: refused",
    }


def test_relative_links_resolve_against_the_page_after_redirects(tmp_path, httpserver):
    feed = FeedHost(httpserver, "/site/index.xml")
    page = Page(httpserver, "/site/", "index.xml")
    httpserver.expect_request("/start").respond_with_response(
        Response(status=302, headers={"Location": page.url})
    )
    result = watcher_command("inspect", httpserver.url_for("/start"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"reading the feed it advertises: {feed.url}" in result.stderr


def test_a_page_still_advertising_its_gone_feed_fails_but_is_not_gone(tmp_path, httpserver):
    feed = FeedHost(httpserver, "/feed.xml")
    page = Page(httpserver, "/", "/feed.xml")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook))
    assert poll(tmp_path).returncode == 0

    feed.status = 410
    result = poll(tmp_path)
    assert result.returncode == 1
    assert f"ERROR feed talks: advertised feed {feed.url}: HTTP 410 GONE" in result.stderr
    assert len(page.requests) == 2 and feed.responses == [200, 410], "not fetched twice"
    status = feed_status(tmp_path)
    assert status["gone"] is False, "the page is what the config names, and it is there"
    assert status["discovered_url"] is None


def test_another_feed_found_on_the_page_is_recorded_not_announced(tmp_path, httpserver):
    """The page now advertises another feed first (its comments) and the talks feed is gone:
    that feed's back catalogue is not news, so it is recorded as seen, with a warning."""
    talks = FeedHost(httpserver, "/talks.xml")
    comments = FeedHost(httpserver, "/comments.xml")
    comments.set_body((SEED_FEED.parent / "atom.xml").read_bytes())
    page = Page(httpserver, "/", "talks.xml")
    hook = Recorder(httpserver, "/hook")
    write_config(tmp_path, config(page.url, hook))
    assert poll(tmp_path).returncode == 0

    talks.status = 404
    page.advertise("comments.xml", "talks.xml")
    switched = poll(tmp_path)
    assert switched.returncode == 0, switched.stderr
    assert f"the feed found on its page now ({comments.url}) shares few talks" in switched.stderr
    assert hook.received == []
    assert feed_status(tmp_path)["discovered_url"] == comments.url
