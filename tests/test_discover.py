"""`advertised_feeds` and `is_html_page` on the page shapes real sites write.

The shapes come from the generators themselves:
- YouTube channel pages: `<link rel="alternate" type="application/rss+xml" title="RSS"
  href="https://www.youtube.com/feeds/videos.xml?channel_id=UC...">` (as quoted by feed
  readers' tests, e.g. a Go feed finder's consent-bypass test, and the pages themselves);
- WordPress `feed_links()` (wp-includes/general-template.php, e.g. 4ubr3ypwd/WordPress):
  `'<link rel="alternate" type="' . feed_content_type() . '" title="' . esc_attr(...) .
  '" href="' . esc_url( get_feed_link() ) . "\" />\n"`, the posts feed, then the comments feed;
- Hugo (gohugoio/hugoDocs content/en/templates/rss.md): `{{ printf `<link rel="%s"
  type="%s" href="%s" title="%s" />` .Rel .MediaType.Type .Permalink $.Site.Title }}`,
  and themes that print `.RelPermalink`, a path such as `/index.xml`;
- jekyll-feed (jekyll/jekyll-feed lib/jekyll-feed/meta-tag.rb): type first, then rel,
  href and title: `<link type="application/atom+xml" rel="alternate" href="..." title="..." />`.
"""

from __future__ import annotations

import time

import pytest

from watcher.discover import MAX_FEEDS, MAX_PAGE_BYTES, advertised_feeds, is_html_page

CHANNEL = "UCbRP3c757lWg9M-U7TyEkXA"
YOUTUBE_PAGE = f"""<!DOCTYPE html><html style="font-size: 10px;font-family: Roboto, Arial, sans-serif;" lang="en" system-icons typography typography-spacing><head><script data-id="_gd" nonce="abc">window.WIZ_global_data = {{"MUE6Ne":"youtube_web"}};</script><meta http-equiv="origin-trial" content="AmhMBR6zCLzDDxpW"><script nonce="abc">var ytcfg={{d:function(){{return window.yt&&yt.config_||ytcfg.data_||(ytcfg.data_={{}})}}}};</script><title>SomeConf - YouTube</title><link rel="canonical" href="https://www.youtube.com/channel/{CHANNEL}"><link rel="alternate" media="handheld" href="https://m.youtube.com/@SomeConf"><link rel="alternate" type="application/rss+xml" title="RSS" href="https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL}"><meta property="og:title" content="SomeConf"><link rel="alternate" href="android-app://com.google.android.youtube/http/www.youtube.com/channel/{CHANNEL}"><link rel="alternate" href="ios-app://544007664/vnd.youtube/www.youtube.com/channel/{CHANNEL}"></head><body dir="ltr"><ytd-app></ytd-app></body></html>""".encode()  # noqa: E501
YOUTUBE_FEED = f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL}"

WORDPRESS_PAGE = b"""<!DOCTYPE html>
<html lang="en-US">
<head>
<meta charset="UTF-8" />
<meta name="viewport" content="width=device-width, initial-scale=1" />
<meta name='robots' content='max-image-preview:large' />
<title>Some Conf &#8211; Talks from Some Conf</title>
<link rel="alternate" type="application/rss+xml" title="Some Conf &raquo; Feed" href="https://example.org/feed/" />
<link rel="alternate" type="application/rss+xml" title="Some Conf &raquo; Comments Feed" href="https://example.org/comments/feed/" />
<link rel="https://api.w.org/" href="https://example.org/wp-json/" />
<link rel="EditURI" type="application/rsd+xml" title="RSD" href="https://example.org/xmlrpc.php?rsd" />
</head>
<body class="home blog"><p>Welcome</p></body>
</html>
"""  # noqa: E501

HUGO_PAGE = b"""<!DOCTYPE html>
<html lang="en-us">
  <head>
    <meta charset="utf-8">
    <title>Some Conf</title>
    <link rel="stylesheet" href="/css/style.min.css">
    <link rel="alternate" type="application/rss+xml" href="/index.xml" title="Some Conf">
  </head>
  <body><main>Talks</main></body>
</html>
"""

JEKYLL_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head>
  <meta charset="utf-8"><meta http-equiv="X-UA-Compatible" content="IE=edge">
<!-- Begin Jekyll SEO tag v2.8.0 -->
<title>Some Conf | Talks</title>
<!-- End Jekyll SEO tag -->
<link rel="stylesheet" href="/assets/main.css"><link type="application/atom+xml" rel="alternate" href="/feed.xml" title="Some Conf" /></head>
<body><main class="page-content" aria-label="Content"></main></body></html>
"""  # noqa: E501


def test_youtube_channel_page_advertises_its_videos_feed():
    feeds = advertised_feeds(YOUTUBE_PAGE, "https://www.youtube.com/@SomeConf")
    assert feeds == [YOUTUBE_FEED]  # not the handheld, android-app or ios-app alternates


def test_wordpress_posts_feed_comes_before_its_comments_feed():
    feeds = advertised_feeds(WORDPRESS_PAGE, "https://example.org/")
    assert feeds == ["https://example.org/feed/", "https://example.org/comments/feed/"]


def test_hugo_relative_href_is_resolved_against_the_page():
    feeds = advertised_feeds(HUGO_PAGE, "https://example.org/talks/2026/")
    assert feeds == ["https://example.org/index.xml"]


def test_jekyll_feed_type_before_rel():
    assert advertised_feeds(JEKYLL_PAGE, "https://conf.example/") == [
        "https://conf.example/feed.xml"
    ]


def test_base_href_wins_over_the_page_url_and_is_itself_resolved():
    page = b"""<html><head><base href="/blog/">
    <link rel="alternate" type="application/atom+xml" href="atom.xml"></head></html>"""
    assert advertised_feeds(page, "https://example.org/a/b.html") == [
        "https://example.org/blog/atom.xml"
    ]
    absolute = page.replace(b'"/blog/"', b'"https://cdn.example/site/"')
    assert advertised_feeds(absolute, "https://example.org/") == [
        "https://cdn.example/site/atom.xml"
    ]


def test_only_the_first_base_counts():
    page = b"""<head><base href="https://one.example/"><base href="https://two.example/">
    <link rel="alternate" type="application/rss+xml" href="rss"></head>"""
    assert advertised_feeds(page, "https://example.org/") == ["https://one.example/rss"]


@pytest.mark.parametrize(
    "link",
    [
        '<link rel="alternate feed" type="application/rss+xml" href="/f">',
        '<link rel="feed  alternate" type="application/rss+xml" href="/f">',
        '<LINK REL="ALTERNATE" TYPE="APPLICATION/RSS+XML" HREF="/f">',
        '<link rel="Alternate" type="Application/Atom+XML; charset=utf-8" href="/f">',
        "<link rel=alternate type=application/atom+xml href=/f>",
        '<link rel="alternate" type=" application/rss+xml " href="  /f\n">',
        '<link rel="alternate" type="application/rss+xml" href="/f#latest">',
    ],
)
def test_rel_token_lists_case_and_parameters(link):
    page = f"<html><head>{link}</head><body></body></html>".encode()
    assert advertised_feeds(page, "https://example.org/x") == ["https://example.org/f"]


@pytest.mark.parametrize(
    "link",
    [
        '<link rel="alternate" type="application/feed+json" href="/feed.json">',
        '<link rel="alternate" type="text/html" hreflang="de" href="/de/">',
        '<link rel="stylesheet" type="application/rss+xml" href="/f">',
        '<link rel="alternates" type="application/rss+xml" href="/f">',
        '<link type="application/rss+xml" href="/f">',
        '<link rel="alternate" type="application/rss+xml">',
        '<link rel="alternate" type="application/rss+xml" href="">',
        '<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">',
        '<link rel="alternate" type="application/rss+xml" href="file:///etc/passwd">',
        '<link rel="alternate" type="application/rss+xml" href="http://[::1/f">',
        '<!-- <link rel="alternate" type="application/rss+xml" href="/commented"> -->',
        '<script>document.write(\'<link rel="alternate" type="application/rss+xml" href="/s">\')'
        "</script>",
    ],
)
def test_what_is_not_an_advertised_feed(link):
    page = f"<html><head>{link}</head><body><p>Hello</p></body></html>".encode()
    assert advertised_feeds(page, "https://example.org/") == []


def test_a_page_with_no_feed_and_what_is_no_page():
    assert (
        advertised_feeds(b"<!DOCTYPE html><html><body>Maintenance</body></html>", "https://x/")
        == []
    )
    for junk in (b"", b"   ", b"\x00\xff\xfe" * 100, b"<link", b"\xef\xbb\xbf<html"):
        assert advertised_feeds(junk, "https://example.org/") == []


def test_repeats_are_dropped_keeping_the_order():
    links = "".join(
        f'<link rel="alternate" type="application/rss+xml" href="{href}">'
        for href in ("/b", "/a", "https://example.org/b", "/b#x", "/c")
    )
    feeds = advertised_feeds(f"<head>{links}</head>".encode(), "https://example.org/")
    assert feeds == ["https://example.org/b", "https://example.org/a", "https://example.org/c"]


def test_a_local_page_resolves_like_a_browser():
    page = b'<head><link rel="alternate" type="application/rss+xml" href="feeds/talks.xml"></head>'
    assert advertised_feeds(page, "site/index.html") == ["site/feeds/talks.xml"]
    assert advertised_feeds(page, "/srv/site/") == ["/srv/site/feeds/talks.xml"]
    spaced = page.replace(b"talks.xml", b"my%20talks.xml")
    assert advertised_feeds(spaced, "site/index.html") == ["site/feeds/my talks.xml"]
    assert advertised_feeds(page, "file:///srv/site/index.html") == [
        "file:///srv/site/feeds/talks.xml"
    ]
    web = page.replace(b"feeds/talks.xml", b"https://example.org/feed/")
    assert advertised_feeds(web, "site/index.html") == ["https://example.org/feed/"]
    based = b'<base href="https://example.org/">' + page
    assert advertised_feeds(based, "site/index.html") == ["https://example.org/feeds/talks.xml"]


def test_a_web_page_never_leads_to_a_local_file():
    link = '<link rel="alternate" type="application/rss+xml" href="{}">'
    absolute = f'<base href="file:///">{link.format("file:///etc/passwd")}'.encode()
    assert advertised_feeds(absolute, "https://evil.example/") == []
    relative = f'<base href="file:///">{link.format("/etc/passwd")}'.encode()
    assert advertised_feeds(relative, "https://evil.example/") == [
        "https://evil.example/etc/passwd"
    ]


def test_hostile_pages_are_read_in_bounded_time():
    link = b'<link rel="alternate" type="application/rss+xml" href="/f%d">'
    pages = [
        b"<html><body>" + b"<div><span>" * (MAX_PAGE_BYTES // 11),  # deep nesting
        b"<html><head>" + b"".join(link % i for i in range(50_000)),  # many feeds
        b'<html><head><link rel="alternate" type="application/rss+xml" href="'
        + b"a" * MAX_PAGE_BYTES,  # one endless attribute
        b"<html><head><!--" + b"-" * MAX_PAGE_BYTES,  # an unclosed comment
    ]
    for page in pages:
        started = time.monotonic()
        feeds = advertised_feeds(page, "https://example.org/")
        assert time.monotonic() - started < 5
        assert len(feeds) <= MAX_FEEDS


def test_a_feed_link_past_the_cap_is_not_read():
    filler = b"<script>" + b"x" * MAX_PAGE_BYTES + b"</script>"
    page = b"<html><head>" + filler + b'<link rel="alternate" type="application/rss+xml" href="/f">'
    assert advertised_feeds(page, "https://example.org/") == []
    assert advertised_feeds(page.replace(filler, b""), "https://example.org/") == [
        "https://example.org/f"
    ]


@pytest.mark.parametrize(
    "body",
    [
        YOUTUBE_PAGE,
        WORDPRESS_PAGE,
        HUGO_PAGE,
        JEKYLL_PAGE,
        b"\xef\xbb\xbf\n<!-- generated -->\n<!doctype HTML>",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0'
        b' Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">',
        b"<HTML><BODY>old school</BODY></HTML>",
        b"<head><title>no html tag</title></head>",
    ],
)
def test_html_pages_are_recognised(body):
    assert is_html_page(body)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel></channel></rss>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"></feed>',
        b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "x"><rss/>',
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>',
        b'{"version": "https://jsonfeed.org/version/1.1"}',
        b"",
        b"<!-- never closed",
        b"<!--" * 10_000 + b"<html>",
    ],
)
def test_feeds_and_junk_are_not_html_pages(body):
    assert not is_html_page(body)
